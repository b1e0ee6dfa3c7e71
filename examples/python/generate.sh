#!/bin/sh
# Generates Python gRPC stubs for Keyward from proto/ with Debian's protoc:
#   apt-get install protobuf-compiler protobuf-compiler-grpc libprotobuf-dev python3-grpcio python3-protobuf
#   examples/python/generate.sh [OUT_DIR]      (default: examples/python/gen, git-ignored)
# libprotobuf-dev provides google/protobuf/*.proto (Timestamp, Duration, ...)
# in /usr/include; python3-protobuf provides their Python modules.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-"$ROOT/examples/python/gen"}
WKT_INCLUDE=${WKT_INCLUDE:-/usr/include}
mkdir -p "$OUT"
cd "$ROOT/proto"
# shellcheck disable=SC2046
protoc -I . -I "$WKT_INCLUDE" \
  --python_out="$OUT" \
  --grpc_python_out="$OUT" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  $(find keyward -name '*.proto' | sort)
# The google.api.http annotations Keyward's services import (vendored in proto/google/api).
protoc -I . -I "$WKT_INCLUDE" --python_out="$OUT" google/api/annotations.proto google/api/http.proto
echo "generated Python stubs in $OUT"
