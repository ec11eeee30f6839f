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
    # A failed run (a build broken for a moment on a shared tree, a browser hiccup) is
    # reported and skipped: the medians of the others still print.
    if ! cargo test -q "${profile[@]}" -p daggr-tests --test inspector_browser -- --test-threads=1 --nocapture five_ 2>/dev/null \
        | grep -E '^(500|5000) nodes: ' | tee -a "$out"; then
        echo "run $i failed (rerun: cargo test ${profile[*]} -p daggr-tests --test inspector_browser -- --nocapture five_)" >&2
    fi
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, data = line.split(": ", 1)
    rows.setdefault(label, []).append(json.loads(data))
keys = ["load_ms", "graph_ms", "graph_kb", "graph_json_kb", "state_ms", "state_kb", "state_json_kb", "graph_at_ms", "built_at_ms", "state_loaded_at_ms",
        "state_applied_at_ms", "run_ms", "frame_median_ms", "frame_p90_ms", "pan_frame_median_ms",
        "pan_frame_p90_ms", "far_frame_median_ms", "far_frame_p90_ms", "far_redraw_ms", "cards_in_dom"]
for label, runs in rows.items():
    print(f"{label} (median of {len(runs)} runs):")
    for k in keys:
        values = sorted(r[k] for r in runs if k in r)
        if values:
            p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
            print(f"  {k:22} {statistics.median(values):8.1f}   (min {min(values):.1f}, p90 {p90:.1f}, max {max(values):.1f})")
# Issue 17's budgets for 5 000 nodes, on the medians (reported, never a failure: the machine
# is shared, and a noisy run says nothing about the page).
big = rows.get("5000 nodes")
if big:
    med = lambda k: statistics.median(r[k] for r in big)
    for what, value, budget in [("page ready", med("load_ms"), 1500), ("zoom frame p90", med("frame_p90_ms"), 33),
                                ("pan frame p90", med("pan_frame_p90_ms"), 33)]:
        print(f"budget 5000 nodes {what}: {value:.1f} ms of {budget} ms: {'met' if value <= budget else 'MISSED'}")
PY
rm -f "$out"
