#!/usr/bin/env bash
# Sets everything up on a Debian 12 machine and shows the module at work: nginx with the
# module in front of a backend, scanning with ClamAV's clamd directly (no ICAP server); a
# clean upload goes through, the EICAR test file is blocked with the module's page naming the
# threat; then the same two files stored on the server are downloaded through a location that
# scans responses: the clean one arrives byte-exact, the EICAR one is blocked.
# `scripts/demo.sh icap` shows the same through c-icap + ClamAV over ICAP.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
cd "$root"
"$root/scripts/install-deps.sh"

echo "== building the module and the vendored nginx"
cargo build -q
cargo build -q -p ometascan-testkit --bins
nginx_bin=$(ls -t target/debug/build/nginx-sys-*/out/objs/nginx | head -1)

run=$(mktemp -d /tmp/ometascan-demo.XXXXXX)
chmod 755 "$run"  # nginx workers run as an unprivileged user
pids=()
cleanup() {
    [ -f "$run/logs/nginx.pid" ] && "$nginx_bin" -p "$run" -c "$run/nginx.conf" -s stop 2>/dev/null || true
    stop_icap_scanner
    sleep 1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$run"
}
trap cleanup EXIT
mkdir -p "$run/logs"

p_nginx=$(port); p_back=$(port)
target/debug/ometascan-backend "127.0.0.1:$p_back" >"$run/backend.log" & pids+=($!)
# clamd (or c-icap + ClamAV) with a local EICAR signature; it stops when its control pipe
# closes.
if [ "${1:-}" = icap ]; then
    start_icap_scanner target/debug/ometascan-icap-scanner "$run"
    echo "== scanner: c-icap + ClamAV at $scanner_url"
else
    start_icap_scanner target/debug/ometascan-icap-scanner "$run" clamd
    echo "== scanner: clamd at $scanner_url"
fi
pids+=("$scanner_pid")

cat >"$run/nginx.conf" <<CONF
load_module $root/target/debug/libngx_http_ometascan_module.so;
worker_processes 1;
error_log $run/logs/error.log info;
pid $run/logs/nginx.pid;
events {}
http {
    access_log off;
    client_max_body_size 100m;
    server {
        listen 127.0.0.1:$p_nginx;
        location / {
            ometascan_pass    $scanner_url;
            ometascan_methods POST PUT any_with_body;
            proxy_pass        http://127.0.0.1:$p_back;
        }
        # Downloads: files already on the server, scanned on their way out.
        location /files/ {
            alias              $run/files/;
            ometascan_pass     $scanner_url;
            ometascan_response on;
        }
    }
}
CONF
"$nginx_bin" -p "$run" -c "$run/nginx.conf" 3>&-
sleep 0.5

head -c 700000 /dev/urandom >"$run/clean.bin"
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$run/eicar.com"
mkdir -p "$run/files"
cp "$run/clean.bin" "$run/eicar.com" "$run/files/"
chmod -R a+rX "$run/files"

echo
echo "== clean 700 KB upload"
curl -s -w 'HTTP %{http_code}\n' --data-binary "@$run/clean.bin" "http://127.0.0.1:$p_nginx/upload/clean.bin"
echo
echo "== EICAR test file"
curl -s -w 'HTTP %{http_code}\n' --data-binary "@$run/eicar.com" "http://127.0.0.1:$p_nginx/upload/eicar.com"
sleep 0.3
echo
echo "== what the backend received (EICAR never reaches it)"
grep '^backend: ' "$run/backend.log" || true
echo
echo "== downloading the clean file stored on the server (byte-exact)"
curl -s -o "$run/got.bin" -w 'HTTP %{http_code}\n' "http://127.0.0.1:$p_nginx/files/clean.bin"
cmp -s "$run/got.bin" "$run/clean.bin" && echo "identical to the stored file"
echo
echo "== downloading the EICAR file stored on the server"
curl -s -w 'HTTP %{http_code}\n' "http://127.0.0.1:$p_nginx/files/eicar.com"
sleep 0.3
grep -h 'response blocked' "$run/logs/error.log" | sed 's/^.*\] [0-9#]*: \*[0-9]* /  log: /' || true
