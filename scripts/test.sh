#!/usr/bin/env bash
# The whole test suite: prepares the test environment, then runs every test of the
# workspace (unit, integration, compile-fail UI tests and doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
cargo test --workspace --locked --no-fail-fast
