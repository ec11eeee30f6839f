#!/usr/bin/env bash
# The real browser for the inspector's end-to-end tests: Debian's chromium, driven by
# playwright-core from the npm registry (never `npx playwright install`: no browser
# download). Idempotent; playwright-core lives in $DAGGR_TEST_ENV/browser.
set -euo pipefail
: "${DAGGR_TEST_ENV:=$HOME/.cache/daggr-test-env}"
if ! command -v chromium >/dev/null 2>&1; then
    if declare -F apt_install >/dev/null; then
        apt_install chromium fonts-dejavu-core
    else
        sudo_cmd=""
        [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
        export DEBIAN_FRONTEND=noninteractive
        $sudo_cmd apt-get update -qq
        $sudo_cmd apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
    fi
fi
dir="$DAGGR_TEST_ENV/browser"
version="1.65.1"
if [ ! -f "$dir/node_modules/playwright-core/package.json" ] \
    || ! grep -q "\"version\": \"$version\"" "$dir/node_modules/playwright-core/package.json"; then
    mkdir -p "$dir"
    (cd "$dir" && { [ -f package.json ] || echo '{"private": true}' > package.json; } \
        && npm install --no-audit --no-fund --silent "playwright-core@$version")
fi
echo "browser: $(command -v chromium), playwright-core $version in $dir"
