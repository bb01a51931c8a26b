#!/usr/bin/env bash
# Builds tests/compat/sarama against Debian's sarama (golang-github-shopify-sarama-dev, GOPATH mode: no
# module download) and runs it with the given arguments: BOOTSTRAP TOPIC.
set -euo pipefail
cd "$(dirname "$0")/sarama"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# cgo flag: Debian's DataDog/zstd calls a zstd function that libzstd marks deprecated.
export CGO_CFLAGS="-O2 -Wno-deprecated-declarations" GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="${GOCACHE:-/tmp/sharedlog-go-build-cache}"
go build -o "$out/sarama-compat" .
"$out/sarama-compat" "$@"
