#!/usr/bin/env bash
# Fuzzes every parser of hostile input (fuzz/fuzz_targets: ICAP and HTTP answers, OPTIONS,
# chunked bodies, multipart, url-encoded, JSON, base64, every decoder (aws-chunked too), responses
# relayed behind an interim status, cache entries, Redis
# replies, URLs, dispositions, health probes, TLS) with cargo-fuzz (libFuzzer +
# AddressSanitizer) on the stable toolchain. Each target feeds its input whole and in cuts and
# compares. The corpus starts from fuzz/seeds and grows in target/fuzz-corpus.
#
# Usage: scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
# A long run: scripts/fuzz.sh 300   (or one target: scripts/fuzz.sh 3600 multipart)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1   # cargo-fuzz's flags (sanitizers) are nightly-only
cd "$root/fuzz"
cargo fuzz build -O
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
bin="$root/fuzz/target/x86_64-unknown-linux-gnu/release"
failed=0
for t in "${targets[@]}"; do
    corpus="$root/target/fuzz-corpus/$t"
    mkdir -p "$corpus" "$root/target/fuzz-artifacts/$t"
    log="$root/target/fuzz-artifacts/$t/run-$$.log"
    seeds=()
    [ -d "$root/fuzz/seeds/$t" ] && seeds=("$root/fuzz/seeds/$t")
    if "$bin/$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$root/target/fuzz-artifacts/$t/" "$corpus" "${seeds[@]}" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -ao "cov: [0-9]*" "$log" | tail -1)
        echo "fuzz $t: ${runs:-?} runs in ${secs}s, $cov, corpus $(ls "$corpus" | wc -l)"
    else
        echo "fuzz $t: FAILED, see $log"; grep -aE "panicked|ERROR|SUMMARY" "$log" | head -5
        failed=1
    fi
done
exit $failed
