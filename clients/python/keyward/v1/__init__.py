"""Protobuf messages and gRPC stubs generated from proto/keyward/v1 by
``clients/python/generate.sh`` (protoc + grpc_python_plugin). Do not edit the
``*_pb2.py`` and ``*_pb2_grpc.py`` files by hand. Importing them needs
``protobuf`` (and ``grpcio`` for the ``*_grpc`` modules); use them through
:mod:`keyward.grpc`."""
