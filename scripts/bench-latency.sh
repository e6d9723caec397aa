#!/usr/bin/env bash
# The latency tail of the upload path, row by row as scripts/bench.sh measures it: plain nginx
# (row 2), nginx + module + the scanner double that answers at once (row 3), and nginx sending
# the body twice itself with `mirror` (row 13). For each row: wrk's p50/p90/p99 and, from
# nginx's access log, the p50/p90/p99 of $request_time and of the module's timing variables,
# so that the wait can be placed (before nginx reads the request, in the scan, after it).
#
# Usage: scripts/bench-latency.sh [CONNECTIONS] [SECONDS] [ROWS]   (default 10 10 "2 3 13")
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
conns=${1:-10}; secs=${2:-10}; rows=${3:-2 3 13}
cd "$root"
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
cargo build -q --release
cargo build -q --release -p ometascan-testkit --bins
bin=$root/target/release
nginx_bin=$(ls -t target/release/build/nginx-sys-*/out/objs/nginx | head -1)
run=$(mktemp -d /tmp/ometascan-latency.XXXXXX)
chmod 755 "$run"
mkdir -p "$run/logs"
pids=()
cleanup() {
    for c in "$run"/nginx-*.conf; do [ -f "$c" ] && "$nginx_bin" -p "$run" -c "$c" -s stop 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    [ -n "${KEEP:-}" ] || rm -rf "$run"
}
trap cleanup EXIT
upload_dataset "$run"
p_back=$(port); p_double=$(port)
"$bin/ometascan-backend" "127.0.0.1:$p_back" >/dev/null & pids+=($!)
"$bin/ometascan-scanner-double" "127.0.0.1:$p_double" allow >/dev/null & pids+=($!)
nginx_conf() { # name port log-format location-body server-lines
    cat >"$run/nginx-$1.conf" <<CONF
load_module $bin/libngx_http_ometascan_module.so;
worker_processes auto;
error_log $run/logs/error-$1.log warn;
pid $run/logs/nginx-$1.pid;
events { worker_connections 4096; }
http {
    log_format t '$3';
    access_log $run/logs/access-$1.log t;
    sendfile on; client_max_body_size 10m; client_body_buffer_size 1m;
    proxy_http_version 1.1; proxy_set_header Connection "";
    upstream backend { server 127.0.0.1:$p_back; keepalive 64; }
    server { listen 127.0.0.1:$2 backlog=4096; location / { $4 proxy_pass http://backend; } $5 }
}
CONF
    "$nginx_bin" -p "$run" -c "$run/nginx-$1.conf"
}
times='$request_time $ometascan_scan_time $ometascan_scan_wait_time $ometascan_scan_connect_time $ometascan_scan_send_time $ometascan_scan_answer_time $ometascan_scan_handback_time'
p_plain=$(port); p_mod=$(port); p_mirror=$(port)
nginx_conf plain "$p_plain" '$request_time' "" ""
nginx_conf module "$p_mod" "$times" "ometascan_pass http://127.0.0.1:$p_double;" ""
nginx_conf mirror "$p_mirror" '$request_time' "mirror /m; mirror_request_body on;" \
    "location = /m { internal; proxy_pass http://127.0.0.1:$p_double; }"
sleep 1
printf '%-24s %8s %18s   %s\n' "row ($conns clients, ${secs}s)" "req/s" "wrk p50/p90/p99" "nginx p50/p90/p99 (ms) of: $times"
for row in $rows; do
    case $row in
        2) name=plain; port=$p_plain; label="2 proxy_pass" ;;
        3) name=module; port=$p_mod; label="3 module + double" ;;
        13) name=mirror; port=$p_mirror; label="13 mirror" ;;
        *) continue ;;
    esac
    wrk -t2 -c"$conns" -d2s -s "$run/post.lua" "http://127.0.0.1:$port" >/dev/null 2>&1 || true
    : >"$run/logs/access-$name.log"
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 60s --latency -s "$run/post.lua" "http://127.0.0.1:$port" 2>&1)
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' <<<"$out")
    lat=$(python3 - <<PY
import re
out = """$out"""
m = {'us': 0.001, 'ms': 1, 's': 1000, 'm': 60000}
def ms(p):
    g = re.search(r'^\s*' + p + r'%\s+([0-9.]+)([a-z]+)', out, re.M)
    return f"{float(g.group(1)) * m[g.group(2)]:.0f}" if g else "-"
print("/".join(ms(p) for p in ("50", "90", "99")))
PY
)
    nginx=$(python3 - "$run/logs/access-$name.log" <<'PY'
import sys
cols = []
for line in open(sys.argv[1]):
    for i, v in enumerate(line.split()):
        while len(cols) <= i:
            cols.append([])
        try:
            cols[i].append(float(v) * 1000)
        except ValueError:
            pass
def q(v, p):
    v = sorted(v)
    return f"{v[min(len(v) - 1, int(len(v) * p))]:.0f}" if v else "-"
print("  ".join("/".join(q(c, p) for p in (0.5, 0.9, 0.99)) for c in cols))
PY
)
    printf '%-24s %8s %18s   %s\n' "$label" "$rps" "$lat" "$nginx"
done
