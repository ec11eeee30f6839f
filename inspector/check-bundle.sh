#!/usr/bin/env bash
# CI: type-checks the sources, rebuilds the page and fails when the committed
# daggr/assets/inspector/ differ from what the sources build.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/esbuild ] || [ ! -x node_modules/.bin/tsc ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
npx tsc --noEmit -p .
bash build.sh
cd ..
if ! git diff --exit-code --stat -- daggr/assets/inspector || [ -n "$(git status --porcelain -- daggr/assets/inspector)" ]; then
    echo "assets/inspector is stale: run inspector/build.sh and commit the result" >&2
    git status --short -- daggr/assets/inspector >&2
    exit 1
fi
echo "assets/inspector is up to date ($(wc -c < daggr/assets/inspector/inspector.js) bytes of JS)"
