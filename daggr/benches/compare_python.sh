#!/usr/bin/env bash
# Runs the same workloads on the Python original (daggr 0.8.0) and on daggr, alternating the
# two sides round by round in one go, and prints each pair's medians and their ratio:
#
#   chain 100 cold (engine; and with the cache writes flushed), chain 100 rerun with nothing
#   changed (same pipeline; new pipeline over the same cache), edit the middle node's input
#   then run all, fan-out 50 x 0.1 s, process start to a serving inspector (and its RSS),
#   1 000-node chain build.
#
# Usage: bash daggr/benches/compare_python.sh [--rounds N] [--quick] [--markdown FILE] [--json FILE]
#
# Not part of CI (it installs from PyPI and takes about 10 minutes; the first time, a few
# more for the venv and the release build). The results go in BENCHMARKS.md.
#
# - Python side: benches/python/workloads.py, in a venv with `daggr==0.8.0` (and its
#   gradio), kept in $DAGGR_COMPARE_VENV (default ~/.cache/daggr-test-env/python-daggr-venv)
#   and reused while it holds daggr 0.8.0.
# - daggr side: the `compare` bench (benches/compare.rs), built like compare.sh builds the
#   executor benches (`cargo bench`, release profile, the workspace's target directory),
#   then run directly.
# - benches/python/driver.py (standard library only) alternates the sides and tabulates.
#
# Needs python3 (3.10 or newer, with venv and pip) and cargo; network access to PyPI the
# first time only.
set -euo pipefail

cd "$(dirname "$0")/.."   # daggr/
benches=$PWD/benches

driver_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) driver_args+=(--rounds "$2"); shift ;;
        --quick) driver_args+=(--quick) ;;
        --markdown|--json) driver_args+=("$1" "$(realpath -m "$2")"); shift ;;
        *) echo "usage: $0 [--rounds N] [--quick] [--markdown FILE] [--json FILE]" >&2; exit 2 ;;
    esac
    shift
done

# 1. The Python original in its own venv.
venv=${DAGGR_COMPARE_VENV:-$HOME/.cache/daggr-test-env/python-daggr-venv}
py=$venv/bin/python
installed=$("$py" -c 'import importlib.metadata as m; print(m.version("daggr"))' 2>/dev/null || true)
if [[ $installed != 0.8.0 ]]; then
    echo "Installing daggr==0.8.0 (and gradio) into $venv ..." >&2
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'daggr==0.8.0' >&2
fi
"$py" - <<'EOF' >&2
import importlib.metadata as m, platform
print("Python original: daggr", m.version("daggr"), "gradio", m.version("gradio"),
      "networkx", m.version("networkx"), "on Python", platform.python_version())
EOF

# 2. daggr's side: the `compare` bench binary, in the workspace's target directory.
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' ||
    echo ../target)
echo "Building the compare bench (release) ..." >&2
bin=$(CARGO_TARGET_DIR="$target_dir" cargo bench -p daggr --bench compare --no-run --message-format=json |
    python3 -c '
import json, sys
exe = None
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "compare" and m.get("executable"):
        exe = m["executable"]
print(exe or "")
')
if [[ -z $bin || ! -x $bin ]]; then
    echo "could not build the compare bench" >&2
    exit 1
fi
echo "daggr side: $bin ($(git -C "$benches" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$benches" diff --quiet HEAD 2>/dev/null || echo ', with uncommitted changes'))" >&2

# 3. Both sides, alternating; the table on stdout.
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; $(free -g | awk '/^Mem:/ {print $2 " GB RAM"}')"
python3 "$benches/python/driver.py" --python "$py" --daggr "$bin" "${driver_args[@]}"
