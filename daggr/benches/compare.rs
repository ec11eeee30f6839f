//! The Rust side of `benches/compare_python.sh`, which runs these workloads beside the same
//! ones on the Python original (`benches/python/workloads.py`, daggr 0.8.0), alternating the
//! two sides, and tabulates the medians and their ratio. Not criterion: the script needs
//! raw samples from both sides in one format, and process start-up measured from outside.
//!
//! ```text
//! compare <workload> <samples>   one JSON line per variant: {"side":"daggr","workload":…,"variant":…,"ms":[…],"calls":[…]}
//! compare serve <nodes>          builds chain(<nodes>) and serves the inspector ($DAGGR_PORT) until Ctrl-C
//! compare [--bench]              every in-process workload, 3 samples each (what `cargo bench` runs)
//! ```
//!
//! The graphs are those of the Python script, node for node:
//!
//! - `chain(n)`: an input `start` = 0, then `n` nodes n0..n{n-1}, each `x + 1` on its
//!   predecessor, except the middle node n{n/2}: `x + k`, with `k` an input (= 1), the one
//!   edited. Nodes are `FnNode::sync` closures, which run on tokio's blocking pool: a thread
//!   hop per node, as the Python executor's `asyncio.to_thread`.
//! - `fanout`: 50 `FnNode::sync` nodes `std::thread::sleep(100 ms); x + i` on one input `x`,
//!   joined by a binary tree of 49 `a + b` nodes.
//!
//! Workloads and what each sample times (setup and teardown untimed; each batch starts with
//! one untimed warm-up sample, except the fan-out):
//!
//! | workload | variant | timed |
//! |---|---|---|
//! | `chain100_cold` | `run` | `run(Scope::All)` on a fresh pipeline over a new, empty cache directory; the cache writes drain behind it |
//! | `chain100_cold` | `run_flush` | the same plus `cache().flush()`: every result written and fsynced |
//! | `chain100_rerun` | `same_pipeline` | a second `run(Scope::All)`, nothing changed (0 node calls) |
//! | `chain100_rerun` | `fresh_pipeline_disk` | a new pipeline and cache handle over the same directory, as a new process would: disk hits |
//! | `chain100_edit_middle` | `run` | `set_input(k, new)` + `run(Scope::All)` (the middle node and the 49 after it) |
//! | `chain100_edit_middle` | `run_flush` | the same plus the flush |
//! | `fanout50` | `run` | `run(Scope::All)`, fresh pipeline and cache directory |
//! | `build1000` | `add_and_build` | `Graph::new` + 1 000 `add`s + `build()` of `chain(1000)` (cache handle opened before) |
//!
//! Cache directories go in a temporary directory (`$TMPDIR`) and are kept until the process
//! ends: deleting them between samples slows the next samples' writes on ext4.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use daggr::inspector::LaunchOptions;
use daggr::{Cache, FnNode, Graph, Output, Pipeline, Scope, TerminalProgress};
use tokio::runtime::Runtime;

const CHAIN: usize = 100;
const FAN: u64 = 50;
const SLEEP: Duration = Duration::from_millis(100);

type Calls = Arc<AtomicUsize>;

struct Chain {
    pipeline: Pipeline,
    k: Output<u64>,
    last: Output<u64>,
}

/// `chain(n)`; `cache` `None` is the default cache (`.daggr/cache`).
fn chain(n: usize, cache: Option<Cache>, calls: &Calls) -> Chain {
    let mut g = Graph::new(format!("chain{n}"));
    if let Some(cache) = cache {
        g = g.cache(cache);
    }
    let mut prev = g.input("start", 0u64);
    let k = g.input("k", 1u64);
    let middle = n / 2;
    for i in 0..n {
        let calls = calls.clone();
        let name = format!("n{i}");
        prev = if i == middle {
            g.add(
                FnNode::sync(&name, move |x: u64, k: u64| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    x + k
                }),
                (prev, k),
            )
        } else {
            g.add(
                FnNode::sync(&name, move |x: u64| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    x + 1
                }),
                (prev,),
            )
        };
    }
    let pipeline = g.build().expect("the chain builds");
    pipeline.set_terminal_progress(TerminalProgress::Never);
    Chain {
        pipeline,
        k,
        last: prev,
    }
}

