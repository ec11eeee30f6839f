#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Idempotent: each step
# checks first, so the tests, .ci/run and developers share it and re-running is cheap.
set -euo pipefail

need_apt=()
command -v dot >/dev/null 2>&1 || need_apt+=(graphviz)

if ((${#need_apt[@]})); then
    echo "setup-test-env: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
echo "setup-test-env: ready"
