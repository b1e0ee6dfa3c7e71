#!/bin/sh
# Builds the Go walk-through with Debian's packages only: no module proxy, no
# network. It builds in GOPATH mode (GO111MODULE=off), the way Debian builds Go
# packages, with GOPATH = a temporary tree holding this example and its
# generated client + /usr/share/gocode (Debian's Go sources). Module mode with
# `replace` directives to /usr/share/gocode does not work offline: gRPC 1.33's
# and genproto's go.mod files say `go 1.11` (no module graph pruning), so Go
# wants the go.mod of every transitive requirement, some of which Debian does
# not ship:
#   go: google.golang.org/genproto@v0.0.0-20200526211855-cb27e3aa2013 requires
#       golang.org/x/lint@v0.0.0-20190313153728-d0100b6bd8b3: module lookup disabled by GOPROXY=off
# Usage:
#   apt-get install golang-go protobuf-compiler libprotobuf-dev protoc-gen-go \
#     protoc-gen-go-grpc golang-google-grpc-dev golang-google-protobuf-dev \
#     golang-github-golang-protobuf-1-5-dev golang-google-genproto-dev
#   examples/go/build-offline.sh [OUT_BINARY]   (default: examples/go/gen/walkthrough)
# WORK_DIR (default: a temporary directory, removed after) holds the GOPATH
# tree; GOCACHE is honoured as usual.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-"$HERE/gen/walkthrough"}
case $OUT in /*) ;; *) OUT="$(pwd)/$OUT" ;; esac
if [ -n "${WORK_DIR:-}" ]; then
  WORK=$WORK_DIR
else
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
PKG_DIR="$WORK/gopath/src/keyward.example/walkthrough"
mkdir -p "$PKG_DIR" "$(dirname "$OUT")"
cp "$HERE/main.go" "$PKG_DIR/"
"$HERE/generate.sh" "$PKG_DIR/gen" >/dev/null
cd "$PKG_DIR"
GO111MODULE=off GOPATH="$WORK/gopath:/usr/share/gocode" GOPROXY=off go build -o "$OUT" .
echo "built $OUT"