fn fanout(cache: Cache, calls: &Calls) -> (Pipeline, Output<u64>) {
    let mut g = Graph::new("fanout").cache(cache);
    let x = g.input("x", 0u64);
    let mut level: Vec<Output<u64>> = (0..FAN)
        .map(|i| {
            let calls = calls.clone();
            g.add(
                FnNode::sync(&format!("sleep{i}"), move |x: u64| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(SLEEP);
                    x + i
                }),
                (x,),
            )
        })
        .collect();
    let mut round = 0;
    while level.len() > 1 {
        level = level
            .chunks(2)
            .enumerate()
            .map(|(j, pair)| match pair {
                [a, b] => {
                    let calls = calls.clone();
                    g.add(
                        FnNode::sync(&format!("sum{round}_{j}"), move |a: u64, b: u64| {
                            calls.fetch_add(1, Ordering::Relaxed);
                            a + b
                        }),
                        (*a, *b),
                    )
                }
                [a] => *a,
                _ => unreachable!(),
            })
            .collect();
        round += 1;
    }
    let pipeline = g.build().expect("the fan-out builds");
    pipeline.set_terminal_progress(TerminalProgress::Never);
    (pipeline, level[0])
}

/// The samples of one variant: (ms, node calls).
#[derive(Default)]
struct Samples(Vec<(f64, usize)>);

impl Samples {
    fn push(&mut self, elapsed: Duration, calls: usize) {
        self.0.push((elapsed.as_secs_f64() * 1e3, calls));
    }

    fn emit(&self, workload: &str, variant: &str) {
        let line = serde_json::json!({
            "side": "daggr",
            "workload": workload,
            "variant": variant,
            "ms": self.0.iter().map(|s| s.0).collect::<Vec<_>>(),
            "calls": self.0.iter().map(|s| s.1).collect::<Vec<_>>(),
        });
        println!("{line}");
    }
}

struct Bench {
    rt: Runtime,
    parent: tempfile::TempDir,
    /// Cache directories of earlier samples, deleted when the process ends.
    keep: Vec<tempfile::TempDir>,
}

impl Bench {
    fn new() -> Bench {
        Bench {
            rt: Runtime::new().expect("a tokio runtime"),
            parent: tempfile::Builder::new()
                .prefix("daggr-compare-")
                .tempdir()
                .expect("a temporary directory"),
            keep: Vec::new(),
        }
    }

    fn fresh_cache(&mut self) -> (Cache, std::path::PathBuf) {
        let dir = tempfile::tempdir_in(self.parent.path()).expect("a cache directory");
        let path = dir.path().to_path_buf();
        self.keep.push(dir);
        (Cache::open(&path).expect("the cache opens"), path)
    }

    fn run(&self, pipeline: &Pipeline) -> daggr::RunReport {
        let report = self
            .rt
            .block_on(pipeline.run(Scope::All))
            .expect("the run starts");
        assert!(report.is_success(), "the run succeeds");
        report
    }

    fn chain100_cold(&mut self, samples: usize) {
        let (mut run, mut run_flush) = (Samples::default(), Samples::default());
        for s in 0..=samples {
            for flush in [false, true] {
                let calls = Calls::default();
                let (cache, _) = self.fresh_cache();
                let c = chain(CHAIN, Some(cache), &calls);
                let t = Instant::now();
                let report = self.run(&c.pipeline);
                if flush {
                    let failed = c.pipeline.cache().flush();
                    assert!(failed.is_empty(), "every write succeeds");
                }
                let elapsed = t.elapsed();
                assert_eq!(*report.value(&c.last).unwrap(), CHAIN as u64);
                let n = calls.load(Ordering::Relaxed);
                assert_eq!(n, CHAIN, "a cold run calls every node");
                // Dropping the last cache handle joins its writer: untimed.
                drop(c);
                if s > 0 {
                    if flush { &mut run_flush } else { &mut run }.push(elapsed, n);
                }
            }
        }
        run.emit("chain100_cold", "run");
        run_flush.emit("chain100_cold", "run_flush");
    }

    fn chain100_rerun(&mut self, samples: usize) {
        let calls = Calls::default();
        let (cache, dir) = self.fresh_cache();
        let c = chain(CHAIN, Some(cache), &calls);
        self.run(&c.pipeline);
        c.pipeline.cache().flush();
        let (mut same, mut fresh) = (Samples::default(), Samples::default());
        for s in 0..=samples {
            calls.store(0, Ordering::Relaxed);
            let t = Instant::now();
            let report = self.run(&c.pipeline);
            let elapsed = t.elapsed();
            assert!(report.computed().is_empty(), "nothing recomputed");
            if s > 0 {
                same.push(elapsed, calls.load(Ordering::Relaxed));
            }

            let other = chain(CHAIN, Some(Cache::open(&dir).unwrap()), &calls);
            let t = Instant::now();
            let report = self.run(&other.pipeline);
            let elapsed = t.elapsed();
            assert!(report.computed().is_empty(), "nothing recomputed");
            assert_eq!(*report.value(&other.last).unwrap(), CHAIN as u64);
            let counters = other.pipeline.cache().counters();
            assert_eq!(
                (counters.disk_hits, counters.memory_hits, counters.misses),
                (CHAIN as u64 + 2, 0, 0),
                "every result (2 inputs, {CHAIN} nodes) read from disk"
            );
            drop(other);
            if s > 0 {
                fresh.push(elapsed, calls.load(Ordering::Relaxed));
            }
        }
        same.emit("chain100_rerun", "same_pipeline");
        fresh.emit("chain100_rerun", "fresh_pipeline_disk");
    }

