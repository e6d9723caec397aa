#!/usr/bin/env bash
# Benchmark: uploads of a fixed data set (542 files of 500 KB–1 MB, generated deterministically)
# by concurrent clients (wrk), through five setups measured in one run, all on 127.0.0.1:
#   1 client -> backend
#   2 client -> nginx proxy_pass -> backend
#   3 client -> nginx + module -> scanner double (allows all) -> backend
#   4 client -> nginx + module -> c-icap + ClamAV (icap://) -> backend
#   5 client -> Squid (reverse proxy, ICAP REQMOD to the same c-icap) -> backend
#   6 as 4, with the verdict cache (primed with one pass over the data set: the steady state
#     of a replayed data set is all hits, blocks included)
#   7 as 3, with the verdict cache, every lookup a miss (verdicts valid 1 ms): the miss path
#   8 as 3, with the verdict cache primed: the hit path
#   9 as 3, each file sent as a multipart/form-data upload (a file part and a field): the cost
#     of splitting a form, next to row 3's raw uploads
#  10 as 3, each file sent base64-encoded in a JSON body ({"name": ..., "data": "..."}): the
#     cost of tokenizing JSON and decoding base64
#  11 as 3, each file sent base64-encoded in a url-encoded form (name=...&data=...): the cost
#     of decoding a form's values
#  12 client -> nginx + module -> clamd directly (clamd://, no ICAP server) -> backend, next to
#     row 4's c-icap in front of a clamd of the same settings
#  13 client -> plain nginx that sends the body twice itself: `mirror` with
#     `mirror_request_body on` to the scanner double, and proxy_pass to the backend: the
#     physical reference for row 3 (the same bytes moved, no scanning logic)
#  20 as 12, clamd on its local socket
#  21 as 20, with `ometascan_clamd_fildes on`: clamd gets each body as a file (FILDES)
#  18 as 3, each file sent as a GraphQL multipart request (an `operations` JSON field, a `map`
#     field, the file part): the cost of reading the JSON inside a form's field
#  19 as 3, each file sent base64-encoded in an XML body (<upload><name/><data/></upload>):
#     the cost of reading XML and decoding base64
# Downloads: the data set's clean files served by an nginx of their own (`root`, sendfile)
# and fetched with GET through nginx:
#  14 nginx proxy_pass, no response scanning
#  15 as 14, responses scanned by the scanner double (ometascan_response on)
#  16 as 14, responses scanned by c-icap + ClamAV (RESPMOD)
#  17 as 16, with the verdict cache primed (every file downloaded once before)
# Prints req/s, MB/s uploaded, wrk's p50/p90/p99 latency, nginx's own p99 $request_time (from
# its access log: the time from reading the request to the response; the rest of wrk's is the
# wait before nginx reads a request), errors, and CPU seconds per 1000 requests of each process
# group. ClamAV's clean-file cache is off (the data set repeats). One file in 20
# carries the EICAR test string: rows 4, 5, 6 and 12 check that each of those is answered with a
# complete block page and that none reaches the backend.
# Then, with the module and the scanner double: the workers' memory growth during 20
# concurrent 100 MB uploads, and the worker's CPU while 100 scans wait on a scanner that
# answers after 10 s.
#
# Usage: scripts/bench.sh [CONNECTIONS] [SECONDS]     (default 100 20)
# ROWS="2 3 13" measures those rows only (the others print nothing, their targets are moot;
# no block pages, no memory and waiting checks).
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
    exec 4>&- 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    [ -n "${KEEP:-}" ] || rm -rf "$run"
}
trap cleanup EXIT
mkdir -p "$run/data" "$run/logs"

python3 - "$run/data" <<'PY'
import random, sys, os
eicar = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
rng = random.Random(542)
for i in range(542):
    size = rng.randint(500_000, 1_000_000)
    body = rng.randbytes(size)
    name = f"f{i:03}.bin"
    if i % 20 == 19:
        at = rng.randrange(size)
        body = body[:at] + eicar + body[at + len(eicar):]
        name = f"f{i:03}-eicar.bin"
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        f.write(body)
PY
total=$(du -sb "$run/data" | cut -f1)
# The same files base64-encoded in a JSON body and in a url-encoded form (rows 10 and 11), as
# GraphQL multipart requests (row 18) and base64-encoded in XML (row 19).
mkdir -p "$run/json" "$run/urlenc" "$run/graphql" "$run/xml"
graphql_boundary=----ometascanBenchGraphQL7MA4YWxk
python3 - "$run" "$graphql_boundary" <<'PY'
import base64, json, os, sys, urllib.parse
run, boundary = sys.argv[1], sys.argv[2].encode()
ops = json.dumps({"query": "mutation ($file: Upload!) { upload(file: $file) { id } }",
                  "variables": {"file": None}}).encode()
