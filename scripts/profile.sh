#!/usr/bin/env bash
# Where the nginx workers' CPU goes in row 3 of scripts/bench.sh (nginx + module + scanner
# double) and in row 13 (plain nginx sending the body twice itself with `mirror`): perf samples
# of the workers while wrk uploads the same data set through each, then the top symbols of each
# and their shares side by side.
#
# Usage: scripts/profile.sh [CONNECTIONS] [SECONDS]   (default 100 10)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
conns=${1:-100}; secs=${2:-10}
cd "$root"
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
cargo build -q --release
cargo build -q --release -p ometascan-testkit --bins
bin=$root/target/release
nginx_bin=$(ls -t target/release/build/nginx-sys-*/out/objs/nginx | head -1)
run=$(mktemp -d /tmp/ometascan-profile.XXXXXX)
chmod 755 "$run"
mkdir -p "$run/data" "$run/logs"
pids=()
cleanup() {
    for c in "$run"/nginx-*.conf; do [ -f "$c" ] && "$nginx_bin" -p "$run" -c "$c" -s stop 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    rm -rf "$run"
}
trap cleanup EXIT
upload_dataset "$run"
p_back=$(port); p_double=$(port)
"$bin/ometascan-backend" "127.0.0.1:$p_back" >/dev/null & pids+=($!)
"$bin/ometascan-scanner-double" "127.0.0.1:$p_double" allow >/dev/null & pids+=($!)
nginx_conf() { # name port location-body server-lines
    cat >"$run/nginx-$1.conf" <<CONF
load_module $bin/libngx_http_ometascan_module.so;
worker_processes auto;
error_log $run/logs/error-$1.log warn;
pid $run/logs/nginx-$1.pid;
events { worker_connections 4096; }
http {
    access_log off; sendfile on; client_max_body_size 10m; client_body_buffer_size 1m;
    proxy_http_version 1.1; proxy_set_header Connection "";
    upstream backend { server 127.0.0.1:$p_back; keepalive 64; }
    server { listen 127.0.0.1:$2 backlog=4096; location / { $3 proxy_pass http://backend; } $4 }
}
CONF
    "$nginx_bin" -p "$run" -c "$run/nginx-$1.conf"
}
p_mod=$(port); p_mirror=$(port)
nginx_conf module "$p_mod" "ometascan_pass http://127.0.0.1:$p_double;" ""
nginx_conf mirror "$p_mirror" "mirror /m; mirror_request_body on;" \
    "location = /m { internal; proxy_pass http://127.0.0.1:$p_double; }"
sleep 1
for name in module mirror; do
    port_var=p_${name/module/mod}
    url=http://127.0.0.1:${!port_var}
    workers=$(pgrep -P "$(cat "$run/logs/nginx-$name.pid")" | paste -sd,)
    wrk -t2 -c"$conns" -d2s -s "$run/post.lua" "$url" >/dev/null 2>&1 || true
    perf record -q -F 999 -g -p "$workers" -o "$run/$name.data" -- sleep "$secs" >/dev/null 2>&1 &
    perf_pid=$!
    wrk -t2 -c"$conns" -d"${secs}s" -s "$run/post.lua" "$url" >"$run/$name.wrk" 2>&1
    wait $perf_pid || true
    echo "== $name: $(sed -n 's/^Requests\/sec: *//p' "$run/$name.wrk") req/s; top symbols of the nginx workers (self)"
    perf report -q -i "$run/$name.data" --no-children -g none --sort dso,sym --stdio 2>/dev/null \
        >"$run/$name.report" || true
    grep -E '^ +[0-9.]+%' "$run/$name.report" | head -25 || true
done
