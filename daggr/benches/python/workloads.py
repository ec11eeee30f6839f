"""The Python side of `benches/compare_python.sh`: the workloads of `benches/compare.rs`, run
on the Python original (daggr 0.8.0) through its programmatic executor.

    python workloads.py <workload> <samples>     # one JSON line per variant on stdout
    python workloads.py serve <nodes>            # the start-to-serving workload (launches)

Run it with the interpreter of a venv holding `daggr==0.8.0` (the script's job). Every
workload has the same graph shape, node bodies and sleeps as its Rust twin in
`benches/compare.rs`:

- chain(n): `n` FnNodes n0..n{n-1}; n0 reads `x` from an input (`gr.Number(value=0)`), each
  next node reads its predecessor; every body is `x + 1`, except the middle node n{n/2},
  whose body is `x + k` with `k` an input (`gr.Number(value=1)`), the one edited.
- fanout: 50 nodes `time.sleep(0.1); return x + i` on one input `x`, joined by a binary tree
  of `a + b` nodes (49 of them), as daggr joins them (a daggr node takes at most 8 inputs).

Only the operation named is timed (perf_counter_ns); graph construction is not, except in
`build1000`, where it is what is measured. One untimed warm-up sample comes first (none
for the fan-out, whose samples take 5 s). Nothing is written to disk: the programmatic
executor keeps results in memory and forgets them at the next `execute_all`.
"""

import json
import os
import sys
import time

# Offline and quiet: no Hub calls, no telemetry.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("DAGGR_DEPENDENCY_CHECK", "skip")

import gradio as gr  # noqa: E402
from daggr import FnNode, Graph  # noqa: E402
from daggr.executor import SequentialExecutor  # noqa: E402

CHAIN = 100
FAN = 50
SLEEP_S = 0.1

calls = 0


def count():
    global calls
    calls += 1


def inc(x):
    count()
    return x + 1


def add_k(x, k):
    count()
    return x + k


def add(a, b):
    count()
    return a + b


def chain(n):
    """The chain of `n` nodes; returns the graph and the name of the middle node."""
    middle = n // 2
    nodes = []
    prev = None
    for i in range(n):
        name = f"n{i}"
        if i == 0:
            node = FnNode(inc, name=name, inputs={"x": gr.Number(value=0)})
        elif i == middle:
            node = FnNode(add_k, name=name, inputs={"x": prev.output, "k": gr.Number(value=1)})
        else:
            node = FnNode(inc, name=name, inputs={"x": prev.output})
        nodes.append(node)
        prev = node
    return Graph(name=f"chain{n}", nodes=nodes, persist_key=False), f"n{middle}"


def sleeper(i):
    def sleep(x):
        count()
        time.sleep(SLEEP_S)
        return x + i

    return sleep


def fanout():
    x = gr.Number(value=0)
    nodes = [FnNode(sleeper(i), name=f"sleep{i}", inputs={"x": x}) for i in range(FAN)]
    level = list(nodes)
    rnd = 0
    while len(level) > 1:
        nxt = []
        for j in range(0, len(level), 2):
            pair = level[j : j + 2]
            if len(pair) == 2:
                node = FnNode(add, name=f"sum{rnd}_{j // 2}", inputs={"a": pair[0].output, "b": pair[1].output})
                nodes.append(node)
                nxt.append(node)
            else:
                nxt.append(pair[0])
        level = nxt
        rnd += 1
    return Graph(name="fanout", nodes=nodes, persist_key=False), level[0]._name


def timed(fn):
    global calls
    calls = 0
    t = time.perf_counter_ns()
    result = fn()
    elapsed = time.perf_counter_ns() - t
    del result  # freed outside the timed region, as daggr drops its graphs untimed
    return elapsed / 1e6, calls


def emit(workload, variant, samples):
    print(
        json.dumps(
            {
                "side": "python",
                "workload": workload,
                "variant": variant,
                "ms": [ms for ms, _ in samples],
                "calls": [c for _, c in samples],
            }
        ),
        flush=True,
    )


def chain100_cold(n_samples):
    out = []
    for s in range(n_samples + 1):
        graph, _ = chain(CHAIN)
        ex = SequentialExecutor(graph)
        sample = timed(lambda: ex.execute_all({}))
        assert ex.results[f"n{CHAIN - 1}"]["output"] == CHAIN, ex.results[f"n{CHAIN - 1}"]
        if s > 0:
            out.append(sample)
    emit("chain100_cold", "execute_all", out)


def chain100_rerun(n_samples):
    graph, _ = chain(CHAIN)
    ex = SequentialExecutor(graph)
    ex.execute_all({})
    out = []
    for s in range(n_samples + 1):
        sample = timed(lambda: ex.execute_all({}))
        if s > 0:
            out.append(sample)
    emit("chain100_rerun", "execute_all_again", out)


def chain100_edit_middle(n_samples):
    graph, middle = chain(CHAIN)
    ex = SequentialExecutor(graph)
    ex.execute_all({})
    out = []
    for s in range(n_samples + 1):
        k = 2 + s  # a value not seen before
        sample = timed(lambda: ex.execute_all({middle: {"k": k}}))
        assert ex.results[f"n{CHAIN - 1}"]["output"] == CHAIN - 1 + k
        if s > 0:
            out.append(sample)
    emit("chain100_edit_middle", "execute_all_with_k", out)


def fanout50(n_samples):
    out = []
    for _ in range(n_samples):
        graph, last = fanout()
        ex = SequentialExecutor(graph)
        sample = timed(lambda: ex.execute_all({}))
        assert ex.results[last]["output"] == sum(range(FAN)), ex.results[last]
        out.append(sample)
    emit("fanout50", "execute_all", out)


def build1000(n_samples):
    out = []
    for s in range(n_samples + 1):
        sample = timed(lambda: chain(1000))
        if s > 0:
            out.append(sample)
    emit("build1000", "nodes_and_graph", out)


def serve(n):
    graph, _ = chain(n)
    graph.persist_key = f"chain{n}"  # the UI path persists its sheets (DAGGR_DB_PATH)
    graph.launch(open_browser=False)


WORKLOADS = {
    "chain100_cold": chain100_cold,
    "chain100_rerun": chain100_rerun,
    "chain100_edit_middle": chain100_edit_middle,
    "fanout50": fanout50,
    "build1000": build1000,
}


def main(argv):
    if len(argv) == 3 and argv[1] == "serve":
        serve(int(argv[2]))
        return 0
    if len(argv) != 3 or argv[1] not in WORKLOADS:
        print(f"usage: {argv[0]} {{{'|'.join(WORKLOADS)}}} <samples> | serve <nodes>", file=sys.stderr)
        return 2
    WORKLOADS[argv[1]](int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
