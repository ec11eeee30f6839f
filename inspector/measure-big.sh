#!/usr/bin/env bash
# Measures the inspector on big graphs in Debian's chromium: page ready, run, and frame times
# while zooming and panning (near: cards; far: the canvas), for 500 and 5 000 nodes. Runs the
# browser tests that print them (tests/inspector_browser.rs: five_hundred_nodes_render_and_update,
# five_thousand_nodes_render_and_update; the page side is tests/browser/many.mjs) RUNS times
# and prints each run and the medians. Times are not asserted anywhere: the machine is shared.
#   bash inspector/measure-big.sh [RUNS=5]      (PROFILE=release for an optimized server)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
profile=()
[ "${PROFILE:-}" = release ] && profile=(--release)
out="$(mktemp)"
for i in $(seq "$runs"); do
    cargo test -q "${profile[@]}" -p daggr-tests --test inspector_browser -- --test-threads=1 --nocapture five_ 2>/dev/null \
        | grep -E '^(500|5000) nodes: ' | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, data = line.split(": ", 1)
    rows.setdefault(label, []).append(json.loads(data))
keys = ["load_ms", "graph_ms", "state_ms", "run_ms", "frame_median_ms", "frame_p90_ms", "pan_frame_median_ms",
        "pan_frame_p90_ms", "far_frame_median_ms", "far_frame_p90_ms", "far_redraw_ms", "cards_in_dom"]
for label, runs in rows.items():
    print(f"{label} (median of {len(runs)} runs):")
    for k in keys:
        values = [r[k] for r in runs if k in r]
        if values:
            print(f"  {k:22} {statistics.median(values):8.1f}   (min {min(values):.1f}, max {max(values):.1f})")
PY
rm -f "$out"
