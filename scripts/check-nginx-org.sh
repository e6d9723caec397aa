#!/usr/bin/env bash
# The module for nginx.org's builds: built once (scripts/build-nginx-org.sh) against nginx
# 1.28.3 configured --with-compat only, it loads and scans in two other builds of the same
# source with different module sets, both --with-compat (one with nginx.org's whole configure
# argument list, one minimal), and an nginx built without --with-compat refuses it with
# nginx's own error. The .deb and .rpm are inspected: names, dependencies, files, scripts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
out=$root/target/nginx-org
"$root/scripts/build-nginx-org.sh" "" "$out" | tail -2
cargo build -q -p ometascan-testkit --bins --manifest-path "$root/Cargo.toml"
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/nginx-src-*/nginx | head -1)
nginx_version=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$src/src/core/nginx.h")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
so=$out/ngx_http_ometascan_module.so
passed=0
pass() { echo "ok: $1"; passed=$((passed + 1)); }

echo "== packages"
deb=$out/nginx-module-ometascan_${nginx_version}+${version}-1~${codename}_amd64.deb
rpmfile=$out/nginx-module-ometascan-${nginx_version}+${version}-1.el9.ngx.x86_64.rpm
[ -f "$deb" ] && [ -f "$rpmfile" ] || { ls "$out"; exit 1; }
# (Lists are read whole first: grep -q closing a pipe early would fail the pipeline.)
depends=$(dpkg-deb -f "$deb" Depends)
files=$(dpkg-deb -c "$deb")
postinst=$(dpkg-deb -I "$deb" postinst)
[ "$depends" = "nginx (= $nginx_version-1~$codename), libc6" ] || { echo "Depends: $depends"; exit 1; }
grep -q ' ./usr/lib/nginx/modules/ngx_http_ometascan_module.so$' <<<"$files"
grep -q ' ./usr/share/doc/nginx-module-ometascan/examples/minimal.conf$' <<<"$files"
grep -q 'load_module /usr/lib/nginx/modules/ngx_http_ometascan_module.so;' <<<"$postinst"
pass "deb: name, Depends on nginx (= $nginx_version-1~$codename), module in /usr/lib/nginx/modules, load_module banner"
requires=$(rpm -qp --requires "$rpmfile")
files=$(rpm -qlp "$rpmfile")
grep -qx "nginx = 1:$nginx_version" <<<"$requires"
grep -qx /usr/lib64/nginx/modules/ngx_http_ometascan_module.so <<<"$files"
grep -qx /usr/share/doc/nginx-module-ometascan/examples/minimal.conf <<<"$files"
scripts=$(rpm -qp --scripts "$rpmfile")
grep -q 'load_module /usr/lib64/nginx/modules/ngx_http_ometascan_module.so;' <<<"$scripts"
grep -q 'setsebool -P httpd_can_network_connect 1' <<<"$scripts"
pass "rpm: name, Requires nginx = 1:$nginx_version, module in /usr/lib64/nginx/modules, load_module and SELinux banner"

# nginx.org's configure arguments for its Debian packages (nginx -V of nginx.org's 1.28).
full_args=(--prefix=/etc/nginx --sbin-path=/usr/sbin/nginx --modules-path=/usr/lib/nginx/modules
    --conf-path=/etc/nginx/nginx.conf --error-log-path=/var/log/nginx/error.log
    --http-log-path=/var/log/nginx/access.log --pid-path=/run/nginx.pid --lock-path=/run/nginx.lock
    --http-client-body-temp-path=/var/cache/nginx/client_temp --http-proxy-temp-path=/var/cache/nginx/proxy_temp
    --http-fastcgi-temp-path=/var/cache/nginx/fastcgi_temp --http-uwsgi-temp-path=/var/cache/nginx/uwsgi_temp
    --http-scgi-temp-path=/var/cache/nginx/scgi_temp --user=nginx --group=nginx --with-compat --with-file-aio
    --with-threads --with-http_addition_module --with-http_auth_request_module --with-http_dav_module
    --with-http_flv_module --with-http_gunzip_module --with-http_gzip_static_module --with-http_mp4_module
    --with-http_random_index_module --with-http_realip_module --with-http_secure_link_module
    --with-http_slice_module --with-http_ssl_module --with-http_stub_status_module --with-http_sub_module
    --with-http_v2_module --with-http_v3_module --with-mail --with-mail_ssl_module --with-stream
    --with-stream_realip_module --with-stream_ssl_module --with-stream_ssl_preread_module
    "--with-cc-opt=-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -Wp,-D_FORTIFY_SOURCE=2 -fPIC"
    "--with-ld-opt=-Wl,-z,relro -Wl,-z,now -Wl,--as-needed -pie")
