#!/usr/bin/env bash
# Builds the module against the distribution's nginx so that it loads into /usr/sbin/nginx.
#
# A dynamic module loads only into the nginx version and build signature it was compiled
# against. Debian ships the configured-source of its nginx in the nginx-dev package
# (/usr/share/nginx/src, with the configure flags in conf_flags): configure a copy of it with
# those flags, then build with NGINX_BUILD_DIR pointing at its objs/ and the vendored feature off.
#
# Usage: scripts/build-system-nginx-module.sh [OUT_DIR]   (default: target/system-nginx)
# Result: OUT_DIR/ngx_http_ometascan_module.so
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/system-nginx}
src=/usr/share/nginx/src

if [ ! -f "$src/conf_flags" ]; then
    echo "nginx-dev is not installed (no $src/conf_flags): apt-get install nginx nginx-dev" >&2
    exit 1
fi

rm -rf "$out/nginx"
mkdir -p "$out"
cp -r "$src" "$out/nginx"
(
    cd "$out/nginx"
    # conf_flags defines the NGX_CONF_FLAGS array Debian configured its nginx with.
    # shellcheck disable=SC1091
    . ./conf_flags
    ./configure "${NGX_CONF_FLAGS[@]}" >"$out/configure.log" 2>&1
)
NGINX_BUILD_DIR="$out/nginx/objs" cargo build --release --lib --no-default-features \
    --manifest-path "$root/Cargo.toml" --target-dir "$out/target"
cp "$out/target/release/libngx_http_ometascan_module.so" "$out/ngx_http_ometascan_module.so"
echo "built $out/ngx_http_ometascan_module.so for $(/usr/sbin/nginx -v 2>&1)"
