#!/usr/bin/env bash
# A real Gradio server for the GradioNode tests and bench: a venv with a pinned gradio
# (5.50.0, one of the versions the protocol reference was verified against) and the
# gradio_client it depends on (the bench compares against it). The venv lives in
# $DAGGR_TEST_ENV/gradio-venv and is reused: when the pinned version already imports,
# this script returns at once.
set -euo pipefail
: "${DAGGR_TEST_ENV:=$HOME/.cache/daggr-test-env}"
venv="$DAGGR_TEST_ENV/gradio-venv"
GRADIO_VERSION="5.50.0"
check() {
    [ -x "$venv/bin/python" ] && GRADIO_ANALYTICS_ENABLED=False "$venv/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m, importlib.util
assert m.version("gradio") == "$GRADIO_VERSION"
assert importlib.util.find_spec("gradio") and importlib.util.find_spec("gradio_client")
PY
}
# A wheelhouse of the same set, so the run_locally test installs its Space's venv
# offline (pip --no-index --find-links) instead of asking the index for 50 packages.
wheels="$DAGGR_TEST_ENV/gradio-wheels"
wheelhouse() {
    [ -f "$wheels/.complete-$GRADIO_VERSION" ] && return 0
    mkdir -p "$wheels"
    "$venv/bin/pip" download --quiet --disable-pip-version-check -d "$wheels" "gradio==$GRADIO_VERSION"
    touch "$wheels/.complete-$GRADIO_VERSION"
}
if check; then
    wheelhouse
    echo "gradio: ready ($venv)"
    exit 0
fi
mkdir -p "$DAGGR_TEST_ENV"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install --quiet --disable-pip-version-check "gradio==$GRADIO_VERSION"
GRADIO_ANALYTICS_ENABLED=False "$venv/bin/python" -c "import gradio, gradio_client" \
    || { echo "gradio: gradio==$GRADIO_VERSION does not import" >&2; exit 1; }
check || { echo "gradio: install of gradio==$GRADIO_VERSION did not import" >&2; exit 1; }
wheelhouse
echo "gradio: installed ($venv)"
