#!/usr/bin/env bash
# Builds the module for the nginx builds of nginx.org (and NGINX Plus of the same base
# version), and packages it the way nginx.org packages its modules.
#
# A module built against nginx X.Y.Z configured --with-compat loads into every nginx X.Y.Z
# built --with-compat, whatever other modules that build has: nginx.org's packages are, and
# NGINX Plus is. So the module is built from the plain source of that version, configured
# --with-compat only.
#
# Usage: scripts/build-nginx-org.sh [NGINX_SOURCE_DIR] [OUT_DIR]
#   NGINX_SOURCE_DIR  an nginx source tree (default: the 1.28.3 source vendored for development)
#   OUT_DIR           default: target/nginx-org
# Results in OUT_DIR:
#   ngx_http_ometascan_module.so
#   nginx-module-ometascan_<nginx>+<version>-1~<codename>_amd64.deb   (Depends: nginx (= <nginx>-1~<codename>))
#   nginx-module-ometascan-<nginx>+<version>-1.el9.ngx.x86_64.rpm     (Requires: nginx = 1:<nginx>)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/nginx-src-*/nginx 2>/dev/null | head -1)}
out=${2:-$root/target/nginx-org}
[ -f "$src/src/core/nginx.h" ] || { echo "not an nginx source tree: $src" >&2; exit 1; }
nginx_version=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$src/src/core/nginx.h")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
pkg=nginx-module-ometascan

# 1. The module, against nginx $nginx_version configured --with-compat.
mkdir -p "$out"
rm -rf "$out/nginx"
cp -r "$src" "$out/nginx"
# A release tarball has ./configure; a checkout of the repository has auto/configure.
configure=./configure
[ -x "$out/nginx/configure" ] || configure=auto/configure
(cd "$out/nginx" && $configure --with-compat >"$out/configure.log" 2>&1) \
    || { tail -20 "$out/configure.log"; exit 1; }
NGINX_SOURCE_DIR="$out/nginx" NGINX_BUILD_DIR="$out/nginx/objs" cargo build -q --release --lib \
    --no-default-features --manifest-path "$root/Cargo.toml" --target-dir "$out/target"
so=$out/ngx_http_ometascan_module.so
cp "$out/target/release/libngx_http_ometascan_module.so" "$so"

# 2. The .deb, in nginx.org's naming and layout.
deb_version="$nginx_version+$version-1~$codename"
stage=$out/deb
rm -rf "$stage"
install -D -m 0644 "$so" "$stage/usr/lib/nginx/modules/ngx_http_ometascan_module.so"
install -d "$stage/usr/share/doc/$pkg/examples" "$stage/DEBIAN"
install -m 0644 "$root/README.md" "$root/docs/protocol.md" "$root/docs/icap.md" "$root/docs/clamd.md" "$root/docs/directives.md" "$stage/usr/share/doc/$pkg/"
install -m 0644 "$root"/nginx-conf/*.conf "$stage/usr/share/doc/$pkg/examples/"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $deb_version
Architecture: amd64
Maintainer: ngx_http_ometascan_module developers <ometascan@example.com>
Depends: nginx (= $nginx_version-1~$codename), libc6
Section: httpd
Priority: optional
Homepage: https://example.com/ngx_http_ometascan_module
Description: nginx upload scanning dynamic module
 In every location with ometascan_pass, nginx sends each request (request line,
 headers and body) to a scanning server first (an ICAP server such as c-icap with
 ClamAV, or MetaDefender ICAP Server) and forwards it, forwards the sanitized
 version, or answers with the scanner's block page. Built for nginx $nginx_version.
CONTROL
sed -e "s|@SO@|/usr/lib/nginx/modules/ngx_http_ometascan_module.so|" -e "s|@DOC@|/usr/share/doc/$pkg|" \
    "$root/scripts/nginx-org-banner.txt" >"$out/banner.txt"
{
    echo '#!/bin/sh'
    echo 'set -e'
    echo 'if [ "$1" = "configure" ] && [ -z "$2" ]; then'
    echo "cat <<'BANNER'"
    cat "$out/banner.txt"
    echo 'BANNER'
    echo 'fi'
} >"$stage/DEBIAN/postinst"
chmod 0755 "$stage/DEBIAN/postinst"
deb=$out/${pkg}_${deb_version}_amd64.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "built $deb"

# 3. The .rpm, likewise (rpmbuild packages the module built above).
rpm_top=$out/rpm
rm -rf "$rpm_top"
mkdir -p "$rpm_top/SOURCES"
cp "$so" "$out/banner.txt" "$root/README.md" "$root/docs/protocol.md" "$root/docs/icap.md" "$root/docs/clamd.md" "$root/docs/directives.md" "$rpm_top/SOURCES/"
tar -C "$root" -czf "$rpm_top/SOURCES/examples.tar.gz" nginx-conf
sed -e "s|@SO@|/usr/lib64/nginx/modules/ngx_http_ometascan_module.so|" -e "s|@DOC@|/usr/share/doc/$pkg|" \
    "$root/scripts/nginx-org-banner.txt" >"$rpm_top/SOURCES/banner.txt"
printf '\nOn RHEL and its rebuilds with SELinux enforcing, let nginx connect to the scanners:\n    setsebool -P httpd_can_network_connect 1\n' \
    >>"$rpm_top/SOURCES/banner.txt"
rpmbuild -bb --nodeps --quiet \
    --define "_topdir $rpm_top" \
    --define "_libdir /usr/lib64" \
    --define "dist .el9" \
    --define "nginx_version $nginx_version" \
    --define "module_version $version" \
    "$root/rpm/nginx-module-ometascan-nginx-org.spec" >"$rpm_top/build.log" 2>&1 \
    || { tail -30 "$rpm_top/build.log"; exit 1; }
cp "$rpm_top"/RPMS/x86_64/"$pkg-$nginx_version+$version"-1.el9.ngx.x86_64.rpm "$out/"
echo "built $out/$pkg-$nginx_version+$version-1.el9.ngx.x86_64.rpm"
