#!/usr/bin/env bash
# Builds the Debian package libnginx-mod-http-ometascan against Debian's nginx (nginx-dev).
# The build runs in a copy of the tracked sources under target/deb; the .deb lands there.
# Rust comes from rustup and the crates from crates.io (the registry must be reachable).
#
# Usage: scripts/build-deb.sh   → prints the path of the .deb
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/target/deb
src=$out/libnginx-mod-http-ometascan
rm -rf "$out"
mkdir -p "$src"
# The tracked files (and any not yet committed), without build output.
(cd "$root" && git ls-files -co --exclude-standard -z) | (cd "$root" && xargs -0 cp --parents -t "$src")
export CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
# Share the crates already downloaded and the compiled dependencies between builds.
(cd "$src" && dpkg-buildpackage -us -uc -b >"$out/build.log" 2>&1) || { tail -40 "$out/build.log" >&2; exit 1; }
ls "$out"/libnginx-mod-http-ometascan_*.deb
