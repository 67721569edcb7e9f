#!/usr/bin/env bash
# Regenerates Sources/EtcdAPI (Swift code for the etcd gRPC API subset in Protos/etcd.proto).
# The generated files are committed: builds never run protoc. Run this only after changing the
# .proto. Builds the two protoc plugins from this package's own dependencies (a few minutes the
# first time) and installs protoc when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null; then
    echo "installing protoc (protobuf-compiler)" >&2
    apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null
fi

scratch=.build-protoc
swift build -c release --scratch-path "$scratch" --product protoc-gen-swift
swift build -c release --scratch-path "$scratch" --product protoc-gen-grpc-swift-2
bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)"

protoc \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
    --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
    --swift_out=Sources/EtcdAPI --swift_opt=Visibility=Package \
    --grpc-swift-2_out=Sources/EtcdAPI --grpc-swift-2_opt=Visibility=Package,Client=true,Server=false \
    -I Protos Protos/etcd.proto
echo "regenerated Sources/EtcdAPI from Protos/etcd.proto" >&2
