#!/usr/bin/env bash
# The real backend parsers the differential suite (tests/differential.rs) reads bodies with:
# werkzeug, Django and python-multipart (and requests, a client; grpcio, the gRPC server and client
# of tests/streaming.rs; boto3 and moto for tests/real_clients.rs) in a virtual environment, busboy, formidable and
# body-parser from npm, all under target/difftest (PHP's php-cgi and node come from Debian, by
# install-deps.sh); and tests/differential/more.py's: the Go program, the axum + multer crate and
# the Java program built there (Go, the JDK and the jars come from Debian, as do Ruby's Rack and
# node for parse.rb and parse_undici.js, which need no build). Quiet and quick when everything
# is there already.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/target/difftest"
mkdir -p "$dir"
if [ ! -x "$dir/venv/bin/python" ] || ! "$dir/venv/bin/python" -c 'import werkzeug, django, python_multipart, requests, grpc' 2>/dev/null; then
    rm -rf "$dir/venv"
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install -q --disable-pip-version-check \
        'werkzeug==3.1.*' 'django==5.2.*' 'python-multipart==0.0.*' 'requests==2.*' \
        'grpcio==1.*'
fi
# S3 clients and server for tests/real_clients.rs: boto3 as released now (aws-chunked uploads
# with checksum trailers over HTTPS) with moto's S3 server, and a boto3 from before 1.36.
if [ ! -x "$dir/s3new/bin/moto_server" ] || ! "$dir/s3new/bin/python" -c 'import boto3' 2>/dev/null; then
    rm -rf "$dir/s3new"
    python3 -m venv "$dir/s3new"
    "$dir/s3new/bin/pip" install -q --disable-pip-version-check 'boto3' 'moto[s3,server]==5.*'
fi
if [ ! -x "$dir/s3old/bin/python" ] || ! "$dir/s3old/bin/python" -c 'import boto3' 2>/dev/null; then
    rm -rf "$dir/s3old"
    python3 -m venv "$dir/s3old"
    "$dir/s3old/bin/pip" install -q --disable-pip-version-check 'boto3<1.36'
fi
if [ ! -d "$dir/node/node_modules/busboy" ] || [ ! -d "$dir/node/node_modules/formidable" ] \
    || [ ! -d "$dir/node/node_modules/body-parser" ]; then
    mkdir -p "$dir/node"
    (cd "$dir/node" && { [ -f package.json ] || npm init -y >/dev/null; } \
        && npm install --silent --no-audit --no-fund busboy@1 formidable@3 body-parser@1 >/dev/null)
fi
# The tus reference server and client for tests/pieces.rs.
if [ ! -d "$dir/node/node_modules/@tus/server" ] || [ ! -d "$dir/node/node_modules/tus-js-client" ]; then
    mkdir -p "$dir/node"
    (cd "$dir/node" && { [ -f package.json ] || npm init -y >/dev/null; } \
        && npm install --silent --no-audit --no-fund @tus/server@1 @tus/file-store@1 \
            tus-js-client@4 >/dev/null)
fi
# Chunking uploaders driven in Chromium by tests/pieces.rs: Dropzone and resumable.js.
if [ ! -d "$dir/node/node_modules/dropzone" ] || [ ! -d "$dir/node/node_modules/resumablejs" ]; then
    (cd "$dir/node" && npm install --silent --no-audit --no-fund dropzone@6 \
        resumablejs@1 >/dev/null)
fi
# tus over Python for tests/pieces.rs: tuspy (a client) and resumable-upload (a tus server with
# the concatenation extension, which @tus/server lacks).
if [ ! -x "$dir/tus/bin/python" ] || ! "$dir/tus/bin/python" -c 'import tusclient, resumable_upload' 2>/dev/null; then
    rm -rf "$dir/tus"
    python3 -m venv "$dir/tus"
    "$dir/tus/bin/pip" install -q --disable-pip-version-check 'tuspy==1.*' 'resumable-upload==0.0.5'
fi
# Whether $1 is missing or older than any of the rest.
stale() {
    local out=$1 src
    shift
    [ -e "$out" ] || return 0
    for src in "$@"; do [ "$src" -nt "$out" ] && return 0; done
    return 1
}
src="$root/tests/differential"
if stale "$dir/go/parse" "$src/parse.go"; then
    mkdir -p "$dir/go"
    GO111MODULE=off GOPATH="$dir/go/path" GOCACHE="$dir/go/cache" \
        go build -o "$dir/go/parse" "$src/parse.go"
fi
if stale "$dir/multer-target/release/difftest-multer" "$src/multer/Cargo.toml" \
    "$src/multer/Cargo.lock" "$src/multer/src/main.rs"; then
    CARGO_TARGET_DIR="$dir/multer-target" cargo build -q --release --locked \
        --manifest-path "$src/multer/Cargo.toml"
    touch "$dir/multer-target/release/difftest-multer" # cargo leaves a fresh build's date
fi
if stale "$dir/java/ParseJava.class" "$src/ParseJava.java"; then
    rm -rf "$dir/java"
    jars=(commons-fileupload commons-io jackson-databind jackson-core jackson-annotations)
    javac -nowarn -Xlint:-deprecation -d "$dir/java" \
        -cp "$(printf '/usr/share/java/%s.jar:' "${jars[@]}")" "$src/ParseJava.java"
fi
