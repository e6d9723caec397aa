#!/usr/bin/env bash
# Runs every check of the project on a Debian 12 machine, installing what it needs first:
# formatting, clippy, the unit tests of the core, the integration tests (real nginx with the
# module, scanner doubles, c-icap + ClamAV, recording backend), a short run of every fuzz
# target, nginx with the module under
# valgrind, the build against Debian's own nginx, the Debian package (built, installed, used,
# purged), the RPM, and the nginx.org packages with the --with-compat proof.
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
echo "== fuzzing: every parser of hostile input, briefly (scripts/fuzz.sh SECONDS for longer)"
"$root/scripts/fuzz.sh" 15
echo "== memcheck: nginx with the module under valgrind"
"$root/scripts/check-valgrind.sh"
echo "== module built against Debian's nginx"
"$root/scripts/check-system-nginx.sh"
echo "== Debian package: build, lintian, install, use, purge"
"$root/scripts/check-deb.sh"
echo "== RPM: build and inspect"
"$root/scripts/check-rpm.sh"
echo "== nginx.org packages: one --with-compat module in two nginx builds, refused by a third"
"$root/scripts/check-nginx-org.sh"
