#!/usr/bin/env bash
# Installs what building and testing the module needs on Debian 12: the C toolchain pieces
# bindgen and the vendored nginx build use, curl and openssl for the tests, and Debian's
# nginx + nginx-dev for building and loading the module into the distribution's nginx, and
# c-icap + ClamAV, the real ICAP scanner the tests and the demo run; php-cgi, node, chromium
# and the parsers of scripts/install-difftest-deps.sh for the differential suite (chromium as
# a client whose forms and fetch requests are replayed), and Go, Ruby with Rack, a JDK with
# commons-fileupload, commons-io and Jackson for its Go, Rack and Java parsers; redis-server for
# the verdict cache's second level; prometheus for promtool, which lints the status page;
# Apache with mod_dav, a backend that writes Content-Range pieces into the file it serves.
# Rust itself (cargo with rustfmt and clippy) must be installed already (rustup).
set -euo pipefail

packages=(clang libclang-dev libssl-dev libpcre2-dev zlib1g-dev make curl openssl ca-certificates python3
          nginx nginx-dev c-icap libc-icap-mod-virus-scan clamav-daemon
          debhelper dpkg-dev lintian rpm cpio valgrind brotli bzip2 redis-server
          php-cgi python3-venv chromium clamav prometheus zstd
          golang-go ruby ruby-rack default-jdk-headless libcommons-fileupload-java
          libcommons-io-java libjackson2-databind-java apache2)
# node and npm for the differential suite's Node parsers, unless the machine has them already.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Installing the packages must not start system services (nginx on port 80, clamd, freshclam).
    had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    if [ $had_policy -eq 0 ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ $had_policy -eq 1 ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

if ! command -v cargo >/dev/null; then
    echo "cargo is not installed: install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi
"$(dirname "$0")/install-difftest-deps.sh"
for c in rustfmt clippy; do
    if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$c"
    fi
done
