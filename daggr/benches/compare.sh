#!/usr/bin/env bash
# Runs the executor benches and prints their medians against the budgets and against the
# Python original (60–90 µs per node of executor overhead; the 50 × 0.1 s fan-out takes
# 5 s; ~6 ms per node on its persistence/UI path).
#
#   bash daggr/benches/compare.sh            # cargo bench --bench executor, then the table
#   bash daggr/benches/compare.sh --no-run   # the table from the last run's results
#   bash daggr/benches/compare.sh -- ARGS    # extra criterion arguments (a filter, --quick, ...)
#
# Reads target/criterion/<group>/<bench>/new/estimates.json (median.point_estimate, ns) and
# the bench's printed `daggr-bench:` lines (peak RSS), saved in target/criterion.
# Needs python3 (standard library only). Budgets are reported, never enforced: the exit
# status is cargo's.
set -euo pipefail

cd "$(dirname "$0")/.."
run=1
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-run) run=0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "usage: $0 [--no-run] [-- criterion args]" >&2; exit 2 ;;
    esac
    shift
done

target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' ||
    echo target)
log="$target_dir/criterion/daggr-executor-bench.log"
mkdir -p "$target_dir/criterion"

if [[ $run == 1 ]]; then
    load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
    start=$(date +%s)
    status=0
    # Criterion writes beside the bench's working directory (daggr/) unless told where:
    # keep its results in the workspace's target directory, where this script reads them.
    CRITERION_HOME="$target_dir/criterion" CARGO_TARGET_DIR="$target_dir" \
        cargo bench -p daggr --bench executor -- --noplot "${extra[@]}" 2>&1 | tee "$log" || status=$?
    {
        echo "daggr-bench: load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?') ($(nproc) CPUs)"
        echo "daggr-bench: wall time $(($(date +%s) - start)) s"
    } | tee -a "$log"
    if [[ $status != 0 ]]; then
        echo "cargo bench failed (status $status)" >&2
        exit "$status"
    fi
fi

python3 - "$target_dir/criterion" "$log" <<'EOF'
import json, os, re, sys

root, log = sys.argv[1], sys.argv[2]
US, MS, S = 1e3, 1e6, 1e9  # ns per unit

def median_ns(bench_id):
    path = os.path.join(root, *bench_id.split("/"), "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None

def fmt(ns):
    if ns is None:
        return "—"
    for unit, scale in (("s", S), ("ms", MS), ("µs", US)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"

def x(r):
    return f"{r:.3g}×" if r >= 1 else f"{r:.2g}×"

# (bench id, nodes for a per-node figure, budget ns or None, Python (low, high, what) per run in ns)
chain_py = (100 * 60 * US, 100 * 90 * US, "executor 60–90 µs/node")
rows = [
    ("chain100_cold/async", 100, 0.5 * MS, chain_py),
    ("chain100_cold/sync_inline", 100, 0.5 * MS, chain_py),
    ("chain100_cold/engine_only_never_cache", 100, 0.5 * MS, chain_py),
    ("cold_chain100_flushed/async", 100, 5 * MS, chain_py),
    ("cold_chain100_flushed/sync_inline", 100, 5 * MS, chain_py),
    ("chain100_rerun_cached/same_pipeline", 100, 2 * MS, chain_py),
    ("chain100_rerun_cached/fresh_pipeline_disk", 100, None, chain_py),
    ("fanout50_sleep100ms/run", None, 0.12 * S, (5 * S, 5 * S, "50 × 0.1 s one at a time")),
    ("graph10k_cached/build_validate_run", 10_000, 100 * MS, (10_000 * 60 * US, 10_000 * 90 * US, "executor 60–90 µs/node (derived)")),
    ("graph10k_cached/build_validate", 10_000, None, None),
    ("cold_10k_flushed/run_and_flush", 10_000, 0.5 * S, None),
    ("cold_10k_flushed/run_only", 10_000, None, None),
]

header = ("bench", "median", "per node", "budget", "median/budget", "Python original", "speed-up vs Python")
table = [header]
for bench_id, nodes, budget, py in rows:
    m = median_ns(bench_id)
    per_node = fmt(m / nodes) if m is not None and nodes else "—"
    if budget is None:
        b, vs = "reported", "—"
    else:
        b = fmt(budget)
        vs = "—" if m is None else f"{m / budget:.2f} ({'ok' if m <= budget else 'OVER'})"
    if py is None:
        p, speed = "—", "—"
    else:
        lo, hi, what = py
        p = f"{fmt(lo)}" + ("" if lo == hi else f"–{fmt(hi)}") + f" ({what})"
        speed = "—" if m is None else (x(lo / m) if lo == hi else f"{x(lo / m)}–{x(hi / m)}")
    table.append((bench_id, fmt(m), per_node, b, vs, p, speed))

lines = []
try:
    with open(log, encoding="utf-8", errors="replace") as f:
        lines = [l.rstrip("\n") for l in f if l.startswith("daggr-bench:")]
except OSError:
    pass
rss = None
disk = None
for l in lines:
    found = re.search(r"peak_rss_kb=(\d+)", l)
    if found:
        rss = int(found.group(1))
    found = re.search(r"disk_bytes_per_result=(\d+)", l)
    if found:
        disk = int(found.group(1))
budget_kb = 100 * 1024
table.append((
    "graph10k_cached peak RSS (VmHWM)",
    "—" if rss is None else f"{rss / 1024:.1f} MB",
    "—",
    "100 MB",
    "—" if rss is None else f"{rss / budget_kb:.2f} ({'ok' if rss <= budget_kb else 'OVER'})",
    "—",
    "—",
))
table.append((
    "cold_10k_flushed disk per small result",
    "—" if disk is None else f"{disk} B",
    "—",
    "1 KiB",
    "—" if disk is None else f"{disk / 1024:.2f} ({'ok' if disk <= 1024 else 'OVER'})",
    "—",
    "—",
))

widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
def row(r):
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
print()
print(row(table[0]))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in table[1:]:
    print(row(r))
print()
print("Speed-up = Python time / our median (Python per-node figures × the bench's node count).")
print("Medians are criterion's over its samples; a loaded machine inflates them (see the load average).")
if lines:
    print()
    for l in lines:
        if "budget:" not in l:
            print(l)
EOF
