#!/usr/bin/env bash
# Uploads in pieces: a 100 MB file uploaded with tus-js-client in 5 MB pieces to the tus
# reference server (@tus/server + @tus/file-store), through nginx + module + scanner double,
# ROUNDS times, in two rows of one run:
#   1 the pieces scanned each alone (no ometascan_pieces): what a module without assembly does
#   2 ometascan_pieces tus: each piece also written into the spool, the assembled file scanned
#     before the last piece goes on
# Prints per upload: wall time, nginx workers' CPU, bytes sent to the scanner (status page),
# and bytes the workers wrote (wchar) per byte uploaded (nginx's own temp files and the spool).
#
# Usage: scripts/bench-pieces.sh [ROUNDS]   (default 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
rounds=${1:-3}
cd "$root"
bash scripts/install-difftest-deps.sh
cargo build -q --release
cargo build -q --release -p ometascan-testkit --bins
bin=$root/target/release
nginx_bin=$(ls -t "$root"/target/release/build/nginx-sys-*/out/objs/nginx | head -1)
modules=$root/target/difftest/node/node_modules

run=$(mktemp -d /tmp/ometascan-bench-pieces.XXXXXX)
chmod 755 "$run"
mkdir -p "$run/logs" "$run/store" "$run/spool"
chmod 777 "$run/spool"
pids=()
cleanup() {
    for c in "$run"/nginx-*.conf; do
        [ -f "$c" ] && "$nginx_bin" -p "$run" -c "$c" -s stop 2>/dev/null || true
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    rm -rf "$run"
}
trap cleanup EXIT
head -c 100000000 /dev/urandom >"$run/file.bin"
p_tus=$(port); p_double=$(port)
NODE_PATH=$modules node tests/pieces/tus_server.js "$p_tus" "$run/store" >/dev/null & pids+=($!)
"$bin/ometascan-scanner-double" "127.0.0.1:$p_double" allow >/dev/null & pids+=($!)

nginx_conf() { # name port location-lines
    cat >"$run/nginx-$1.conf" <<CONF
load_module $root/target/release/libngx_http_ometascan_module.so;
worker_processes 2;
error_log $run/logs/error-$1.log warn;
pid $run/logs/nginx-$1.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_max_body_size 20m;
    client_body_temp_path $run/body-$1;
    server {
        listen 127.0.0.1:$2;
        location /files/ {
            ometascan_pass http://127.0.0.1:$p_double;
            $3
            proxy_set_header Host \$http_host;
            proxy_pass http://127.0.0.1:$p_tus;
        }
        location = /status { ometascan_status; }
    }
}
CONF
    "$nginx_bin" -p "$run" -c "$run/nginx-$1.conf"
}
p_alone=$(port); p_pieces=$(port)
nginx_conf alone "$p_alone" ""
nginx_conf pieces "$p_pieces" "ometascan_pieces tus spool=$run/spool;"
sleep 1
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$p_tus/files/" && break; sleep 0.2; done

workers() { pgrep -P "$(cat "$run/logs/nginx-$1.pid")" | tr '\n' ' '; }
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
wchar() { local t=0 p; for p in "$@"; do t=$((t + $(awk '$1 == "wchar:" {print $2}' "/proc/$p/io"))); done; echo $t; }
scanned() { curl -s "http://127.0.0.1:$1/status" | awk '$1 == "ometascan_scanned_bytes_total" {print $2}'; }
hz=$(getconf CLK_TCK)
size=$(stat -c %s "$run/file.bin")
printf '%-26s %8s %12s %18s %20s\n' row "s/upload" "CPU ms/upload" "scanner MB/upload" "written B/uploaded B"
for name in alone pieces; do
    port=${name/alone/$p_alone}; port=${port/pieces/$p_pieces}
    w=$(workers "$name")
    t0=$(ticks $w); c0=$(wchar $w); s0=$(scanned "$port"); started=$(date +%s.%N)
    for _ in $(seq "$rounds"); do
        out=$(NODE_PATH=$modules node tests/pieces/tus_client.js "http://127.0.0.1:$port/files/" \
            "$run/file.bin" 5242880)
        case $out in success*) ;; *) echo "upload failed: $out" >&2; exit 1 ;; esac
    done
    t1=$(ticks $w); c1=$(wchar $w); s1=$(scanned "$port")
    python3 -c "
import time
n = $rounds
label = {'alone': '1 pieces scanned alone', 'pieces': '2 ometascan_pieces tus'}['$name']
print(f'{label:<26} {(time.time() - $started) / n:>8.2f} {($t1 - $t0) * 1000 / $hz / n:>12.0f} '
      f'{($s1 - $s0) / n / 1e6:>18.1f} {($c1 - $c0) / n / $size:>20.2f}')"
done
