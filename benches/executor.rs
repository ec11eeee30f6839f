//! Executor benchmarks, each with its budget (checked by reading the report, never by a
//! timed unit test). The Python original, for comparison: 60–90 µs per node in its executor,
//! ~6 ms per node when persisting and updating its UI, independent nodes one at a time (the
//! 50 × 0.1 s fan-out takes 5 s), a stale final value after an upstream edit.
//!
//! | bench | budget |
//! |---|---|
//! | `chain100_cold/async` and `/sync_inline` | ≤ 5 µs overhead per node in-process (≤ 0.5 ms per 100-node run) |
//! | `chain100_cold/engine_only_never_cache` | the executor alone (no cache I/O): ≤ 5 µs per node |
//! | `chain100_cold/with_disk_flush` | reported: includes writing 100 entries to disk |
//! | `chain100_rerun/same_workspace` | 0 node calls, ≤ 2 ms |
//! | `chain100_rerun/fresh_process_disk` | reported: a new workspace over an empty memo reads the disk |
//! | `fanout50_sleep100ms` | ≤ 0.12 s |
//! | `graph10k/build_validate_run_cached` | ≤ 100 ms, peak RSS ≤ 100 MB (printed) |

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use daggr::{Cache, CachePolicy, Configure, FnNode, Graph, Output, Pipeline, Scope};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A chain of `n` trivial nodes after an input; the calls counter counts node bodies.
fn chain(
    n: usize,
    cache: Cache,
    calls: Arc<AtomicUsize>,
    inline_sync: bool,
) -> (Pipeline, Output<u64>) {
    let mut g = Graph::new("chain").cache(cache);
    let start = g.input("start", 0u64);
    let mut prev = start;
    for i in 0..n {
        let calls = calls.clone();
        prev = if inline_sync {
            g.add(
                FnNode::sync(&format!("n{i}"), move |x: u64| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    x + 1
                })
                .inline(),
                (prev,),
            )
        } else {
            g.add(
                FnNode::from_async(&format!("n{i}"), move |x: u64| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    async move { x + 1 }
                }),
                (prev,),
            )
        };
    }
    (g.build().unwrap(), start)
}

