#!/usr/bin/env bash
# Builds the RPM with rpmbuild (Debian's rpm package) against the nginx source vendored for
# development, and checks its file list, dependencies and scripts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v rpmbuild >/dev/null || { echo "rpmbuild missing: apt-get install rpm" >&2; exit 1; }
cd "$root"
cargo build -q   # configures the vendored nginx tree
build_dir=$root/$(dirname "$(ls -t target/debug/build/nginx-sys-*/out/objs/nginx | head -1)")
source_dir=$(sed -n 's/^#define NGX_PREFIX.*//; s/^CORE_INCS *= *-I \(.*\)\/src\/core.*/\1/p' "$build_dir/Makefile" | head -1)
if [ ! -f "$source_dir/src/core/nginx.h" ]; then
    source_dir=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/nginx-src-*/nginx | head -1)
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out=$root/target/rpm
rm -rf "$out"
mkdir -p "$out/SOURCES" "$out/stage/ngx_http_ometascan_module-$version"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$out/stage/ngx_http_ometascan_module-$version"
tar -C "$out/stage" -czf "$out/SOURCES/ngx_http_ometascan_module-$version.tar.gz" "ngx_http_ometascan_module-$version"
rpmbuild -bb --nodeps \
    --define "_topdir $out" \
    --define "nginx_build_dir $build_dir" \
    --define "nginx_source_dir $source_dir" \
    rpm/nginx-module-ometascan.spec >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
rpmfile=$(ls "$out"/RPMS/*/nginx-module-ometascan-*.rpm)
echo "== built $rpmfile"
nginx_version=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$source_dir/src/core/nginx.h")
files=$(rpm -qlp "$rpmfile")
echo "$files"
requires=$(rpm -qp --requires "$rpmfile")
echo "$requires"
scripts=$(rpm -qp --scripts "$rpmfile")
fail=0
for f in /usr/lib64/nginx/modules/ngx_http_ometascan_module.so /usr/share/nginx/modules/mod-http-ometascan.conf \
         /usr/share/doc/nginx-module-ometascan/README.md /usr/share/doc/nginx-module-ometascan/examples/minimal.conf; do
    grep -qx "$f" <<<"$files" || { echo "missing in the RPM: $f"; fail=1; }
done
grep -qx "nginx = $nginx_version" <<<"$requires" || { echo "no 'nginx = $nginx_version' requirement"; fail=1; }
[ -z "$scripts" ] || { echo "unexpected scriptlets: $scripts"; fail=1; }
# The load line in the package points at the installed module.
rpm2cpio "$rpmfile" | (cd "$out/stage" && cpio -id --quiet ./usr/share/nginx/modules/mod-http-ometascan.conf)
grep -q 'load_module "/usr/lib64/nginx/modules/ngx_http_ometascan_module.so";' "$out/stage/usr/share/nginx/modules/mod-http-ometascan.conf" || fail=1
[ $fail -eq 0 ] || exit 1
echo "4 passed, 0 failed"
