#!/usr/bin/env bash
# Real Gradio servers for the GradioNode tests and bench: venvs with a pinned gradio and
# the gradio_client it depends on (the bench compares against it).
#
# - $DAGGR_TEST_ENV/gradio-venv: gradio 5.50.0, the version the whole suite runs on.
# - $DAGGR_TEST_ENV/gradio-<version>-venv for each of GRADIO_MATRIX (4.44.1: no API prefix,
#   queue protocol; 6.31.0: /call with error texts): scripts/test.sh runs the Gradio tests
#   again on each, so every protocol generation the client supports is exercised.
#
# The three are the versions the protocol reference was verified against. Each venv is
# reused: when its pinned version already imports, nothing is installed. A wheelhouse
# ($DAGGR_TEST_ENV/gradio-wheels) holds the same sets, so the run_locally test installs its
# Space's venv offline (pip --no-index --find-links) instead of asking the index for 50
# packages.
#
# `gradio.sh --matrix` installs nothing and prints the matrix venvs' Pythons, one a line.
set -euo pipefail
: "${DAGGR_TEST_ENV:=$HOME/.cache/daggr-test-env}"
GRADIO_VERSION="5.50.0"
GRADIO_MATRIX="4.44.1 6.31.0"
wheels="$DAGGR_TEST_ENV/gradio-wheels"
matrix_venv() { echo "$DAGGR_TEST_ENV/gradio-$1-venv"; }

if [ "${1:-}" = "--matrix" ]; then
    for version in $GRADIO_MATRIX; do echo "$(matrix_venv "$version")/bin/python"; done
    exit 0
fi

# What a version needs beside gradio itself. Gradio 4.44.1 only installs and runs today
# with these (see the protocol reference): without them it fails on `ImportError: HfFolder`
# (huggingface_hub >= 1.0), `/info` answers 500 (pydantic >= 2.11) and launch dies in
# TemplateResponse (starlette 1.x, through fastapi).
requirements() {
    case "$1" in
        4.*) echo "gradio==$1 huggingface_hub<1.0 pydantic==2.10.6 fastapi==0.115.6" ;;
        *) echo "gradio==$1" ;;
    esac
}

ready() { # venv version
    [ -x "$1/bin/python" ] && GRADIO_ANALYTICS_ENABLED=False "$1/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m
assert m.version("gradio") == "$2"
import gradio, gradio_client
PY
}

wheelhouse() { # venv version
    [ -f "$wheels/.complete-$2" ] && return 0
    mkdir -p "$wheels"
    # shellcheck disable=SC2046 # the requirements are words on purpose
    "$1/bin/pip" download --quiet --disable-pip-version-check -d "$wheels" $(requirements "$2")
    touch "$wheels/.complete-$2"
}

install() { # venv version
    local venv="$1" version="$2"
    if ready "$venv" "$version"; then
        wheelhouse "$venv" "$version"
        echo "gradio: $version ready ($venv)"
        return 0
    fi
    mkdir -p "$DAGGR_TEST_ENV"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    # shellcheck disable=SC2046
    "$venv/bin/pip" install --quiet --disable-pip-version-check $(requirements "$version")
    ready "$venv" "$version" || { echo "gradio: gradio==$version does not import in $venv" >&2; exit 1; }
    wheelhouse "$venv" "$version"
    echo "gradio: $version installed ($venv)"
}

install "$DAGGR_TEST_ENV/gradio-venv" "$GRADIO_VERSION"
for version in $GRADIO_MATRIX; do
    install "$(matrix_venv "$version")" "$version"
done