fn chain100_cold(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("chain100_cold");
    group.sample_size(40);
    for (name, inline) in [("async", false), ("sync_inline", true)] {
        let calls = Arc::new(AtomicUsize::new(0));
        let (pipeline, start) = chain(
            100,
            Cache::open(dir.path().join(name)).unwrap(),
            calls.clone(),
            inline,
        );
        let mut input = 0u64;
        // A new input value each iteration: every node is a cache miss and really runs.
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    input += 1;
                    pipeline.set_input(&start, input).unwrap();
                },
                |_| rt.block_on(pipeline.run(Scope::All)).unwrap(),
                BatchSize::PerIteration,
            )
        });
        pipeline.cache().flush();
    }
    // The engine alone: nodes that never touch the cache (no disk look-up, no write).
    let mut g = Graph::new("engine").cache(Cache::open(dir.path().join("engine")).unwrap());
    let first = g.input("start", 0u64);
    let mut prev = first;
    for i in 0..100 {
        prev = g.add(
            FnNode::sync(&format!("n{i}"), |x: u64| x + 1)
                .inline()
                .cache_policy(CachePolicy::NeverCache),
            (prev,),
        );
    }
    let engine = g.build().unwrap();
    let mut input = 0u64;
    group.bench_function("engine_only_never_cache", |b| {
        b.iter_batched(
            || {
                input += 1;
                engine.set_input(&first, input).unwrap();
            },
            |_| rt.block_on(engine.run(Scope::All)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let (pipeline, start) = chain(
        100,
        Cache::open(dir.path().join("flush")).unwrap(),
        calls,
        true,
    );
    let mut input = 0u64;
    group.sample_size(10);
    group.bench_function("with_disk_flush", |b| {
        b.iter(|| {
            input += 1;
            pipeline.set_input(&start, input).unwrap();
            rt.block_on(pipeline.run(Scope::All)).unwrap();
            pipeline.cache().flush();
        })
    });
    group.finish();
}

fn chain100_rerun(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let (pipeline, _) = chain(100, Cache::open(dir.path()).unwrap(), calls.clone(), false);
    rt.block_on(pipeline.run(Scope::All)).unwrap();
    pipeline.cache().flush();
    let before = calls.load(Ordering::Relaxed);
    let mut group = c.benchmark_group("chain100_rerun");
    group.bench_function("same_workspace", |b| {
        b.iter(|| rt.block_on(pipeline.run(Scope::All)).unwrap())
    });
    assert_eq!(
        calls.load(Ordering::Relaxed),
        before,
        "a rerun with nothing changed calls no node"
    );
    // A new process: new cache handle (empty memo), new workspace: every hit comes from disk.
    group.sample_size(20);
    group.bench_function("fresh_process_disk", |b| {
        b.iter_batched(
            || chain(100, Cache::open(dir.path()).unwrap(), calls.clone(), false).0,
            |fresh| rt.block_on(fresh.run(Scope::All)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    assert_eq!(
        calls.load(Ordering::Relaxed),
        before,
        "disk hits call no node either"
    );
    group.finish();
}

fn fanout50(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("fanout").cache(Cache::open(dir.path()).unwrap());
    let x = g.input("x", 0u64);
    let mut level: Vec<Output<u64>> = (0..50)
        .map(|i| {
            g.add(
                FnNode::from_async(&format!("sleep{i}"), |x: u64| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    x + 1
                })
                .cache_policy(CachePolicy::AlwaysRecompute),
                (x,),
            )
        })
        .collect();
    // Join through a tree of sums (a node takes at most 8 inputs).
    let mut round = 0;
    while level.len() > 1 {
        level = level
            .chunks(2)
            .enumerate()
            .map(|(i, pair)| match pair {
                [a, b] => g.add(
                    FnNode::sync(&format!("sum{round}_{i}"), |a: u64, b: u64| a + b).inline(),
                    (*a, *b),
                ),
                [a] => *a,
                _ => unreachable!(),
            })
            .collect();
        round += 1;
    }
    let pipeline = g.build().unwrap();
    let mut group = c.benchmark_group("fanout50_sleep100ms");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("run", |b| {
        b.iter(|| rt.block_on(pipeline.run(Scope::All)).unwrap())
    });
    group.finish();
}

fn graph10k(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    // 100 independent chains of 100 nodes.
    let build = |cache: Cache| {
        let mut g = Graph::new("big").cache(cache);
        for chain in 0..100 {
            let mut prev = g.input(format!("in{chain}"), chain as u64);
            for i in 0..99 {
                prev = g.add(
                    FnNode::sync(&format!("c{chain}n{i}"), |x: u64| x + 1).inline(),
                    (prev,),
                );
            }
        }
        g.build().unwrap()
    };
    // Warm the memo once (computing all 10 000 nodes).
    let warm = build(cache.clone());
    let t = Instant::now();
    rt.block_on(warm.run(Scope::All)).unwrap();
    println!(
        "graph10k: first (cold) run computed 10 000 nodes in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut group = c.benchmark_group("graph10k");
    group.sample_size(10);
    group.bench_function("build_validate_run_cached", |b| {
        b.iter(|| {
            let p = build(cache.clone());
            let report = rt.block_on(p.run(Scope::All)).unwrap();
            assert!(report.computed().is_empty());
        })
    });
    group.finish();
    cache.flush();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM")) {
        println!(
            "graph10k: peak RSS of the bench process {} (budget ≤ 100 MB)",
            line.trim_start_matches("VmHWM:").trim()
        );
    }
}

criterion_group!(benches, chain100_cold, chain100_rerun, fanout50, graph10k);
criterion_main!(benches);
