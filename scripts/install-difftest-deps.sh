#!/usr/bin/env bash
# The real backend parsers the differential suite (tests/differential.rs) reads bodies with:
# werkzeug, Django and python-multipart (and requests, a client; grpcio, the gRPC server and client
# of tests/streaming.rs; boto3 and moto for tests/real_clients.rs) in a virtual environment, busboy, formidable and
# body-parser from npm, all under target/difftest (PHP's php-cgi and node come from Debian, by
# install-deps.sh). Quiet and quick when everything is there already.
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
