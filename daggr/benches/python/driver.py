"""Runs the comparison of `benches/compare_python.sh`: the Python original's workloads
(`workloads.py`, in the daggr 0.8.0 venv) and daggr's (`benches/compare.rs`, built by the
script), alternating the two sides round by round, then prints each pair's medians and
ratio. Standard library only.

    python3 driver.py --python VENV_PYTHON --daggr COMPARE_BINARY [--rounds N] [--quick]
                      [--markdown FILE] [--json FILE]

Each round runs every workload once per side, in one process per side and workload, the
side going first alternating from round to round, so that load from other jobs on the
machine falls on both sides alike. In-process workloads take several samples per process
(after an untimed warm-up); start-to-serving is one process start per sample, timed from
outside: from just before the process is spawned to the first 200 answer of `GET
/api/graph` (the graph the page draws), polled every 5 ms; the process's resident memory
(VmRSS) is read right after.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS_PY = os.path.join(HERE, "workloads.py")

# workload -> samples per process and round (normal, quick)
SAMPLES = {
    "chain100_cold": (10, 2),
    "chain100_rerun": (10, 2),
    "chain100_edit_middle": (10, 2),
    "fanout50": (1, 1),
    "build1000": (3, 1),
}
SERVE_SAMPLES = (2, 1)
SERVE_NODES = 100

# (label, python (workload, variant), daggr (workload, variant), what the figures include)
ROWS = [
    ("chain 100 cold: engine", ("chain100_cold", "execute_all"), ("chain100_cold", "run"),
     "Python: in-memory executor, persists nothing. daggr: run, cache writes still draining behind it"),
    ("chain 100 cold: durable", ("chain100_cold", "execute_all"), ("chain100_cold", "run_flush"),
     "daggr: run + flush (102 results: 2 inputs, 100 nodes, written and fsynced); Python persists nothing"),
    ("chain 100 rerun, nothing changed", ("chain100_rerun", "execute_all_again"), ("chain100_rerun", "same_pipeline"),
     "Python recomputes all 100 nodes (no cache in its executor); daggr: memo hits, 0 calls"),
    ("chain 100 rerun, new pipeline (as a new process)", ("chain100_rerun", "execute_all_again"),
     ("chain100_rerun", "fresh_pipeline_disk"),
     "Python figure as above (it has nothing to reuse); daggr: new cache handle, every result read from disk"),
    ("chain 100 edit middle, run all", ("chain100_edit_middle", "execute_all_with_k"), ("chain100_edit_middle", "run"),
     "Python recomputes 100 nodes; daggr 50 (n50..n99), writes draining behind"),
    ("chain 100 edit middle, run all: durable", ("chain100_edit_middle", "execute_all_with_k"),
     ("chain100_edit_middle", "run_flush"), "daggr: + flush of the 50 new results"),
    ("fan-out 50 x 0.1 s + join tree", ("fanout50", "execute_all"), ("fanout50", "run"),
     "Python runs the 50 sleeps one at a time; daggr at once (blocking-pool threads)"),
    ("1 000-node chain build", ("build1000", "nodes_and_graph"), ("build1000", "add_and_build"),
     "node objects + graph with validation; daggr's cache handle opened before"),
    ("start to serving (chain 100)", ("serve", "ms"), ("serve", "ms"),
     "process spawn to first 200 of GET /api/graph; both persist sheets in SQLite"),
    ("RSS while serving (chain 100)", ("serve", "rss_mb"), ("serve", "rss_mb"),
     "VmRSS right after the first answer, MB"),
]


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run_batch(cmd, env, cwd):
    out = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        log(f"command failed ({out.returncode}): {' '.join(cmd)}")
        log(out.stderr[-4000:])
        raise SystemExit(1)
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        log(f"no samples from: {' '.join(cmd)}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        raise SystemExit(1)
    return lines


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def stop(proc):
    """Stops a process this script started, by its pid: Ctrl-C, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_once(cmd, env, cwd, port):
    url = f"http://127.0.0.1:{port}/api/graph"
    logf = open(os.path.join(cwd, "serve.log"), "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=logf, stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                logf.flush()
                with open(os.path.join(cwd, "serve.log")) as f:
                    log(f.read()[-3000:])
                raise SystemExit(f"{' '.join(cmd)} exited ({proc.returncode}) before serving")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        r.read()
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.perf_counter() - t0 > 120:
                raise SystemExit(f"{' '.join(cmd)}: not serving after 120 s")
            time.sleep(0.005)
        ms = (time.perf_counter() - t0) * 1e3
        rss = rss_mb(proc.pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200, "the page is served"
        return ms, rss
    finally:
        stop(proc)
        logf.close()


def serve_samples(side, cmd, base_env, n):
    ms, rss = [], []
    for _ in range(n):
        with tempfile.TemporaryDirectory(prefix=f"compare-serve-{side}-") as cwd:
            port = free_port()
            env = dict(base_env)
            env.update({
                # Python: the port, HF_HOME (the sheets database lives under it) and the DB.
                "GRADIO_SERVER_PORT": str(port),
                "HF_HOME": os.path.join(cwd, "hf"),
                "DAGGR_DB_PATH": os.path.join(cwd, "sessions.db"),
                # daggr: the port; its cache and sheets go in `.daggr/` of the working directory.
                "DAGGR_PORT": str(port),
            })
            m, r = serve_once(cmd, env, cwd, port)
            ms.append(m)
            rss.append(r)
    return [
        {"side": side, "workload": "serve", "variant": "ms", "ms": ms, "calls": [0] * n},
        {"side": side, "workload": "serve", "variant": "rss_mb", "ms": rss, "calls": [0] * n},
    ]


def fmt_ms(v):
    if v != v:
        return "—"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 10:
        return f"{v:.1f} ms"
    if v >= 1:
        return f"{v:.2f} ms"
    return f"{v * 1000:.0f} µs"


def spread(values, fmt):
    """The median, and the interquartile range when there are enough samples."""
    med = fmt(statistics.median(values))
    if len(values) < 4:
        return med
    q1, _, q3 = statistics.quantiles(values, n=4)
    (a, _, ua), (b, _, ub) = fmt(q1).partition(" "), fmt(q3).partition(" ")
    return f"{med} [{a}–{b} {ub}]" if ua == ub else f"{med} [{a} {ua}–{b} {ub}]"


def fmt_ratio(r):
    if r != r:
        return "—"
    return f"{r:.0f}×" if r >= 100 else f"{r:.1f}×" if r >= 1 else f"{r:.2f}×"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", required=True, help="the venv's python with daggr==0.8.0")
    ap.add_argument("--daggr", required=True, help="the compare bench binary")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 rounds, few samples (a smoke test)")
    ap.add_argument("--markdown", help="also write the table as Markdown here")
    ap.add_argument("--json", help="also write every sample here")
    args = ap.parse_args()
    rounds = 2 if args.quick else args.rounds
    pick = 1 if args.quick else 0

    work = tempfile.mkdtemp(prefix="daggr-compare-")
    base_env = dict(os.environ)
    base_env.update({
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "DAGGR_DEPENDENCY_CHECK": "skip",
        "HF_HOME": os.path.join(work, "hf"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": work,
    })
    sides = {
        "python": lambda w, n: [args.python, WORKLOADS_PY, w, str(n)],
        "daggr": lambda w, n: [args.daggr, w, str(n)],
    }
    samples = {}  # (side, workload, variant) -> {"ms": [...], "calls": [...]}
    load_before = open("/proc/loadavg").read().split()[:3]
    started = time.time()
    try:
        for rnd in range(rounds):
            order = ["python", "daggr"] if rnd % 2 == 0 else ["daggr", "python"]
            for workload, counts in SAMPLES.items():
                for side in order:
                    n = counts[pick]
                    log(f"round {rnd + 1}/{rounds}: {workload} on {side} ({n} samples)")
                    for line in run_batch(sides[side](workload, n), base_env, work):
                        entry = samples.setdefault((side, line["workload"], line["variant"]), {"ms": [], "calls": []})
                        entry["ms"] += line["ms"]
                        entry["calls"] += line["calls"]
            for side in order:
                n = SERVE_SAMPLES[pick]
                log(f"round {rnd + 1}/{rounds}: start to serving on {side} ({n} samples)")
                cmd = sides[side]("serve", SERVE_NODES)
                for line in serve_samples(side, cmd, base_env, n):
                    entry = samples.setdefault((side, line["workload"], line["variant"]), {"ms": [], "calls": []})
                    entry["ms"] += line["ms"]
                    entry["calls"] += line["calls"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = open("/proc/loadavg").read().split()[:3]

    header = ("workload", "Python 0.8.0 median [p25–p75]", "daggr median [p25–p75]", "ratio (Python/daggr)", "node calls Py / daggr", "n Py / daggr", "what is included")
    table = [header]
    for label, py, dg, what in ROWS:
        p = samples.get(("python",) + py)
        d = samples.get(("daggr",) + dg)
        if not p or not d:
            table.append((label, "—", "—", "—", "—", "—", what))
            continue
        pm, dm = statistics.median(p["ms"]), statistics.median(d["ms"])
        is_rss = py[1] == "rss_mb"
        fmt = (lambda v: f"{v:.1f} MB") if is_rss else fmt_ms
        pf, df = spread(p["ms"], fmt), spread(d["ms"], fmt)
        ratio = pm / dm if dm > 0 else float("nan")
        calls = "—" if py[0] in ("serve", "build1000") else f"{statistics.median(p['calls']):.0f} / {statistics.median(d['calls']):.0f}"
        table.append((label, pf, df, fmt_ratio(ratio), calls, f"{len(p['ms'])} / {len(d['ms'])}", what))

    widths = [max(len(str(r[i])) for r in table) for i in range(len(header) - 1)]

    def row(r):
        return "  ".join(str(c).ljust(w) for c, w in zip(r[:-1], widths))

    print()
    print(row(header))
    print("  ".join("-" * w for w in widths))
    for r in table[1:]:
        print(row(r))
    print()
    for r in table[1:]:
        print(f"  {r[0]}: {r[-1]}")
    print()
    machine = f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()} (driver)"
    print(f"Machine: {machine}")
    print(f"Load average before {' '.join(load_before)}, after {' '.join(load_after)}; wall time {time.time() - started:.0f} s; {rounds} rounds, sides alternating.")
    print("Medians [interquartile range]. Ratio = Python median / daggr median (above 1: daggr faster or smaller).")

    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("| " + " | ".join(header) + " |\n")
            f.write("|" + "|".join("---" for _ in header) + "|\n")
            for r in table[1:]:
                f.write("| " + " | ".join(str(c) for c in r) + " |\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "load_before": load_before,
                    "load_after": load_after,
                    "samples": [{"side": k[0], "workload": k[1], "variant": k[2], **v} for k, v in samples.items()],
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
