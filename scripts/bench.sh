#!/usr/bin/env bash
# Benchmark: uploads of a fixed data set (542 files of 500 KB–1 MB, generated deterministically)
# by concurrent clients (wrk), through five setups measured in one run, all on 127.0.0.1:
#   1 client -> backend
#   2 client -> nginx proxy_pass -> backend
#   3 client -> nginx + module -> scanner double (allows all) -> backend
#   4 client -> nginx + module -> c-icap + ClamAV (icap://) -> backend
#   5 client -> Squid (reverse proxy, ICAP REQMOD to the same c-icap) -> backend
# Prints req/s, MB/s uploaded, p50/p99 latency, errors, and CPU seconds per 1000 requests of
# each process group. ClamAV's clean-file cache is off (the data set repeats).
#
# Usage: scripts/bench.sh [CONNECTIONS] [SECONDS]     (default 100 20)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
conns=${1:-100}
secs=${2:-20}
cd "$root"
command -v wrk >/dev/null && command -v squid >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk squid >/dev/null
}
cargo build -q --release
cargo build -q --release -p ometascan-testkit --bins
bin=$root/target/release
nginx_bin=$(ls -t target/release/build/nginx-sys-*/out/objs/nginx | head -1)

run=$(mktemp -d /tmp/ometascan-bench.XXXXXX)
chmod 755 "$run"
pids=()
cleanup() {
    for c in "$run"/nginx-*.conf; do [ -f "$c" ] && "$nginx_bin" -p "$run" -c "$c" -s stop 2>/dev/null || true; done
    [ -f "$run/squid.pid" ] && kill "$(cat "$run/squid.pid")" 2>/dev/null || true
    stop_icap_scanner
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    [ -n "${KEEP:-}" ] || rm -rf "$run"
}
trap cleanup EXIT
mkdir -p "$run/data" "$run/logs"

python3 - "$run/data" <<'PY'
import random, sys, os
rng = random.Random(542)
for i in range(542):
    size = rng.randint(500_000, 1_000_000)
    with open(os.path.join(sys.argv[1], f"f{i:03}.bin"), "wb") as f:
        f.write(rng.randbytes(size))
PY
total=$(du -sb "$run/data" | cut -f1)