for name in sorted(os.listdir(os.path.join(run, "data"))):
    data = open(os.path.join(run, "data", name), "rb").read()
    b64 = base64.b64encode(data).decode()
    with open(os.path.join(run, "json", name), "w") as f:
        json.dump({"name": name, "data": b64}, f)
    with open(os.path.join(run, "urlenc", name), "w") as f:
        f.write("name=" + name + "&data=" + urllib.parse.quote(b64, safe=""))
    with open(os.path.join(run, "graphql", name), "wb") as f:
        for head, value in ((b'name="operations"', ops), (b'name="map"', b'{"0": ["variables.file"]}'),
                            (b'name="0"; filename="%s"' % name.encode(), data)):
            f.write(b"--" + boundary + b"\r\nContent-Disposition: form-data; " + head + b"\r\n\r\n"
                    + value + b"\r\n")
        f.write(b"--" + boundary + b"--\r\n")
    with open(os.path.join(run, "xml", name), "w") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?><upload><name>%s</name><data>%s</data></upload>'
                % (name, b64))
PY

cat >"$run/post.lua" <<LUA
local files = {}
local dir = "$run/data"
for i = 0, 541 do
  local name = string.format(i % 20 == 19 and "f%03d-eicar.bin" or "f%03d.bin", i)
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
# The same files as form uploads: one file part and one plain field.
cat >"$run/form.lua" <<LUA
local files = {}
local dir = "$run/data"
local boundary = "----ometascanBenchBoundary7MA4YWxk"
for i = 0, 541 do
  local name = string.format(i % 20 == 19 and "f%03d-eicar.bin" or "f%03d.bin", i)
  local f = io.open(dir .. "/" .. name, "rb")
  local data = f:read("*a")
  f:close()
  files[#files + 1] = "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="title"\r\n\r\n' .. name .. "\r\n" ..
    "--" .. boundary .. "\r\n" ..
    'Content-Disposition: form-data; name="file"; filename="' .. name .. '"\r\n' ..
    "Content-Type: application/octet-stream\r\n\r\n" .. data .. "\r\n" ..
    "--" .. boundary .. "--\r\n"
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/upload/form", { ["Content-Type"] = "multipart/form-data; boundary=" .. boundary }, files[(n % #files) + 1])
end
LUA
for kind in json urlenc graphql xml; do
    case $kind in
        json) ct=application/json ;;
        urlenc) ct=application/x-www-form-urlencoded ;;
        graphql) ct="multipart/form-data; boundary=$graphql_boundary" ;;
        xml) ct=application/xml ;;
    esac
    cat >"$run/$kind.lua" <<LUA
