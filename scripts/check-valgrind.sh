#!/usr/bin/env bash
# Runs nginx with the module under valgrind's memcheck (one process, no master) through the
# paths where request memory is lent to a scan: clean and EICAR uploads held in memory,
# HTTP/1.1 and HTTP/2 clients that give up while their bodies are being scanned (nginx keeps
# those requests blocked until the scan lets go of the body, then frees them), and a client
# that gives up while a slowly reading scanner is still being sent its 24 MB in-memory body,
# and the verdict cache (a clean and an EICAR upload answered again from shared memory); and
# downloads held and scanned (ometascan_response): clean and EICAR files, and HTTP/1.1 and
# HTTP/2 clients that give up while their downloads are being scanned.
# Fails on any memcheck error or on a wrong answer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"
cd "$root"
command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
cargo build -q --lib
cargo build -q -p ometascan-testkit --bins
nginx_bin=$(ls -t target/debug/build/nginx-sys-*/out/objs/nginx | head -1)
bin=$root/target/debug

run=$(mktemp -d /tmp/ometascan-valgrind.XXXXXX)
chmod 755 "$run"
mkdir -p "$run/logs"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$run"
}
trap cleanup EXIT
fail() { echo "check-valgrind: $*" >&2; cat "$run/vg.log" >&2 || true; exit 1; }

