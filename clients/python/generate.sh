#!/bin/sh
# Regenerates the gRPC stubs in keyward/v1/ from proto/ with Debian's protoc:
#   apt-get install protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
#   clients/python/generate.sh [OUT_DIR]     (default: clients/python, i.e. keyward/v1/ in place)
# Run it after changing proto/; clients/python/test/python.test.ts checks that
# the committed stubs match. They are used by keyward.grpc only (grpcio and
# protobuf needed); the keyward client itself does not import them. The stubs
# of google/api (the REST annotations Keyward's services import; vendored in
# proto/google/api) go to google/api/, as googleapis-common-protos ships them.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-"$HERE"}
WKT_INCLUDE=${WKT_INCLUDE:-/usr/include}
mkdir -p "$OUT"
# In place: drop the old stubs first, so that a removed .proto leaves none behind.
if [ "$OUT" = "$HERE" ]; then rm -f "$HERE"/keyward/v1/*_pb2.py "$HERE"/keyward/v1/*_pb2_grpc.py "$HERE"/google/api/*_pb2.py; fi
cd "$ROOT/proto"
# shellcheck disable=SC2046
protoc -I . -I "$WKT_INCLUDE" \
  --python_out="$OUT" \
  --grpc_python_out="$OUT" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  $(find keyward -name '*.proto' | sort)
protoc -I . -I "$WKT_INCLUDE" --python_out="$OUT" google/api/annotations.proto google/api/http.proto
echo "generated Python stubs in $OUT/keyward/v1"