local files = {}
local dir = "$run/$kind"
for i = 0, 541 do
  local name = string.format(i % 20 == 19 and "f%03d-eicar.bin" or "f%03d.bin", i)
  local f = io.open(dir .. "/" .. name, "rb")
  files[#files + 1] = f:read("*a")
  f:close()
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/upload/$kind", { ["Content-Type"] = "$ct" }, files[(n % #files) + 1])
end
LUA
done
# The same load, and every answer looked at: a 403 must be c-icap's whole page naming an EICAR
# file (c-icap ends its page with two NUL bytes); a 2xx must not come from a backend that saw
# the EICAR string.
cat "$run/post.lua" - >"$run/check.lua" <<'LUA'
blocked, cut, leaked = 0, 0, 0
statuses = ""
function response(status, headers, body)
  if status ~= 200 and status ~= 403 and #statuses < 200 then statuses = statuses .. " " .. status end
  if status == 403 then
    if body:find("<h1>VIRUS FOUND</h1>", 1, true) and body:find("-eicar.bin", 1, true)
        and body:find("</html>[%s%z]*$") then
      blocked = blocked + 1
    else
      cut = cut + 1
    end
  elseif status >= 200 and status < 300 then
    for k, _ in pairs(headers) do
      if string.lower(k) == "x-eicar-received" then leaked = leaked + 1 end
    end
  end
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local b, c, l, other = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    b = b + t:get("blocked"); c = c + t:get("cut"); l = l + t:get("leaked")
    other = other .. t:get("statuses")
  end
  io.write(string.format("check: %d %d %d\n", b, c, l))
  io.write("other statuses:" .. other .. "\n")
end
LUA
# The same checks for clamd's block: the module's page naming the threat.
sed -e 's|body:find("<h1>VIRUS FOUND</h1>", 1, true) and body:find("-eicar.bin", 1, true)|body:find("carries a threat: Ometascan.Test.EICAR", 1, true)|' \
    "$run/check.lua" >"$run/check-clamd.lua"
grep -q 'carries a threat' "$run/check-clamd.lua"

p_back=$(port); p_double=$(port); p_plain=$(port); p_mod=$(port); p_icap=$(port); p_squid=$(port)
p_icap_cache=$(port); p_miss=$(port); p_hit=$(port); p_clamd=$(port); p_mirror=$(port)

"$bin/ometascan-backend" "127.0.0.1:$p_back" >/dev/null & pids+=($!); pid_back=$!
"$bin/ometascan-scanner-double" "127.0.0.1:$p_double" allow >/dev/null & pids+=($!); pid_double=$!
OMETASCAN_CLAMD_CACHE=off start_icap_scanner "$bin/ometascan-icap-scanner" "$run"
pids+=("$scanner_pid")
icap_url=$scanner_url
icap_pids=$(sed -n 's/^pids (\([0-9]*\), \([0-9]*\))/\1 \2/p' "$run/scanner.log")
# clamd alone, with the same settings as c-icap's (cache off), on its own control pipe (fd 4).
mkfifo "$run/clamd.ctl"
OMETASCAN_CLAMD_CACHE=off "$bin/ometascan-icap-scanner" clamd <"$run/clamd.ctl" >"$run/clamd.log" 2>&1 3>&- &
pids+=($!)
exec 4>"$run/clamd.ctl"
for _ in $(seq 1 600); do grep -q '^clamd://' "$run/clamd.log" && break; sleep 0.1; done
clamd_url=$(grep -m1 '^clamd://' "$run/clamd.log")
for _ in $(seq 1 50); do grep -q '^clamd+unix://' "$run/clamd.log" && break; sleep 0.1; done
clamd_local=$(grep -m1 '^clamd+unix://' "$run/clamd.log")
clamd_pids=$(sed -n 's/^pids (\([0-9]*\), [0-9]*)/\1/p' "$run/clamd.log")

# Every nginx listens with `reuseport`: each worker gets its own accept queue and the kernel
# spreads connections over them. Without it, one worker held about 93 of wrk's 100 connections
# in one run; with a per-worker bound (ometascan_max_scans, row 4) the other worker's scanner
# share then idles while that one's clients wait twice as long.
nginx_conf() { # name listen location-body [worker_processes] [more server-level lines]
    cat >"$run/nginx-$1.conf" <<CONF
load_module $bin/libngx_http_ometascan_module.so;
worker_processes ${4:-auto};
error_log $run/logs/error-$1.log warn;
pid $run/logs/nginx-$1.pid;
events { worker_connections 4096; }
http {
    log_format rt '\$request_time \$status \$ometascan_scan_time \$ometascan_scan_wait_time \$ometascan_scan_connect_time \$ometascan_scan_send_time \$ometascan_scan_answer_time \$ometascan_scan_handback_time \$pid';
    access_log $run/logs/access-$1.log rt buffer=256k flush=1s;
    sendfile on;
    client_max_body_size 10m;
    client_body_buffer_size 1m;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    ometascan_cache_zone verdicts:64m;
    upstream backend { server 127.0.0.1:$p_back; keepalive 64; }
    server {
        listen 127.0.0.1:$2 backlog=4096 reuseport;
        location / { $3 proxy_pass http://backend; }
        ${5:-}
        location = /ometascan_status { ometascan_status; }
    }
}
CONF
    "$nginx_bin" -p "$run" -c "$run/nginx-$1.conf" 3>&-
    echo "$2 $1" >>"$run/ports"
}
nginx_conf plain "$p_plain" ""
nginx_conf module "$p_mod" "ometascan_pass http://127.0.0.1:$p_double;"
# c-icap gives each connection a thread of its own (here 2 servers of 20 threads) and does not
# announce Max-Connections: without a bound, the connections past its threads wait in its queue
# behind kept-alive ones for as long as those live (20 s and more at 100 clients). Scans are
# bounded as the README advises: a few per worker and core, the rest queue in nginx, in order.
icap_limit="ometascan_max_scans 4 wait=10m;"
nginx_conf icap "$p_icap" "ometascan_pass $icap_url; ometascan_read_timeout 10m; $icap_limit"
nginx_conf miss "$p_miss" "ometascan_pass http://127.0.0.1:$p_double; ometascan_cache verdicts; ometascan_cache_valid 1ms;"
nginx_conf hit "$p_hit" "ometascan_pass http://127.0.0.1:$p_double; ometascan_cache verdicts; ometascan_cache_valid 1h;"
nginx_conf clamd "$p_clamd" "ometascan_pass $clamd_url; ometascan_read_timeout 10m; $icap_limit"
p_clamd_unix=$(port); p_clamd_fd=$(port)
nginx_conf clamdunix "$p_clamd_unix" "ometascan_pass $clamd_local; ometascan_read_timeout 10m; $icap_limit"
nginx_conf clamdfd "$p_clamd_fd" "ometascan_pass $clamd_local; ometascan_read_timeout 10m; ometascan_clamd_fildes on; $icap_limit"
nginx_conf mirror "$p_mirror" "mirror /ometascan_mirror; mirror_request_body on;" \
    "" "location = /ometascan_mirror { internal; proxy_pass http://127.0.0.1:$p_double; }"

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
squid -f "$run/squid.conf" -N >/dev/null 2>&1 3>&- & pids+=($!)
for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/$p_squid) 2>/dev/null && break; sleep 0.1; done

children() { # pids of a process and its descendants
    local all="$1" next
    for p in $1; do
        next=$(pgrep -P "$p" | tr '\n' ' ')
        [ -n "$next" ] && all="$all $(children "$next")"
    done
    echo "$all"
}
ticks() { # CPU ticks of the given processes and all their descendants, living or reaped
    local t=0
    for p in $(children "$*"); do
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15+$16+$17}' "/proc/$p/stat")))
    done
    echo $t
}
nginx_workers() { pgrep -P "$(cat "$run/logs/nginx-$1.pid")" | tr '\n' ' '; }
hz=$(getconf CLK_TCK)

