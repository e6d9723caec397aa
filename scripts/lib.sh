# Shared by the demo, check and bench scripts (sourced, not run).

# A free TCP port on 127.0.0.1.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_icap_scanner BIN RUN_DIR [clamd]: starts c-icap + ClamAV (or, with `clamd`, clamd
# alone) through the testkit program BIN, which runs until descriptor 3 (its control pipe) is
# closed or it gets SIGTERM. Sets scanner_url and scanner_pid. Start later background processes
# with 3>&- so that they don't hold the pipe.
start_icap_scanner() {
    mkfifo "$2/scanner.ctl"
    "$1" ${3:-} <"$2/scanner.ctl" >"$2/scanner.log" 2>&1 &
    scanner_pid=$!
    exec 3>"$2/scanner.ctl"
    for _ in $(seq 1 600); do grep -qE '^(icap|clamd)://' "$2/scanner.log" && break; sleep 0.1; done
    scanner_url=$(grep -m1 -E '^(icap|clamd)://' "$2/scanner.log") || { cat "$2/scanner.log" >&2; return 1; }
}

# stop_icap_scanner: closes the control pipe and waits for c-icap and ClamAV to be stopped.
stop_icap_scanner() {
    exec 3>&- 2>/dev/null || true
    [ -n "${scanner_pid:-}" ] || return 0
    for _ in $(seq 1 150); do kill -0 "$scanner_pid" 2>/dev/null || return 0; sleep 0.1; done
}

# upload_dataset RUN_DIR: the benchmark's data set without its EICAR files (542 random files
# of 500 KB-1 MB, RUN_DIR/data/fNNN.bin, the same every time) and RUN_DIR/post.lua, a wrk
# script that uploads them in turn, raw.
upload_dataset() {
    mkdir -p "$1/data"
    python3 - "$1/data" <<'PY'
import random, sys, os
rng = random.Random(542)
for i in range(542):
    size = rng.randint(500_000, 1_000_000)
    with open(os.path.join(sys.argv[1], f"f{i:03}.bin"), "wb") as f:
        f.write(rng.randbytes(size))
PY
    cat >"$1/post.lua" <<LUA
local files = {}
for i = 0, 541 do
  local f = io.open(string.format("$1/data/f%03d.bin", i), "rb")
  files[#files + 1] = f:read("*a")
  f:close()
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/upload/f", { ["Content-Type"] = "application/octet-stream" }, files[(n % #files) + 1])
end
LUA
}
