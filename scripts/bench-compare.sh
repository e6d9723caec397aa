#!/usr/bin/env bash
# A/B comparison of row 3 of scripts/bench.sh (nginx + module + scanner double, raw uploads of
# the same 542-file data set, without the EICAR files) between this work tree and another
# commit, measured in interleaved rounds so that both builds meet the same machine state:
# plain nginx, nginx's own mirror of the body to the double (row 13, the module's physical
# reference), then REV's module, then this tree's, ROUNDS times. Prints req/s and CPU seconds
# per 1000 requests of the nginx workers and of the scanner double for each round, then the
# mean nginx CPU per request of each module against the mirror's.
#
# BODY=form sends each file as a form upload instead (a file part and a field: row 9);
# BODY=urlenc base64-encoded in a url-encoded form (row 11).
#
# Usage: scripts/bench-compare.sh REV [CONNECTIONS] [SECONDS] [ROUNDS]   (default 100 10 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
rev=${1:?usage: scripts/bench-compare.sh REV [CONNECTIONS] [SECONDS] [ROUNDS]}
conns=${2:-100}; secs=${3:-10}; rounds=${4:-3}
cd "$root"
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
commit=$(git rev-parse --short "$rev")
other=$root/target/compare/$commit
[ -d "$other" ] || git worktree add -f --detach "$other" "$commit" >/dev/null
(cd "$other" && CARGO_TARGET_DIR=$other/target cargo build -q --release)
cargo build -q --release
cargo build -q --release -p ometascan-testkit --bins
bin=$root/target/release
nginx_of() { ls -t "$1"/target/release/build/nginx-sys-*/out/objs/nginx | head -1; }

run=$(mktemp -d /tmp/ometascan-compare.XXXXXX)
chmod 755 "$run"
mkdir -p "$run/data" "$run/logs"
pids=()
cleanup() {
    for c in "$run"/nginx-*.conf; do
        [ -f "$c" ] && "$(cat "${c%.conf}.bin")" -p "$run" -c "$c" -s stop 2>/dev/null || true
    done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    rm -rf "$run"
}
trap cleanup EXIT
upload_dataset "$run"
if [ "${BODY:-raw}" = urlenc ]; then
    mkdir -p "$run/urlenc"
    python3 - "$run" <<'PY'
import base64, os, sys, urllib.parse
run = sys.argv[1]
for name in sorted(os.listdir(os.path.join(run, "data"))):
    b64 = base64.b64encode(open(os.path.join(run, "data", name), "rb").read()).decode()
    with open(os.path.join(run, "urlenc", name), "w") as f:
        f.write("name=" + name + "&data=" + urllib.parse.quote(b64, safe=""))
PY
    cat >"$run/post.lua" <<LUA
local files = {}
for i = 0, 541 do
  local f = io.open(string.format("$run/urlenc/f%03d.bin", i), "rb")
  files[#files + 1] = f:read("*a")
  f:close()
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/upload/u", { ["Content-Type"] = "application/x-www-form-urlencoded" }, files[(n % #files) + 1])
end
LUA
fi
if [ "${BODY:-raw}" = form ]; then
    cat >"$run/post.lua" <<LUA
local files = {}
local boundary = "----ometascanBenchBoundary7MA4YWxk"
for i = 0, 541 do
  local f = io.open(string.format("$run/data/f%03d.bin", i), "rb")
  local data = f:read("*a")
  f:close()
  files[#files + 1] = "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="title"\r\n\r\n' .. i .. "\r\n" ..
    "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="file"; filename="f' .. i .. '.bin"\r\n' ..
    "Content-Type: application/octet-stream\r\n\r\n" .. data .. "\r\n" ..
    "--" .. boundary .. "--\r\n"
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/upload/form", { ["Content-Type"] = "multipart/form-data; boundary=" .. boundary }, files[(n % #files) + 1])
end
LUA
fi
p_back=$(port); p_double=$(port)
"$bin/ometascan-backend" "127.0.0.1:$p_back" >/dev/null & pids+=($!)
"$bin/ometascan-scanner-double" "127.0.0.1:$p_double" allow >/dev/null & pids+=($!); pid_double=$!

declare -A listen
nginx_conf() { # name module-dir nginx location-body [server-lines]
    listen[$1]=$(port)
    echo "$3" >"$run/nginx-$1.bin"
    cat >"$run/nginx-$1.conf" <<CONF
load_module $2/target/release/libngx_http_ometascan_module.so;
worker_processes auto;
error_log $run/logs/error-$1.log warn;
pid $run/logs/nginx-$1.pid;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    client_max_body_size 10m;
    client_body_buffer_size 1m;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    upstream backend { server 127.0.0.1:$p_back; keepalive 64; }
    server {
        listen 127.0.0.1:${listen[$1]} backlog=4096;
        location / { $4 proxy_pass http://backend; }
        ${5:-}
    }
}
CONF
    "$3" -p "$run" -c "$run/nginx-$1.conf"
}
nginx_conf plain "$root" "$(nginx_of "$root")" ""
nginx_conf mirror "$root" "$(nginx_of "$root")" "mirror /m; mirror_request_body on;" \
    "location = /m { internal; proxy_pass http://127.0.0.1:$p_double; }"
nginx_conf "$commit" "$other" "$(nginx_of "$other")" "ometascan_pass http://127.0.0.1:$p_double;"
nginx_conf tree "$root" "$(nginx_of "$root")" "ometascan_pass http://127.0.0.1:$p_double;"
sleep 1

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $t; }
hz=$(getconf CLK_TCK)
printf '%-10s %5s %8s %14s %15s   (%d clients, %d s, CPU s / 1000 req)\n' setup round req/s nginx double "$conns" "$secs"
for r in $(seq "$rounds"); do
    for name in plain mirror "$commit" tree; do
        url=http://127.0.0.1:${listen[$name]}
        mapfile -t workers < <(pgrep -P "$(cat "$run/logs/nginx-$name.pid")")
        wrk -t2 -c"$conns" -d2s -s "$run/post.lua" "$url" >/dev/null 2>&1 || true
        before=$(ticks "${workers[@]}"); before_d=$(ticks "$pid_double")
        out=$(wrk -t2 -c"$conns" -d"${secs}s" -s "$run/post.lua" "$url" 2>&1)
        after=$(ticks "${workers[@]}"); after_d=$(ticks "$pid_double")
        reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
        rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' <<<"$out")
        python3 -c "
n = max($reqs, 1)
print(f'{\"$name\":<10} {$r:>5} {$rps:>8.1f} {($after - $before) / $hz / n * 1000:>14.3f} {($after_d - $before_d) / $hz / n * 1000:>15.3f}')"
    done
done | tee "$run/rounds"
python3 - "$run/rounds" "$commit" <<'PY'
import sys
cpu = {}
for line in open(sys.argv[1]):
    f = line.split()
    cpu.setdefault(f[0], []).append(float(f[3]))
mean = {k: sum(v) / len(v) for k, v in cpu.items()}
for name in (sys.argv[2], "tree"):
    print(f"{name}: nginx CPU per request {mean[name] / mean['mirror']:.2f}x the mirror's, "
          f"{mean[name] / mean['plain']:.2f}x plain proxy_pass")
PY