printf '\n%-34s %8s %7s %7s %7s %7s %7s %6s %7s %4s %6s  %s\n' "setup ($conns clients, ${secs}s)" "req/s" "MB/s" "p50 ms" "p90 ms" "p99 ms" "ngx p99" "errors" "blocked" "cut" "passed" "CPU s / 1000 req"
row() { # label script url group-name:pids...
    local label=$1 script=$2 url=$3; shift 3
    if [ -n "${ROWS:-}" ] && [[ " $ROWS " != *" ${label%% *} "* ]]; then
        printf -v "rps_${label%% *}" '1'; printf -v "p99_${label%% *}" '1'
        printf -v "cpu_${label%% *}" '1'; printf -v "scpu_${label%% *}" '1'
        return 0
    fi
    local before=() names=() groups=()
    for g in "$@"; do names+=("${g%%:*}"); groups+=("${g#*:}"); before+=("$(ticks ${g#*:})"); done
    local out
    # Warm-up (connections, buffers, caches), not measured.
    wrk -t2 -c"$conns" -d3s --timeout 120s -s "$run/post.lua" "$url" >/dev/null 2>&1 || true
    for i in "${!groups[@]}"; do before[$i]=$(ticks ${groups[$i]}); done
    # nginx's own view of the row: $request_time of the requests of this run (its access log,
    # found by the port the row's URL names).
    local conf access=""
    conf=$(awk -v p="${url##*:}" '$1 == p {print $2}' "$run/ports" 2>/dev/null | tail -1)
    [ -n "$conf" ] && access="$run/logs/access-$conf.log" && sleep 1.2 && : >"$access"
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 120s --latency -s "$run/$script.lua" "$url" 2>&1)
    echo "$out" >"$run/wrk-${label%% *}.txt"
    local reqs rps p50 p99 errs
    reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' <<<"$out")
    p50=$(awk '$1=="50%"{print $2}' <<<"$out")
    p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    local p90 ngx99=- workers=""
    p90=$(awk '$1=="90%"{print $2}' <<<"$out")
    if [ -n "$access" ]; then
        sleep 1.2
        ngx99=$(sort -n "$access" | awk '{v[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; if (NR) printf "%.0f", v[i]*1000; else print "-"}')
        # Each worker's requests and their mean $request_time (the log's last field is $pid):
        # a per-worker bound (ometascan_max_scans) gives each worker the same share of the
        # scanner, so a worker holding more connections keeps its clients waiting longer.
        workers=$(awk '{n[$NF]++; s[$NF]+=$1} END {for (p in n) printf "%s%d requests %.0f ms", (k++ ? ", " : ""), n[p], s[p]/n[p]*1000}' "$access")
    fi
    errs=$(( $(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$out" | head -1 || echo 0) + 0 ))
    local sockerr
    sockerr=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' <<<"$out")
    for e in $sockerr; do errs=$((errs + e)); done
    # Blocks answered with a whole page are the expected answer, not errors; cut pages and
    # EICAR uploads that reached the backend are.
    local blocked=- cut=- passed=-
    if [[ $script == check* ]]; then
        read -r blocked cut passed < <(sed -n 's/^check: //p' <<<"$out")
        errs=$((errs - blocked + passed))
    fi
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
    printf '%-34s %8s %7s %7s %7s %7s %7s %6s %7s %4s %6s %s\n' "$label" "$rps" "$mbs" "$(to_ms "$p50")" "$(to_ms "$p90")" "$(to_ms "$p99")" "$ngx99" "$errs" "$blocked" "$cut" "$passed" "$cpu"
    local n=${label%% *}
    printf -v "workers_$n" '%s' "$workers"
    # wrk's mean and longest latency, and the mean that Little's law gives for the clients
    # and the rate (clients / req/s): a mean far below that one says some connections sat
    # unanswered, which the percentiles of the finished requests do not show.
    printf -v "lat_$n" '%s' "$(awk -v c="$conns" -v r="$rps" '$1 == "Latency" && $2 != "Distribution" {print "mean " $2 ", max " $4 ", clients / rate " sprintf("%.0f", c / r * 1000) "ms"}' <<<"$out")"
    printf -v "rps_$n" '%s' "$rps"
    printf -v "p99_$n" '%s' "$(to_ms "$p99")"
    printf -v "cpu_$n" '%s' "$(sed -n 's/.*\(nginx\|squid\)=\([0-9.]*\).*/\2/p' <<<"$cpu")"
    printf -v "scpu_$n" '%s' "$(sed -n 's/.*scanner=\([0-9.]*\).*/\1/p' <<<"$cpu")"
}

# block_pages LABEL URL: uploads the 27 EICAR files at once with curl and checks each answer:
# a 403 with c-icap's whole page naming that file, and nothing at the backend. Printed after
# the table.
pages_report=""
block_pages() {
    [ -z "${ROWS:-}" ] || return 0
    local dir="$run/pages-${1%% *}" f curls=()
    mkdir -p "$dir"
    for f in "$run"/data/*-eicar.bin; do
        f=$(basename "$f")
        ( set +e; curl -s -o "$dir/$f.body" -D "$dir/$f.head" -H 'Content-Type: application/octet-stream' \
            --data-binary @"$run/data/$f" "$2/upload/$f"; echo $? >"$dir/$f.rc" ) 3>&- &
        curls+=($!)
    done
    wait "${curls[@]}" || true
    pages_report+=$(python3 - "$dir" "$1" <<'PY'
import os, re, sys
d, label = sys.argv[1], sys.argv[2]
names = sorted({n.rsplit(".", 1)[0] for n in os.listdir(d)})
ok = passed = failed = cut = 0
why = {}
for n in names:
    rc = open(os.path.join(d, n + ".rc")).read().strip()
    head = open(os.path.join(d, n + ".head"), "rb").read() if os.path.exists(os.path.join(d, n + ".head")) else b""
    body = open(os.path.join(d, n + ".body"), "rb").read() if os.path.exists(os.path.join(d, n + ".body")) else b""
    status = re.findall(rb"^HTTP/[0-9.]+ ([0-9]{3})", head, re.M)
    status = status[-1].decode() if status else "none"
    if b"x-eicar-received" in head.lower():
        passed += 1
    elif status == "403" and b"<h1>VIRUS FOUND</h1>" in body and n.encode() in body \
            and re.search(rb"</html>[\s\0]*$", body):
        ok += 1
    elif status == "403":
        cut += 1
    else:
        failed += 1
        k = f"status {status}, curl exit {rc}"
        why[k] = why.get(k, 0) + 1
detail = "; ".join(f"{v} x {k}" for k, v in why.items())
print(f"\nblock pages, {label}: {ok} of {len(names)} EICAR uploads got the whole page, "
      f"{cut} a page cut short, {failed} no page{' (' + detail + ')' if detail else ''}, "
      f"{passed} reached the backend")
PY
)
}

# prime URL: every file of the data set once (8 at a time), so that the cache holds them all.
prime() {
    [ -z "${ROWS:-}" ] || return 0
    ls "$run/data" | xargs -P 8 -I{} curl -s -o /dev/null -H 'Content-Type: application/octet-stream' \
        --data-binary @"$run/data/{}" "$1/upload/{}" 3>&-
}

# Downloads (rows 14 to 17): the clean files, by name, for GETs.
p_files=$(port); p_dl=$(port); p_dl_mod=$(port); p_dl_icap=$(port); p_dl_cache=$(port)
{
    echo 'local names = {'
    for f in "$run"/data/f[0-9][0-9][0-9].bin; do echo "  \"/$(basename "$f")\","; done
    echo '}'
    echo 'local n = 0'
    echo 'request = function() n = n + 1; return wrk.format("GET", names[(n % #names) + 1]) end'
} >"$run/get.lua"
cat >"$run/nginx-files.conf" <<CONF
worker_processes auto;
error_log $run/logs/error-files.log warn;
pid $run/logs/nginx-files.pid;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    server { listen 127.0.0.1:$p_files backlog=4096; root $run/data; }
}
CONF
"$nginx_bin" -p "$run" -c "$run/nginx-files.conf" 3>&-
download_conf() { # name listen location-body
    cat >"$run/nginx-$1.conf" <<CONF
load_module $bin/libngx_http_ometascan_module.so;
worker_processes auto;
error_log $run/logs/error-$1.log warn;
pid $run/logs/nginx-$1.pid;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    ometascan_cache_zone dlverdicts:64m;
    upstream files { server 127.0.0.1:$p_files; keepalive 64; }
    server {
        listen 127.0.0.1:$2 backlog=4096 reuseport;
        location / { ometascan_methods POST; $3 proxy_pass http://files; }
    }
}
CONF
    "$nginx_bin" -p "$run" -c "$run/nginx-$1.conf" 3>&-
}
download_conf dl "$p_dl" ""
download_conf dlmod "$p_dl_mod" "ometascan_pass http://127.0.0.1:$p_double; ometascan_response on;"
download_conf dlicap "$p_dl_icap" "ometascan_pass $icap_url; ometascan_response on; ometascan_read_timeout 10m; $icap_limit"
download_conf dlcache "$p_dl_cache" "ometascan_pass $icap_url; ometascan_response on; ometascan_read_timeout 10m; ometascan_cache dlverdicts; ometascan_cache_valid 1h; $icap_limit"
files_workers=$(pgrep -P "$(cat "$run/logs/nginx-files.pid")" | tr '\n' ' ')

squid_pid=$(cat "$run/squid.pid" 2>/dev/null || echo)
row "1 client -> backend" post "http://127.0.0.1:$p_back" "backend:$pid_back"
row "2 nginx proxy_pass" post "http://127.0.0.1:$p_plain" "nginx:$(nginx_workers plain)" "backend:$pid_back"
row "3 nginx + module + double" post "http://127.0.0.1:$p_mod" "nginx:$(nginx_workers module)" "scanner:$pid_double" "backend:$pid_back"
row "4 nginx + module + c-icap/ClamAV" check "http://127.0.0.1:$p_icap" "nginx:$(nginx_workers icap)" "scanner:$icap_pids" "backend:$pid_back"
block_pages "nginx + module + c-icap/ClamAV" "http://127.0.0.1:$p_icap"
# The idle ICAP connections nginx keeps would hold c-icap's threads: close them first.
"$nginx_bin" -p "$run" -c "$run/nginx-icap.conf" -s stop 2>/dev/null || true
sleep 1
row "5 squid + c-icap/ClamAV" check "http://127.0.0.1:$p_squid" "squid:$squid_pid" "scanner:$icap_pids" "backend:$pid_back"
block_pages "squid + c-icap/ClamAV" "http://127.0.0.1:$p_squid"
# Squid's idle ICAP connections go too before the cached row.
kill "$squid_pid" 2>/dev/null || true
sleep 1
nginx_conf icapcache "$p_icap_cache" "ometascan_pass $icap_url; ometascan_read_timeout 10m; ometascan_cache verdicts; $icap_limit"
prime "http://127.0.0.1:$p_icap_cache"
row "6 nginx + module + c-icap, cache" check "http://127.0.0.1:$p_icap_cache" "nginx:$(nginx_workers icapcache)" "scanner:$icap_pids" "backend:$pid_back"
block_pages "nginx + module + c-icap/ClamAV, cache" "http://127.0.0.1:$p_icap_cache"
row "7 module + double, cache misses" post "http://127.0.0.1:$p_miss" "nginx:$(nginx_workers miss)" "scanner:$pid_double" "backend:$pid_back"
prime "http://127.0.0.1:$p_hit"
row "8 module + double, cache hits" post "http://127.0.0.1:$p_hit" "nginx:$(nginx_workers hit)" "scanner:$pid_double" "backend:$pid_back"
hits=$(curl -s "http://127.0.0.1:$p_hit/ometascan_status" | awk -F' ' '/event="hits"/ {print $2}')
row "9 module + double, forms" form "http://127.0.0.1:$p_mod" "nginx:$(nginx_workers module)" "scanner:$pid_double" "backend:$pid_back"
row "10 module + double, JSON base64" json "http://127.0.0.1:$p_mod" "nginx:$(nginx_workers module)" "scanner:$pid_double" "backend:$pid_back"
row "11 module + double, url-encoded" urlenc "http://127.0.0.1:$p_mod" "nginx:$(nginx_workers module)" "scanner:$pid_double" "backend:$pid_back"
row "18 module + double, GraphQL form" graphql "http://127.0.0.1:$p_mod" "nginx:$(nginx_workers module)" "scanner:$pid_double" "backend:$pid_back"
row "19 module + double, XML base64" xml "http://127.0.0.1:$p_mod" "nginx:$(nginx_workers module)" "scanner:$pid_double" "backend:$pid_back"
row "12 nginx + module + clamd" check-clamd "http://127.0.0.1:$p_clamd" "nginx:$(nginx_workers clamd)" "scanner:$clamd_pids" "backend:$pid_back"
row "20 module + clamd, local socket" check-clamd "http://127.0.0.1:$p_clamd_unix" "nginx:$(nginx_workers clamdunix)" "scanner:$clamd_pids" "backend:$pid_back"
row "21 module + clamd, local + FILDES" check-clamd "http://127.0.0.1:$p_clamd_fd" "nginx:$(nginx_workers clamdfd)" "scanner:$clamd_pids" "backend:$pid_back"
row "13 nginx mirror to the double" post "http://127.0.0.1:$p_mirror" "nginx:$(nginx_workers mirror)" "scanner:$pid_double" "backend:$pid_back"
row "14 download, proxy_pass" get "http://127.0.0.1:$p_dl" "nginx:$(nginx_workers dl)" "backend:$files_workers"
row "15 download, module + double" get "http://127.0.0.1:$p_dl_mod" "nginx:$(nginx_workers dlmod)" "scanner:$pid_double" "backend:$files_workers"
# The idle ICAP connections of the upload rows would hold c-icap's threads: close them first.
for c in icap icapcache; do "$nginx_bin" -p "$run" -c "$run/nginx-$c.conf" -s stop 2>/dev/null || true; done
sleep 1
row "16 download, module + c-icap" get "http://127.0.0.1:$p_dl_icap" "nginx:$(nginx_workers dlicap)" "scanner:$icap_pids" "backend:$files_workers"
"$nginx_bin" -p "$run" -c "$run/nginx-dlicap.conf" -s stop 2>/dev/null || true
sleep 1
ls "$run"/data/f[0-9][0-9][0-9].bin | xargs -P 8 -I{} sh -c 'curl -s -o /dev/null "http://127.0.0.1:'"$p_dl_cache"'/$(basename {})"' 3>&-
row "17 download, c-icap, cache primed" get "http://127.0.0.1:$p_dl_cache" "nginx:$(nginx_workers dlcache)" "scanner:$icap_pids" "backend:$files_workers"
echo
echo "data set: 542 files (27 with the EICAR string), $((total / 1000000)) MB; MB/s counts uploaded bytes;"
echo "blocked: complete block pages, cut: block pages cut short, passed: EICAR uploads the backend got"
echo "verdict cache hits counted by row 8's zone: $hits"
echo "$pages_report"
echo
python3 - "$rps_2" "$rps_3" "$rps_4" "$rps_5" "$cpu_2" "$cpu_3" "$p99_4" "$p99_5" \
    "$rps_6" "$p99_6" "$cpu_7" "$cpu_8" "$cpu_9" "$cpu_10" "$cpu_11" \
    "$rps_12" "$p99_12" "$cpu_13" "$scpu_4" "$scpu_12" "$cpu_18" "$cpu_19" \
    "$p99_3" "$p99_13" "$rps_20" "$p99_20" "$rps_21" "$p99_21" "$scpu_21" <<'PY'
import sys
(r2, r3, r4, r5, c2, c3, p4, p5, r6, p6, c7, c8, c9, c10, c11,
 r12, p12, c13, s4, s12, c18, c19, p3, p13, r20, p20, r21, p21, s21) = (
    float(x) for x in sys.argv[1:])
def line(what, value, target, ok):
    print(f"  {what:<52} {value:>10}   target {target:<8} {'met' if ok else 'MISSED'}")
print("targets:")
line("nginx CPU per request, row 3 / row 2", f"{c3 / c2:.2f}x", "<= 1.35x", c3 <= 1.35 * c2)
line("req/s, row 3 / row 2", f"{r3 / r2:.2f}x", ">= 0.5x", r3 >= 0.5 * r2)
line("req/s, row 4 / row 5", f"{r4 / r5:.2f}x", ">= 1.1x", r4 >= 1.1 * r5)
line("p99 latency, row 4 vs row 5 (ms)", f"{p4:.0f}/{p5:.0f}", "<=", p4 <= p5)
line("req/s, row 6 (cache) / row 5 (squid)", f"{r6 / r5:.2f}x", ">= 5x", r6 >= 5 * r5)
line("p99 latency, row 6 vs row 5 (ms)", f"{p6:.0f}/{p5:.0f}", "<", p6 < p5)
line("nginx CPU per request, row 7 (miss) / row 3", f"{c7 / c3:.2f}x", "<= 1.1x", c7 <= 1.1 * c3)
line("nginx CPU per request, row 8 (hit) / row 2", f"{c8 / c2:.2f}x", "<= 1.2x", c8 <= 1.2 * c2)
print(f"  {'nginx CPU per request, row 9 (forms) / row 3 (raw)':<52} {c9 / c3:>9.2f}x   (reported)")
print(f"  {'nginx CPU per request, row 10 (JSON) / row 3 (raw)':<52} {c10 / c3:>9.2f}x   (reported)")
print(f"  {'nginx CPU per request, row 11 (url-enc.) / row 3':<52} {c11 / c3:>9.2f}x   (reported)")
print(f"  {'nginx CPU per request, row 18 (GraphQL) / row 9 (forms)':<52} {c18 / c9:>9.2f}x   (reported)")
print(f"  {'nginx CPU per request, row 19 (XML) / row 10 (JSON)':<52} {c19 / c10:>9.2f}x   (reported)")
line("nginx CPU per request, row 3 / row 13 (mirror)", f"{c3 / c13:.2f}x", "<= 1.3x", c3 <= 1.3 * c13)
line("p99 latency, row 3 / row 13 (mirror)", f"{p3 / p13:.2f}x", "<= 1.5x", p3 <= 1.5 * p13)
line("req/s, row 12 (clamd, TCP) / row 4 (c-icap)", f"{r12 / r4:.2f}x", ">= 1.3x", r12 >= 1.3 * r4)
line("req/s, row 21 (clamd, FILDES) / row 4 (c-icap)", f"{r21 / r4:.2f}x", ">= 1.3x", r21 >= 1.3 * r4)
line("p99 latency, row 21 vs row 4 (ms)", f"{p21:.0f}/{p4:.0f}", "<=", p21 <= p4)
print(f"  {'req/s, row 20 (clamd, local socket) / row 4':<52} {r20 / r4:>9.2f}x   (reported)")
print(f"  {'req/s, row 21 (FILDES) / row 20 (stream)':<52} {r21 / r20:>9.2f}x   (reported)")
print(f"  {'p99 latency, row 12 vs row 4 (ms)':<52} {p12:>5.0f}/{p4:.0f}   (reported)")
print(f"  {'scanner CPU per request, row 12 / row 4':<52} {s12 / s4:>9.2f}x   (reported)")
print(f"  {'scanner CPU per request, row 21 / row 4':<52} {s21 / s4:>9.2f}x   (reported)")
PY
python3 - "$rps_14" "$rps_15" "$rps_16" "$rps_17" "$cpu_14" "$cpu_15" "$cpu_16" "$cpu_17" <<'PY'
import sys
r14, r15, r16, r17, c14, c15, c16, c17 = (float(x) for x in sys.argv[1:])
for what, value in [
    ("req/s, download scanned by the double / unscanned (15/14)", r15 / r14),
    ("nginx CPU per download, double / unscanned (15/14)", c15 / c14),
    ("req/s, download scanned by c-icap / unscanned (16/14)", r16 / r14),
    ("nginx CPU per download, c-icap / unscanned (16/14)", c16 / c14),
    ("req/s, download, c-icap with cache primed / unscanned (17/14)", r17 / r14),
    ("nginx CPU per download, cache hits / unscanned (17/14)", c17 / c14),
]:
    print(f"  {what:<60} {value:>6.2f}x   (reported)")
PY
for n in 4 21; do
    w=workers_$n
    [ -n "${!w:-}" ] && printf '  %-52s %s   (reported)\n' "row $n, each worker: requests, mean \$request_time" "${!w}"
done
for n in 4 5 21; do
    l=lat_$n
    [ -n "${!l:-}" ] && printf '  %-52s %s   (reported)\n' "row $n, wrk's latency" "${!l}"
done

[ -z "${ROWS:-}" ] || exit 0
# Memory: 20 concurrent 100 MB uploads, through plain nginx and through nginx + module +
# scanner double. The growth of the workers' peak RSS over their RSS at start.
proc_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$2/status" 2>/dev/null || echo 0; }
sum_kb() { local t=0 p; for p in ${@:2}; do t=$((t + $(proc_kb "$1" "$p"))); done; echo $t; }
wait_for() { while [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -lt "$2" ]; do sleep 0.2; done; }
head -c 100000000 /dev/urandom >"$run/big.bin"
echo
big_uploads() { # label name location-body
    local p_big workers before peak started took ok
    p_big=$(port)
    nginx_conf "$2" "$p_big" "client_max_body_size 200m; $3"
    sleep 0.5
    workers=$(nginx_workers "$2")
    before=$(sum_kb VmRSS $workers)
    started=$(date +%s.%N)
    for i in $(seq 1 20); do
        curl -s -o /dev/null -w '%{http_code}\n' -H 'Expect:' -H 'Content-Type: application/octet-stream' \
            -X POST -T "$run/big.bin" "http://127.0.0.1:$p_big/upload/big$i" >>"$run/$2.codes" 3>&- &
    done
    wait_for "$run/$2.codes" 20
    took=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
    peak=$(sum_kb VmHWM $workers)
    ok=$(grep -c '^200$' "$run/$2.codes" || true)
    printf 'memory, %-18s 20 x 100 MB at once, %d workers: %2d of 20 answered 200 in %4s s; worker RSS %d MiB at start, peak %d MiB, growth %d MiB\n' \
        "$1:" "$(wc -w <<<"$workers")" "$ok" "$took" $((before / 1024)) $((peak / 1024)) $(((peak - before) / 1024))
    growth=$(((peak - before) / 1024)); big_ok=$ok
    "$nginx_bin" -p "$run" -c "$run/nginx-$2.conf" -s stop 2>/dev/null || true
}
big_uploads "plain nginx" big-plain ""
big_uploads "module + double" big-module "ometascan_pass http://127.0.0.1:$p_double;"
module_growth=$growth module_big_ok=$big_ok

# CPU: 100 scans waiting on a scanner that answers after 10 s, one worker.
p_slow=$(port); p_wait=$(port)
"$bin/ometascan-scanner-double" "127.0.0.1:$p_slow" allow delay=10 >/dev/null 3>&- & pids+=($!)
nginx_conf wait "$p_wait" "ometascan_pass http://127.0.0.1:$p_slow; ometascan_read_timeout 60s;" 1
head -c 10000 /dev/urandom >"$run/small.bin"
sleep 0.5
in_flight() { curl -s "http://127.0.0.1:$p_wait/ometascan_status" | awk '$1 == "ometascan_scans_in_flight" {print $2}'; }
started=$(date +%s.%N)
for i in $(seq 1 100); do
    curl -s -o /dev/null -w '%{http_code}\n' --data-binary @"$run/small.bin" \
        "http://127.0.0.1:$p_wait/upload/w$i" >>"$run/wait.codes" 3>&- &
done
for _ in $(seq 1 50); do [ "$(in_flight)" = 100 ] && break; sleep 0.1; done
waiting=$(in_flight)
wait_workers=$(nginx_workers wait)
t0=$(ticks $wait_workers)
sleep 5
t1=$(ticks $wait_workers)
still=$(in_flight)
wait_for "$run/wait.codes" 100
took=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
ok=$(grep -c '^200$' "$run/wait.codes" || true)
printf 'cpu, waiting scans: one worker with %s scans waiting on a 10 s scanner used %d ms CPU in 5 s (%s still waiting after); %d of 100 answered 200 after %s s\n' \
    "$waiting" $(((t1 - t0) * 1000 / hz)) "$still" "$ok" "$took"
wait_ms=$(((t1 - t0) * 1000 / hz))
echo "targets:"
printf '  %-52s %10s   target %-8s %s\n' "worker RSS growth, 20 x 100 MB through the module" "$module_growth MiB" "<= 64" \
    "$([ "$module_growth" -le 64 ] && [ "$module_big_ok" = 20 ] && echo met || echo MISSED)"
printf '  %-52s %10s   target %-8s %s\n' "worker CPU while 100 scans wait, per second" "$((wait_ms / 5)) ms" "~0" \
    "$([ "$wait_ms" -le 50 ] && [ "$waiting" = 100 ] && [ "$ok" = 100 ] && echo met || echo MISSED)"