    fn chain100_edit_middle(&mut self, samples: usize) {
        let calls = Calls::default();
        let (cache, _) = self.fresh_cache();
        let c = chain(CHAIN, Some(cache), &calls);
        self.run(&c.pipeline);
        c.pipeline.cache().flush();
        let (mut run, mut run_flush) = (Samples::default(), Samples::default());
        let mut k = 1u64;
        for s in 0..=samples {
            for flush in [false, true] {
                k += 1; // a value not seen before
                calls.store(0, Ordering::Relaxed);
                let t = Instant::now();
                c.pipeline.set_input(&c.k, k).unwrap();
                let report = self.run(&c.pipeline);
                if flush {
                    assert!(c.pipeline.cache().flush().is_empty());
                }
                let elapsed = t.elapsed();
                if !flush {
                    // The writes of this sample must not overlap the next one.
                    c.pipeline.cache().flush();
                }
                assert_eq!(*report.value(&c.last).unwrap(), CHAIN as u64 - 1 + k);
                let n = calls.load(Ordering::Relaxed);
                assert_eq!(n, CHAIN - CHAIN / 2, "the middle node and its downstream");
                if s > 0 {
                    if flush { &mut run_flush } else { &mut run }.push(elapsed, n);
                }
            }
        }
        run.emit("chain100_edit_middle", "run");
        run_flush.emit("chain100_edit_middle", "run_flush");
    }

    fn fanout50(&mut self, samples: usize) {
        let mut run = Samples::default();
        for _ in 0..samples {
            let calls = Calls::default();
            let (cache, _) = self.fresh_cache();
            let (pipeline, total) = fanout(cache, &calls);
            let t = Instant::now();
            let report = self.run(&pipeline);
            let elapsed = t.elapsed();
            assert_eq!(*report.value(&total).unwrap(), (0..FAN).sum::<u64>());
            let n = calls.load(Ordering::Relaxed);
            assert_eq!(n, 2 * FAN as usize - 1);
            drop(pipeline);
            run.push(elapsed, n);
        }
        run.emit("fanout50", "run");
    }

    fn build1000(&mut self, samples: usize) {
        let calls = Calls::default();
        let (cache, _) = self.fresh_cache();
        let mut build = Samples::default();
        for s in 0..=samples {
            let t = Instant::now();
            let c = chain(1000, Some(cache.clone()), &calls);
            let elapsed = t.elapsed();
            drop(c); // untimed
            if s > 0 {
                build.push(elapsed, 0);
            }
        }
        build.emit("build1000", "add_and_build");
    }
}

fn serve(nodes: usize) {
    let rt = Runtime::new().expect("a tokio runtime");
    let calls = Calls::default();
    rt.block_on(async {
        let c = chain(nodes, None, &calls);
        c.pipeline
            .launch_with(LaunchOptions {
                open_browser: false,
                ..LaunchOptions::default()
            })
            .await
            .expect("the inspector serves");
    });
}

const WORKLOADS: [&str; 5] = [
    "chain100_cold",
    "chain100_rerun",
    "chain100_edit_middle",
    "fanout50",
    "build1000",
];

fn run_workload(bench: &mut Bench, name: &str, samples: usize) {
    match name {
        "chain100_cold" => bench.chain100_cold(samples),
        "chain100_rerun" => bench.chain100_rerun(samples),
        "chain100_edit_middle" => bench.chain100_edit_middle(samples),
        "fanout50" => bench.fanout50(samples),
        "build1000" => bench.build1000(samples),
        _ => unreachable!(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: compare {{{}}} <samples> | serve <nodes> | [--bench]",
        WORKLOADS.join("|")
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match words.as_slice() {
        // `cargo bench` (or `cargo test --benches`): a short pass over every workload.
        [] => {
            let mut bench = Bench::new();
            for name in WORKLOADS {
                run_workload(&mut bench, name, 3);
            }
        }
        ["serve", nodes] => serve(nodes.parse().unwrap_or_else(|_| usage())),
        [name, samples] if WORKLOADS.contains(name) => {
            let samples = samples.parse().unwrap_or_else(|_| usage());
            run_workload(&mut Bench::new(), name, samples);
        }
        _ => usage(),
    }
}