p_back=$(port); p_slow=$(port); p_scan=$(port); p_trickle=$(port); p_nginx=$(port)
"$bin/ometascan-backend" "127.0.0.1:$p_back" >/dev/null & pids+=($!)
"$bin/ometascan-scanner-double" "127.0.0.1:$p_slow" allow delay=2 >/dev/null & pids+=($!)
"$bin/ometascan-scanner-double" "127.0.0.1:$p_scan" >/dev/null & pids+=($!)
"$bin/ometascan-scanner-double" "127.0.0.1:$p_trickle" allow slow-read=0.02 >/dev/null & pids+=($!)
cat >"$run/nginx.conf" <<CONF
load_module $bin/libngx_http_ometascan_module.so;
master_process off;
daemon off;
error_log $run/logs/error.log info;
pid $run/nginx.pid;
events {}
http {
    access_log $run/logs/access.log;
    log_format cache '\$request_uri \$status \$ometascan_cache_status';
    ometascan_cache_zone verdicts:1m;
    client_max_body_size 64m;
    client_body_buffer_size 32m;
    server {
        listen 127.0.0.1:$p_nginx;
        http2 on;
        location /trickle/ { ometascan_pass http://127.0.0.1:$p_trickle; proxy_pass http://127.0.0.1:$p_back; }
        location /cached/ {
            ometascan_pass http://127.0.0.1:$p_scan; ometascan_cache verdicts;
            access_log $run/logs/cache.log cache;
            proxy_pass http://127.0.0.1:$p_back;
        }
        location /slow/ { ometascan_pass http://127.0.0.1:$p_slow; proxy_pass http://127.0.0.1:$p_back; }
        location /files/ {
            alias $run/files/; ometascan_pass http://127.0.0.1:$p_scan;
            ometascan_response on; ometascan_methods POST;
        }
        location /slowfiles/ {
            alias $run/files/; ometascan_pass http://127.0.0.1:$p_slow;
            ometascan_response on; ometascan_methods POST;
        }
        location / { ometascan_pass http://127.0.0.1:$p_scan; proxy_pass http://127.0.0.1:$p_back; }
    }
}
CONF
valgrind --error-exitcode=9 --log-file="$run/vg.log" "$nginx_bin" -p "$run" -c "$run/nginx.conf" &
vg=$!
for _ in $(seq 1 300); do (echo >/dev/tcp/127.0.0.1/$p_nginx) 2>/dev/null && break; sleep 0.2; done

head -c 3000000 /dev/urandom >"$run/clean.bin"
head -c 24000000 /dev/urandom >"$run/big.bin"
{ head -c 100000 /dev/urandom; printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'; } >"$run/eicar.bin"
mkdir -p "$run/files"
cp "$run/clean.bin" "$run/eicar.bin" "$run/files/"
chmod -R a+rX "$run/files"
# Uploads carry their type: the paths under test here are those of lent memory; a binary
# body labelled url-encoded (curl's default) is read as a form, tested elsewhere.
post() { curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/octet-stream' "$@"; }
[ "$(post --data-binary @"$run/clean.bin" "http://127.0.0.1:$p_nginx/up")" = 200 ] || fail "clean upload not 200"
[ "$(post --data-binary @"$run/eicar.bin" "http://127.0.0.1:$p_nginx/up")" = 403 ] || fail "EICAR upload not 403"
for i in 1 2; do
    [ "$(post --data-binary @"$run/clean.bin" "http://127.0.0.1:$p_nginx/cached/c")" = 200 ] || fail "cached clean upload not 200"
    [ "$(post --data-binary @"$run/eicar.bin" "http://127.0.0.1:$p_nginx/cached/e")" = 403 ] || fail "cached EICAR upload not 403"
done
[ "$(cat "$run/logs/cache.log")" = "/cached/c 200 MISS
/cached/e 403 MISS
/cached/c 200 HIT
/cached/e 403 HIT" ] || { cat "$run/logs/cache.log" >&2; fail "the second uploads were not cache hits"; }
# Downloads: the clean file byte-exact, the EICAR file blocked.
curl -s -o "$run/got.bin" "http://127.0.0.1:$p_nginx/files/clean.bin" && cmp -s "$run/got.bin" "$run/clean.bin" \
    || fail "clean download not byte-exact"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_nginx/files/eicar.bin")" = 403 ] || fail "EICAR download not 403"
# Clients that give up after 1 s while their scans take 2 s.
bin_type='Content-Type: application/octet-stream'
gone=()
for i in 1 2 3; do
    curl -s -o /dev/null -m 1 -H "$bin_type" --data-binary @"$run/clean.bin" "http://127.0.0.1:$p_nginx/slow/h1-$i" & gone+=($!)
    curl -s -o /dev/null -m 1 -H "$bin_type" --http2-prior-knowledge --data-binary @"$run/clean.bin" "http://127.0.0.1:$p_nginx/slow/h2-$i" & gone+=($!)
done
curl -s -o /dev/null -m 4 -H "$bin_type" --data-binary @"$run/big.bin" "http://127.0.0.1:$p_nginx/trickle/gone" & gone+=($!)
curl -s -o /dev/null -m 1 "http://127.0.0.1:$p_nginx/slowfiles/clean.bin?h1" & gone+=($!)
curl -s -o /dev/null -m 1 --http2-prior-knowledge "http://127.0.0.1:$p_nginx/slowfiles/clean.bin?h2" & gone+=($!)
wait "${gone[@]}" || true
sleep 3
[ "$(post --data-binary @"$run/clean.bin" "http://127.0.0.1:$p_nginx/slow/after")" = 200 ] || fail "upload after the aborts not 200"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_nginx/slowfiles/clean.bin")" = 200 ] || fail "download after the aborts not 200"
kill -QUIT "$vg"
for i in $(seq 1 300); do
    kill -0 "$vg" 2>/dev/null || break
    # Once more after 30 s, should the first signal have gone astray under valgrind; the log
    # says whether nginx had seen it.
    [ "$i" = 150 ] && { echo "check-valgrind: no exit 30 s after SIGQUIT, sending it again" >&2; kill -QUIT "$vg" 2>/dev/null || true; }
    sleep 0.2
done
if kill -0 "$vg" 2>/dev/null; then
    kill -KILL "$vg"
    tail -20 "$run/logs/error.log" >&2 || true
    fail "nginx did not exit within 60 s of SIGQUIT"
fi
rc=0; wait "$vg" || rc=$?
aborted=$(grep -c '"POST /slow/h[12]-[0-9] HTTP/[12].*" 499 ' "$run/logs/access.log" || true)
[ "$aborted" = 6 ] || fail "expected 6 requests ended by their clients (499), got $aborted"
grep -q '"POST /trickle/gone HTTP/1.1" 499 ' "$run/logs/access.log" || fail "the 24 MB upload to the slow reader did not end with 499"
downloads=$(grep -cE '"GET /slowfiles/clean.bin\?h[12] HTTP/[12].*" 499 ' "$run/logs/access.log" || true)
[ "$downloads" = 2 ] || fail "expected 2 downloads ended by their clients while scanned (499), got $downloads"
# nginx's words for a client gone while the module watched the connection during a scan.
mid_scan=$(grep -cE 'client prematurely closed connection, client: .* request: "POST /(slow|trickle)/' "$run/logs/error.log" || true)
[ "$mid_scan" = 7 ] || fail "expected 7 clients gone during their scans, the error log has $mid_scan"
grep -q "ERROR SUMMARY: 0 errors" "$run/vg.log" || fail "memcheck found errors"
[ "$rc" = 0 ] || fail "nginx under valgrind exited with $rc"
echo "check-valgrind: 0 memcheck errors; clean 200, EICAR 403, both again from the verdict cache, 7 clients gone mid-scan (HTTP/1.1, HTTP/2, one while its 24 MB body was still being sent) freed, next upload 200; downloads clean byte-exact, EICAR 403, 2 clients gone while theirs were scanned freed, next download 200"