cat >"$run/post.lua" <<LUA
local files = {}
local sizes = {}
local dir = "$run/data"
for i = 0, 541 do
  local name = string.format("f%03d.bin", i)
  local f = io.open(dir .. "/" .. name, "rb")
  files[#files + 1] = { name = name, body = f:read("*a") }
  f:close()
end
local n = 0
request = function()
  n = n + 1
  local f = files[(n % #files) + 1]
  return wrk.format("POST", "/upload/" .. f.name, { ["Content-Type"] = "application/octet-stream" }, f.body)
end
LUA

p_back=$(port); p_double=$(port); p_plain=$(port); p_mod=$(port); p_icap=$(port); p_squid=$(port)

"$bin/ometascan-backend" "127.0.0.1:$p_back" >/dev/null & pids+=($!); pid_back=$!
"$bin/ometascan-scanner-double" "127.0.0.1:$p_double" allow >/dev/null & pids+=($!); pid_double=$!
OMETASCAN_CLAMD_CACHE=off start_icap_scanner "$bin/ometascan-icap-scanner" "$run"
pids+=("$scanner_pid")
icap_url=$scanner_url
icap_pids=$(sed -n 's/^pids (\([0-9]*\), \([0-9]*\))/\1 \2/p' "$run/scanner.log")

nginx_conf() { # name listen location-body
    cat >"$run/nginx-$1.conf" <<CONF
load_module $bin/libngx_http_ometascan_module.so;
worker_processes auto;
error_log $run/logs/error-$1.log warn;
pid $run/logs/nginx-$1.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_max_body_size 10m;
    client_body_buffer_size 1m;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    upstream backend { server 127.0.0.1:$p_back; keepalive 64; }
    server {
        listen 127.0.0.1:$2 backlog=4096;
        location / { $3 proxy_pass http://backend; }
    }
}
CONF
    "$nginx_bin" -p "$run" -c "$run/nginx-$1.conf"
}
nginx_conf plain "$p_plain" ""
nginx_conf module "$p_mod" "ometascan_pass http://127.0.0.1:$p_double;"
nginx_conf icap "$p_icap" "ometascan_pass $icap_url; ometascan_read_timeout 10m;"

mkdir -p "$run/squid-cache"
chown -R proxy:proxy "$run/squid-cache" "$run/logs" 2>/dev/null || true
icap_hostport=${icap_url#icap://}
cat >"$run/squid.conf" <<CONF
http_port 127.0.0.1:$p_squid accel defaultsite=backend no-vhost
cache_peer 127.0.0.1 parent $p_back 0 no-query originserver name=backend
http_access allow all
cache deny all
cache_mem 8 MB
pid_filename $run/squid.pid
access_log none
cache_log $run/logs/squid-cache.log
coredump_dir $run/squid-cache
icap_enable on
icap_preview_enable on
icap_service scan reqmod_precache bypass=0 icap://$icap_hostport
adaptation_access scan allow all
request_body_max_size 10 MB
CONF
squid -f "$run/squid.conf" -N >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/$p_squid) 2>/dev/null && break; sleep 0.1; done

children() { # pids of a process and its descendants
    local all="$1" next
    for p in $1; do
        next=$(pgrep -P "$p" | tr '\n' ' ')
        [ -n "$next" ] && all="$all $(children "$next")"
    done
    echo "$all"
}
ticks() { # total CPU ticks of the given pids
    local t=0
    for p in $@; do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat")))
    done
    echo $t
}
nginx_workers() { pgrep -P "$(cat "$run/logs/nginx-$1.pid")" | tr '\n' ' '; }
hz=$(getconf CLK_TCK)

printf '\n%-34s %8s %8s %8s %8s %7s  %s\n' "setup ($conns clients, ${secs}s)" "req/s" "MB/s" "p50 ms" "p99 ms" "errors" "CPU s / 1000 req"
row() { # label url group-name:pids...
    local label=$1 url=$2; shift 2
    local before=() names=() groups=()
    for g in "$@"; do names+=("${g%%:*}"); groups+=("${g#*:}"); before+=("$(ticks ${g#*:})"); done
    local out
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 120s --latency -s "$run/post.lua" "$url" 2>&1)
    local reqs rps p50 p99 errs
    reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' <<<"$out")
    p50=$(awk '$1=="50%"{print $2}' <<<"$out")
    p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    errs=$(( $(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$out" | head -1 || echo 0) + 0 ))
    local sockerr
    sockerr=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' <<<"$out")
    for e in $sockerr; do errs=$((errs + e)); done
    local mbs cpu="" i
    mbs=$(python3 -c "print(f'{$rps * $total / 542 / 1e6:.1f}')")
    for i in "${!groups[@]}"; do
        local after used
        after=$(ticks ${groups[$i]})
        used=$((after - ${before[$i]}))
        cpu="$cpu ${names[$i]}=$(python3 -c "print(f'{$used / $hz / max($reqs,1) * 1000:.2f}')")"
    done
    to_ms() { python3 -c "
v='$1'
m={'us':0.001,'ms':1,'s':1000,'m':60000}
import re
g=re.match(r'([0-9.]+)([a-z]+)',v)
print(f'{float(g.group(1))*m[g.group(2)]:.0f}' if g else '-')"; }
    printf '%-34s %8s %8s %8s %8s %7s %s\n' "$label" "$rps" "$mbs" "$(to_ms "$p50")" "$(to_ms "$p99")" "$errs" "$cpu"
}

icap_group=$(children "$icap_pids")
squid_group=$(children "$(cat "$run/squid.pid" 2>/dev/null || echo)")
row "1 client -> backend" "http://127.0.0.1:$p_back" "backend:$pid_back"
row "2 nginx proxy_pass" "http://127.0.0.1:$p_plain" "nginx:$(nginx_workers plain)" "backend:$pid_back"
row "3 nginx + module + double" "http://127.0.0.1:$p_mod" "nginx:$(nginx_workers module)" "scanner:$pid_double" "backend:$pid_back"
row "4 nginx + module + c-icap/ClamAV" "http://127.0.0.1:$p_icap" "nginx:$(nginx_workers icap)" "scanner:$icap_group" "backend:$pid_back"
# The idle ICAP connections nginx keeps would hold c-icap's threads: close them first.
"$nginx_bin" -p "$run" -c "$run/nginx-icap.conf" -s stop 2>/dev/null || true
sleep 1
row "5 squid + c-icap/ClamAV" "http://127.0.0.1:$p_squid" "squid:$squid_group" "scanner:$icap_group" "backend:$pid_back"
echo
echo "data set: 542 files, $((total / 1000000)) MB; MB/s counts uploaded bytes; CPU in seconds per 1000 requests"
