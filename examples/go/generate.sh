#!/bin/sh
# Generates the Go client for Keyward from proto/ with Debian's protoc and Go plugins:
#   apt-get install protobuf-compiler libprotobuf-dev protoc-gen-go protoc-gen-go-grpc
#   examples/go/generate.sh [GEN_DIR]      (default: examples/go/gen, git-ignored)
# Writes GEN_DIR/keyward/v1/*.pb.go and *_grpc.pb.go, Go package
# $KEYWARD_GO_PACKAGE (default keyward.example/walkthrough/gen/keyward/v1).
# proto/ sets no go_package, so every file is mapped here with M options.
# google/api/annotations.proto (the REST annotations every service imports)
# maps to the googleapis Go package of google.golang.org/genproto, as every
# Go program that links googleapis does; google/protobuf/*.proto (from
# libprotobuf-dev in /usr/include) carry their own go_package.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GEN=${1:-"$ROOT/examples/go/gen"}
PKG=${KEYWARD_GO_PACKAGE:-keyward.example/walkthrough/gen/keyward/v1}
WKT_INCLUDE=${WKT_INCLUDE:-/usr/include}
ANNOTATIONS=google.golang.org/genproto/googleapis/api/annotations
mkdir -p "$GEN"
GEN=$(cd "$GEN" && pwd)
cd "$ROOT/proto"
FILES=$(find keyward -name '*.proto' | sort)
MAP="Mgoogle/api/annotations.proto=$ANNOTATIONS,Mgoogle/api/http.proto=$ANNOTATIONS"
for f in $FILES; do MAP="$MAP,M$f=$PKG;keywardv1"; done
# shellcheck disable=SC2086
protoc -I . -I "$WKT_INCLUDE" \
  --go_out="$GEN" --go_opt=paths=source_relative,"$MAP" \
  --go-grpc_out="$GEN" --go-grpc_opt=paths=source_relative,"$MAP" \
  $FILES
echo "generated the Go client ($PKG) in $GEN"
