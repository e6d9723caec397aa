#!/usr/bin/env bash
# Builds the Debian package, installs it into this machine's Debian nginx with apt, proves it
# works there (nginx -t with the distribution's configuration; a clean upload passes and the
# EICAR file is blocked through c-icap + ClamAV), then purges it and checks nothing is left.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
deb=$("$root/scripts/build-deb.sh" | tail -1)
echo "== built $deb"
echo "== lintian"
lintian --fail-on error --suppress-tags initial-upload-closes-no-bugs "$deb"

so=/usr/lib/nginx/modules/ngx_http_ometascan_module.so
avail=/usr/share/nginx/modules-available/mod-http-ometascan.conf
enabled=/etc/nginx/modules-enabled/50-mod-http-ometascan.conf

# Installing must not start or reload a system nginx on port 80.
had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
[ $had_policy -eq 1 ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
run=$(mktemp -d /tmp/ometascan-deb.XXXXXX)
chmod 755 "$run"
pids=()
cleanup() {
    [ -f "$run/nginx.pid" ] && /usr/sbin/nginx -c "$run/nginx.conf" -s stop 2>/dev/null || true
    stop_icap_scanner
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    rm -rf "$run"
    [ $had_policy -eq 1 ] || rm -f /usr/sbin/policy-rc.d
}
trap cleanup EXIT

DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
for f in "$so" "$avail" "$enabled"; do
    [ -e "$f" ] || { echo "missing after install: $f"; exit 1; }
done
[ "$(readlink -f "$enabled")" = "$avail" ] || { echo "$enabled does not point to $avail"; exit 1; }
grep -q 'load_module modules/ngx_http_ometascan_module.so;' "$avail"
echo "== nginx -t with Debian's configuration (loads the module through modules-enabled)"
/usr/sbin/nginx -t

cargo build -q -p ometascan-testkit --bins --manifest-path "$root/Cargo.toml"
p_nginx=$(port); p_back=$(port)
"$root/target/debug/ometascan-backend" "127.0.0.1:$p_back" >"$run/backend.log" & pids+=($!)
start_icap_scanner "$root/target/debug/ometascan-icap-scanner" "$run"
pids+=("$scanner_pid")

cat >"$run/nginx.conf" <<CONF
include /etc/nginx/modules-enabled/*.conf;
pid $run/nginx.pid;
error_log $run/error.log info;
events {}
http {
    access_log off;
    client_body_temp_path $run/body;
    server {
        listen 127.0.0.1:$p_nginx;
        location / {
            ometascan_pass $scanner_url;
            proxy_pass     http://127.0.0.1:$p_back;
        }
    }
}
CONF
/usr/sbin/nginx -t -c "$run/nginx.conf"
/usr/sbin/nginx -c "$run/nginx.conf" 3>&-
sleep 0.5
grep -q "ometascan module .* started" "$run/error.log" || { echo "no version line in the error log"; cat "$run/error.log"; exit 1; }
head -c 700000 /dev/urandom >"$run/clean.bin"
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$run/eicar.com"
clean=$(curl -s -o /dev/null -w '%{http_code}' --data-binary "@$run/clean.bin" "http://127.0.0.1:$p_nginx/upload/clean.bin")
eicar=$(curl -s -o "$run/page.html" -w '%{http_code}' --data-binary "@$run/eicar.com" "http://127.0.0.1:$p_nginx/upload/eicar.com")
sleep 0.3
echo "== installed package in Debian's nginx: clean upload -> $clean, EICAR -> $eicar"
[ "$clean" = 200 ] && [ "$eicar" = 403 ] || { cat "$run/error.log"; exit 1; }
grep -q "VIRUS FOUND" "$run/page.html"
grep -q "backend: POST /upload/clean.bin (700000 bytes" "$run/backend.log"
[ "$(grep -c '^backend: ' "$run/backend.log")" = 1 ] || { echo "EICAR reached the backend"; exit 1; }
/usr/sbin/nginx -c "$run/nginx.conf" -s stop
sleep 0.3

echo "== purge"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq libnginx-mod-http-ometascan >/dev/null
for f in "$so" "$avail" "$enabled" /usr/share/doc/libnginx-mod-http-ometascan; do
    [ ! -e "$f" ] && [ ! -L "$f" ] || { echo "left after purge: $f"; exit 1; }
done
dpkg -s libnginx-mod-http-ometascan >/dev/null 2>&1 && { echo "package still known to dpkg"; exit 1; }
/usr/sbin/nginx -t
echo "3 passed, 0 failed"
