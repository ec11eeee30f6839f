//! Graphs of any depth (issue 17 §2): building, validating, running, rerunning and
//! inspecting deep graphs never recurses once per level, so a 100 000-node chain and a
//! 100 × 1 000 layered graph work inside a tokio task on a default 2 MiB worker stack, and
//! a cycle hidden in a 100 000-node graph is reported with its nodes.
//!
//! Every graph here is built and run inside `tokio::spawn` on a runtime with tokio's
//! default worker stack (2 MiB), the smallest stack a daggr program commonly has.

use std::future::Future;
use std::time::Instant;

use daggr::{Cache, Error, FnNode, Graph, NodeId, Output, Pipeline, Scope};

const CHAIN: usize = 100_000;

/// Runs `f` as a task on a multi-thread runtime with default (2 MiB) worker stacks.
fn on_worker_stack<F, T>(f: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move { tokio::spawn(f).await.unwrap() })
}

/// An input and `n - 1` inline `x + 1` nodes after it: `n` nodes.
fn chain(n: usize, cache: Cache) -> (Graph, Output<u64>) {
    let mut g = Graph::new("deep-chain").cache(cache);
    let mut prev = g.input("start", 0u64);
    for i in 1..n {
        prev = g.add(
            FnNode::sync(&format!("n{i}"), |x: u64| x + 1).inline(),
            (prev,),
        );
    }
    (g, prev)
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    eprintln!(
        "deep_graphs: {what}: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    out
}

async fn timed_run(what: &str, p: &Pipeline, scope: Scope) -> daggr::RunReport {
    let t = Instant::now();
    let report = p.run(scope).await.unwrap();
    eprintln!(
        "deep_graphs: {what}: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    report
}

#[test]
fn a_100_000_node_chain_builds_runs_and_reruns_on_a_2_mib_stack() {
    on_worker_stack(async {
        let cache = Cache::temporary().unwrap();
        let (g, last) = timed("chain 100 000: add nodes", || chain(CHAIN, cache.clone()));
        let p = timed("chain 100 000: build", || g.build().unwrap());
        assert_eq!(p.nodes().count(), CHAIN);
        assert_eq!(p.graph_ir().nodes.len(), CHAIN);
        assert_eq!(p.graph_ir().edges.len(), CHAIN - 1);

        let report = timed_run("chain 100 000: cold run", &p, Scope::All).await;
        assert!(report.failed().is_empty() && report.skipped().is_empty());
        assert_eq!(report.computed().len(), CHAIN);
        assert_eq!(*report.value(&last).unwrap(), (CHAIN - 1) as u64);
        assert!(!p.is_stale(last).unwrap());

        let rerun = timed_run("chain 100 000: rerun", &p, Scope::All).await;
        assert!(rerun.computed().is_empty(), "nothing changed, nothing runs");
        assert_eq!(rerun.cached().len(), CHAIN);

        // Scopes walk the whole depth: everything upstream of the last node, everything
        // downstream of the first.
        let to = timed_run("chain 100 000: Scope::To(last)", &p, Scope::to(last)).await;
        assert_eq!(to.cached().len(), CHAIN);
        let from = timed_run("chain 100 000: Scope::From(n1)", &p, Scope::from("n1")).await;
        assert_eq!(from.cached().len(), CHAIN - 1);

        // A change at the top makes the whole depth stale (a walk over every level), and
        // putting it back makes it current again.
        let start: Output<u64> = Output::new(0, 0);
        p.set_input(&start, 1).unwrap();
        assert!(p.is_stale(last).unwrap());
        assert_eq!(p.stale_nodes().len(), CHAIN);
        p.set_input(&start, 0).unwrap();
        assert!(p.stale_nodes().is_empty());

        // A fresh workspace running the last node alone resolves its 99 999 upstream nodes
        // from the cache (out of scope), one after another, not by recursion.
        let fresh = p.new_workspace();
        let only = timed_run(
            "chain 100 000: fresh workspace, Scope::Only(last)",
            &fresh,
            Scope::only(last),
        )
        .await;
        assert!(only.failed().is_empty(), "{:?}", only.failed());
        assert_eq!(only.cached(), ["n99999"]);
        assert_eq!(*only.value(&last).unwrap(), (CHAIN - 1) as u64);

        timed("chain 100 000: drop", move || {
            drop((p, fresh, report, rerun, only))
        });
    });
}

/// 100 layers of 1 000 nodes; node `i` of a layer reads node `i` of the previous layer,
/// and every other node also reads node `(i + 7) % 1000`.
fn layered(layers: usize, width: usize, cache: Cache) -> (Graph, Vec<Output<u64>>) {
    let mut g = Graph::new("layered").cache(cache);
    let mut prev: Vec<Output<u64>> = (0..width)
        .map(|i| g.input(format!("in{i}"), i as u64))
        .collect();
    for l in 1..layers {
        let mut row = Vec::with_capacity(width);
        for i in 0..width {
            let name = format!("l{l}n{i}");
            let a = prev[i];
            row.push(if i % 2 == 0 {
                g.add(
                    FnNode::sync(&name, |x: u64| x.wrapping_add(1)).inline(),
                    (a,),
                )
            } else {
                let b = prev[(i + 7) % width];
                g.add(
                    FnNode::sync(&name, |x: u64, y: u64| x.wrapping_add(y)).inline(),
                    (a, b),
                )
            });
        }
        prev = row;
    }
    (g, prev)
}

#[test]
fn a_100_by_1_000_layered_graph_builds_runs_and_reruns_on_a_2_mib_stack() {
    on_worker_stack(async {
        let cache = Cache::temporary().unwrap();
        let (g, last_row) = timed("layered 100 × 1 000: add nodes", || {
            layered(100, 1_000, cache.clone())
        });
        let p = timed("layered 100 × 1 000: build", || g.build().unwrap());
        assert_eq!(p.nodes().count(), 100_000);
        assert_eq!(p.edges().len(), 99 * 1_500);
        let report = timed_run("layered 100 × 1 000: cold run", &p, Scope::All).await;
        assert!(report.failed().is_empty());
        assert_eq!(report.computed().len(), 100_000);
        for out in &last_row {
            report.value(out).unwrap();
        }
        let rerun = timed_run("layered 100 × 1 000: rerun", &p, Scope::All).await;
        assert!(rerun.computed().is_empty());
        assert_eq!(rerun.cached().len(), 100_000);
        let to = timed_run(
            "layered 100 × 1 000: Scope::To(a last-layer node)",
            &p,
            Scope::to(last_row[1]),
        )
        .await;
        assert!(to.computed().is_empty());
        assert!(
            to.cached().len() > 100,
            "the cone reaches back through every layer"
        );
        timed("layered 100 × 1 000: drop", move || {
            drop((p, report, rerun, to))
        });
    });
}

#[test]
fn a_cycle_inside_a_100_000_node_graph_is_reported_with_its_nodes() {
    on_worker_stack(async {
        // A chain assembled at run time, n0 -> n1 -> … -> n99999, except that n50000 reads
        // n60000 instead of n49999: n50000 … n60000 form a loop of 10 001 nodes, with a
        // chain above it and a chain hanging below it.
        let mut g = Graph::new("looped");
        let ids: Vec<NodeId> = (0..CHAIN)
            .map(|i| g.add_dyn(FnNode::sync(&format!("n{i}"), |x: u64| x + 1).inline()))
            .collect();
        g.set_constant(ids[0], "in0", 0u64).unwrap();
        for i in 1..CHAIN {
            let from = if i == 50_000 { ids[60_000] } else { ids[i - 1] };
            g.connect_dyn(from, "output", ids[i], "in0").unwrap();
        }
        let err = timed("cycle in 100 000: build", || g.build().unwrap_err());
        let Error::Cycle { nodes } = &err else {
            panic!("expected a cycle, got {err}");
        };
        let expected: Vec<String> = (50_000..=60_000).map(|i| format!("n{i}")).collect();
        assert_eq!(nodes, &expected);
        assert!(err
            .to_string()
            .starts_with("the graph has a cycle: n50000 -> n50001 -> "));
    });
}

/// Resident memory of the process, in bytes (`/proc/self/statm`).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Prints the memory a 100 000-node chain costs per node once built and run (cold, then
/// rerun), as RSS growth. Run alone, in a release build for the figure the issue quotes:
/// `cargo test -p daggr-tests --release --test deep_graphs -- --ignored --nocapture memory`.
#[test]
#[ignore = "a measurement: run alone with --ignored --nocapture"]
fn memory_per_node_of_a_100_000_node_chain() {
    on_worker_stack(async {
        let cache = Cache::temporary().unwrap();
        let before = rss_bytes();
        let (g, last) = chain(CHAIN, cache.clone());
        let added = rss_bytes();
        let p = g.build().unwrap();
        let built = rss_bytes();
        let report = p.run(Scope::All).await.unwrap();
        assert_eq!(*report.value(&last).unwrap(), (CHAIN - 1) as u64);
        drop(report);
        let ran = rss_bytes();
        let rerun = p.run(Scope::All).await.unwrap();
        drop(rerun);
        let after = rss_bytes();
        cache.flush();
        let flushed = rss_bytes();
        eprintln!(
            "deep_graphs memory: after flushing the cache's writes {:.0} B/node; sizes: NodeResult {}, Value {}, Outcome {}",
            (flushed.saturating_sub(before)) as f64 / CHAIN as f64,
            std::mem::size_of::<daggr::NodeResult>(),
            std::mem::size_of::<daggr::Value>(),
            std::mem::size_of::<daggr::Outcome>(),
        );
        let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / CHAIN as f64;
        println!(
            "deep_graphs memory: graph {:.0} B/node, + build {:.0} B/node, + cold run {:.0} B/node, + rerun {:.0} B/node; total {:.0} B/node ({:.1} MB for {CHAIN} nodes; cache memo {} bytes)",
            per(before, added),
            per(added, built),
            per(built, ran),
            per(ran, after),
            per(before, after),
            after.saturating_sub(before) as f64 / 1e6,
            cache.memory_bytes(),
        );
        drop(p);
    });
}
