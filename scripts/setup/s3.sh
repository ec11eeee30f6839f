#!/usr/bin/env bash
# A real S3-compatible server for the shared-cache tests (tests/shared_cache.rs): moto's
# standalone server, from PyPI, in $DAGGR_TEST_ENV/s3-venv. The tests launch it on
# 127.0.0.1 themselves (tests/common/s3_server.rs) and stop it when done; it keeps its
# buckets in memory, so nothing outlives a test.
#
# By hand: "$DAGGR_TEST_ENV/s3-venv/bin/moto_server" -H 127.0.0.1 -p 5000
set -euo pipefail
: "${DAGGR_TEST_ENV:=$HOME/.cache/daggr-test-env}"
mkdir -p "$DAGGR_TEST_ENV"
venv="$DAGGR_TEST_ENV/s3-venv"
MOTO_VERSION="5.1.22"

ready() {
    [ -x "$venv/bin/moto_server" ] &&
        "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '$MOTO_VERSION')" 2>/dev/null
}
ready && exit 0

exec 9>"$DAGGR_TEST_ENV/s3.lock"
flock 9
ready && exit 0
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
ready
echo "s3.sh: moto $MOTO_VERSION ready in $venv"
