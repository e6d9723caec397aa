#!/usr/bin/env bash
# Builds the module against Debian's nginx (nginx-dev) and proves it loads into
# /usr/sbin/nginx and does its job there: a clean upload reaches the backend, EICAR is blocked.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
out=$root/target/system-nginx
"$root/scripts/build-system-nginx-module.sh" "$out"
cargo build -q -p ometascan-testkit --bins --manifest-path "$root/Cargo.toml"

run=$(mktemp -d /tmp/ometascan-system-nginx.XXXXXX)
chmod 755 "$run"  # nginx workers run as an unprivileged user
pids=()
cleanup() {
    [ -f "$run/nginx.pid" ] && /usr/sbin/nginx -p "$run" -c "$run/nginx.conf" -e "$run/error.log" -s stop 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$run"
}
trap cleanup EXIT

p_nginx=$(port); p_scan=$(port); p_back=$(port)
"$root/target/debug/ometascan-scanner-double" "127.0.0.1:$p_scan" >"$run/scanner.log" & pids+=($!)
"$root/target/debug/ometascan-backend" "127.0.0.1:$p_back" >"$run/backend.log" & pids+=($!)

cat >"$run/nginx.conf" <<CONF
load_module $out/ngx_http_ometascan_module.so;
pid $run/nginx.pid;
error_log $run/error.log info;
events {}
http {
    access_log off;
    client_body_temp_path $run/body;
    server {
        listen 127.0.0.1:$p_nginx;
        location / {
            ometascan_pass http://127.0.0.1:$p_scan;
            proxy_pass     http://127.0.0.1:$p_back;
        }
    }
}
CONF
/usr/sbin/nginx -t -p "$run" -c "$run/nginx.conf" -e "$run/error.log"
/usr/sbin/nginx -p "$run" -c "$run/nginx.conf" -e "$run/error.log"
sleep 0.5

clean=$(curl -s -o /dev/null -w '%{http_code}' --data-binary 'a clean upload' "http://127.0.0.1:$p_nginx/upload")
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$run/eicar.com"
eicar=$(curl -s -o /dev/null -w '%{http_code}' --data-binary "@$run/eicar.com" "http://127.0.0.1:$p_nginx/upload")
sleep 0.3
echo "Debian nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*\///') + module: clean upload -> $clean, EICAR -> $eicar"
grep -q "backend: POST /upload (14 bytes" "$run/backend.log" || { echo "backend did not get the clean upload"; cat "$run/backend.log"; exit 1; }
[ "$clean" = 200 ] && [ "$eicar" = 403 ] || { cat "$run/error.log"; exit 1; }
[ "$(grep -c '^backend: ' "$run/backend.log")" = 1 ] || { echo "EICAR reached the backend"; exit 1; }
echo "2 passed, 0 failed"
