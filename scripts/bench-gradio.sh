#!/usr/bin/env bash
# GradioNode vs Python's gradio_client: 100 sequential calls of a trivial endpoint on the
# same local Gradio app (see daggr/benches/gradio.rs). Prints both medians and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
export DAGGR_TEST_ENV="${DAGGR_TEST_ENV:-$HOME/.cache/daggr-test-env}"
bash scripts/setup/gradio.sh
cargo bench -p daggr --bench gradio -- --noplot 2>&1 | tee /dev/stderr | grep '^gradio: ' || true
