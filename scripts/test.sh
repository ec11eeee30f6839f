#!/usr/bin/env bash
# The whole test suite: prepares the test environment, then runs every test of the
# workspace (unit, integration, compile-fail UI tests and doc tests) on Gradio 5.50.0, and
# the Gradio tests again on each other Gradio version scripts/setup/gradio.sh installs
# (4.44.1: no API prefix, queue protocol; 6.31.0: /call with its error texts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
# Projects the CLI suites build outside this workspace do not read its .cargo/config.toml:
# the same small debug info for them (full debug info made the suite's build directories
# ~25 GB; see .cargo/config.toml).
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
status=0
cargo test --workspace --locked --no-fail-fast || status=$?
# The matrix comes from gradio.sh, which installed it (a venv of a version it no longer
# pins is not tested).
for python in $(bash scripts/setup/gradio.sh --matrix); do
    echo "test.sh: the Gradio tests on $python"
    # --workspace (not -p daggr-tests): the same feature resolution as the run above, so
    # the dependencies are not built a second time.
    DAGGR_GRADIO_PYTHON="$python" cargo test --workspace --locked --no-fail-fast \
        --test gradio --test gradio_auth --test gradio_codegen --test gradio_round_trips \
        --test gradio_map_choice || status=$?
done
exit "$status"
