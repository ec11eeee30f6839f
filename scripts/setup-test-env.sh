#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Idempotent: each step
# checks first, so the tests, .ci/run and developers share it and re-running is cheap.
# Heavy environments (Python venvs for the test servers) live outside the clone, in
# $DAGGR_TEST_ENV (default ~/.cache/daggr-test-env), and are reused when present.
set -euo pipefail
cd "$(dirname "$0")/.."
export DAGGR_TEST_ENV="${DAGGR_TEST_ENV:-$HOME/.cache/daggr-test-env}"
mkdir -p "$DAGGR_TEST_ENV"

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    echo "setup-test-env: apt-get install ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
export -f apt_install

apt_install graphviz

# One script per component, each owned by that component's tests.
for part in scripts/setup/*.sh; do
    [ -e "$part" ] || continue
    echo "setup-test-env: $part"
    bash "$part"
done
echo "setup-test-env: ready ($DAGGR_TEST_ENV)"