# A minimal module set. (PCRE stays: whether nginx has it is part of the module ABI even with
# --with-compat, and every nginx.org package and NGINX Plus have it.)
minimal_args=(--with-compat --without-http_gzip_module --without-http_ssi_module --without-http_autoindex_module
    --without-http_geo_module --without-http_map_module --without-http_userid_module)
nocompat_args=("${minimal_args[@]:1}")

build_nginx() { # name args...
    local dir=$out/builds/$1
    shift
    if [ ! -x "$dir/objs/nginx" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        cp -r "$src/." "$dir"
        (cd "$dir" && auto/configure "$@" >configure.log 2>&1 && make -j"$(nproc)" -f objs/Makefile >make.log 2>&1) \
            || { tail -20 "$dir"/*.log; exit 1; }
    fi
    echo "$dir/objs/nginx"
}
echo "== three nginx $nginx_version builds"
nginx_full=$(build_nginx full "${full_args[@]}")
nginx_minimal=$(build_nginx minimal "${minimal_args[@]}")
nginx_nocompat=$(build_nginx nocompat "${nocompat_args[@]}")

run=$(mktemp -d /tmp/ometascan-nginx-org.XXXXXX)
chmod 755 "$run"
pids=()
cleanup() {
    for c in "$run"/*/nginx.conf; do
        [ -f "$c" ] && [ -f "$(dirname "$c")/nginx.pid" ] && "$nginx_full" -p "$(dirname "$c")" -c "$c" -s stop 2>/dev/null || true
    done
    stop_icap_scanner
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$run"
}
trap cleanup EXIT
start_icap_scanner "$root/target/debug/ometascan-icap-scanner" "$run"
pids+=("$scanner_pid")
p_back=$(port)
"$root/target/debug/ometascan-backend" "127.0.0.1:$p_back" >"$run/backend.log" 3>&- & pids+=($!)
head -c 300000 /dev/urandom >"$run/clean.bin"
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$run/eicar.com"

# conf_for NAME PORT: a configuration that overrides every path compiled into a build.
conf_for() {
    local dir=$run/$1
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<CONF
load_module $so;
user nobody nogroup;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events {}
http {
    access_log off;
    client_body_temp_path $dir/client_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;
    server {
        listen 127.0.0.1:$2;
        location / {
            ometascan_pass $scanner_url;
            proxy_pass     http://127.0.0.1:$p_back;
        }
    }
}
CONF
}

for build in full minimal; do
    bin=nginx_$build
    bin=${!bin}
    p=$(port)
    conf_for "$build" "$p"
    dir=$run/$build
    "$bin" -t -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>/dev/null
    "$bin" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 3>&-
    for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
    sleep 0.2
    before=$(grep -c '^backend: ' "$run/backend.log" || true)
    clean=$(curl -s -o /dev/null -w '%{http_code}' --data-binary "@$run/clean.bin" "http://127.0.0.1:$p/upload/clean.bin")
    eicar=$(curl -s -o "$dir/page.html" -w '%{http_code}' --data-binary "@$run/eicar.com" "http://127.0.0.1:$p/upload/eicar.com")
    sleep 0.3
    "$bin" -p "$dir" -c "$dir/nginx.conf" -s stop
    after=$(grep -c '^backend: ' "$run/backend.log")
    echo "nginx $nginx_version ($build build): clean upload -> $clean, EICAR -> $eicar"
    [ "$clean" = 200 ] && [ "$eicar" = 403 ] || { cat "$dir/error.log"; exit 1; }
    grep -q "VIRUS FOUND" "$dir/page.html"
    [ $((after - before)) = 1 ] || { echo "the backend got $((after - before)) requests"; exit 1; }
    grep -q "ometascan module .* started" "$dir/error.log"
    pass "the module loads and scans in the $build --with-compat build (clean 200, EICAR 403, backend 1 request)"
done

conf_for nocompat "$(port)"
dir=$run/nocompat
if "$nginx_nocompat" -t -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/t.log" 2>&1; then
    echo "an nginx built without --with-compat accepted the module"; exit 1
fi
grep -q "module \"$so\" is not binary compatible" "$dir/t.log" || { cat "$dir/t.log"; exit 1; }
pass "an nginx built without --with-compat refuses it: $(grep -o 'module .* is not binary compatible' "$dir/t.log" | sed "s|$out/||")"
echo "$passed passed, 0 failed"
