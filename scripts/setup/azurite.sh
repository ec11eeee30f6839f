#!/usr/bin/env bash
# A real Azure Blob Storage server for the shared-cache tests (tests/shared_cache.rs):
# Azurite, Microsoft's official emulator, from the npm registry, in
# $DAGGR_TEST_ENV/azurite. The tests launch `azurite-blob` on 127.0.0.1 themselves
# (tests/common/azurite.rs) with a throw-away data directory and stop it when done.
#
# By hand: "$DAGGR_TEST_ENV/azurite/node_modules/.bin/azurite-blob" \
#     --blobHost 127.0.0.1 --blobPort 10000 --location /tmp/azurite --skipApiVersionCheck --loose
set -euo pipefail
: "${DAGGR_TEST_ENV:=$HOME/.cache/daggr-test-env}"
mkdir -p "$DAGGR_TEST_ENV"
dir="$DAGGR_TEST_ENV/azurite"
version="3.35.0"

ready() {
    [ -x "$dir/node_modules/.bin/azurite-blob" ] &&
        grep -q "\"version\": \"$version\"" "$dir/node_modules/azurite/package.json" 2>/dev/null
}
ready && exit 0

exec 9>"$DAGGR_TEST_ENV/azurite.lock"
flock 9
ready && exit 0
mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || echo '{"private": true}' > package.json
npm install --no-audit --no-fund --silent --omit=optional "azurite@$version"
ready
echo "azurite.sh: azurite $version ready in $dir"
