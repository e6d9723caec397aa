#!/usr/bin/env bash
# Runs every check of the project on a Debian 12 machine, installing what it needs first:
# formatting, clippy, the unit tests of the core, the integration tests (real nginx with the
# module, scanner double, recording backend) and the build against Debian's own nginx.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/install-deps.sh"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== module built against Debian's nginx"
"$root/scripts/check-system-nginx.sh"
