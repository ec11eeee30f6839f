//! Sheet persistence benchmarks.
//!
//! Budgets (the Python original spends about 6 ms per node persisting and updating its UI):
//! - `sheet_chain100/overhead`: persistence overhead per node on a 100-node chain, history and
//!   events included: ≤ 50 µs per node, i.e. (sheet run − plain run) ≤ 5 ms per run.
//! - `sheet_load_10k`: opening a sheet that holds 10 000 results: reported, no hard budget
//!   (it loads the selected entry per node, not the history).
//!
//! Both sides of each comparison run in the same process and the same iteration loop, so
//! the ratio printed at the end is robust to a noisy machine.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use daggr::sheet::SheetStore;
use daggr::{Cache, FnNode, Graph, Output, Pipeline, Scope};

const NODES: usize = 100;

fn chain(cache: Cache) -> (Pipeline, Output<u64>) {
    let mut g = Graph::new("bench-chain").cache(cache);
    let start = g.input("start", 0u64);
    let mut prev = start;
    for i in 0..NODES {
        prev = g.add(
            FnNode::sync(&format!("n{i}"), |x: u64| x + 1).inline(),
            (prev,),
        );
    }
    (g.build().unwrap(), start)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn persistence_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let (pipeline, start) = chain(cache.clone());
    let store = SheetStore::open(dir.path().join("sheets.db")).unwrap();
    let sheet = store.create(&pipeline, "bench").unwrap();
    let plain = pipeline.new_workspace();
    let mut input = 1u64;
    let mut group = c.benchmark_group("sheet_chain100");
    group.sample_size(30);
    // Each iteration uses a fresh input so every node really runs and is stored.
    group.bench_function("plain_run_with_cache_flush", |b| {
        b.iter(|| {
            input += 1;
            plain.set_input(&start, input).unwrap();
            rt.block_on(plain.run(Scope::All)).unwrap();
            cache.flush();
        })
    });
    group.bench_function("sheet_run", |b| {
        b.iter(|| {
            input += 1;
            sheet.set_input(&start, input).unwrap();
            rt.block_on(sheet.run(Scope::All)).unwrap();
        })
    });
    group.finish();

    // The same two measured alternately, for a per-node difference from one run.
    let (mut plain_t, mut sheet_t) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        input += 1;
        plain.set_input(&start, input).unwrap();
        let t = Instant::now();
        rt.block_on(plain.run(Scope::All)).unwrap();
        cache.flush();
        plain_t.push(t.elapsed());
        input += 1;
        sheet.set_input(&start, input).unwrap();
        let t = Instant::now();
        rt.block_on(sheet.run(Scope::All)).unwrap();
        sheet_t.push(t.elapsed());
    }
    let (p, s) = (median(plain_t), median(sheet_t));
    let per_node = s.saturating_sub(p).as_secs_f64() * 1e6 / NODES as f64;
    println!(
        "sheet persistence: plain {:.2} ms, sheet {:.2} ms per 100-node run; overhead {per_node:.1} µs/node (budget ≤ 50 µs; Python original ≈ 6000 µs), ratio {:.2}",
        p.as_secs_f64() * 1e3,
        s.as_secs_f64() * 1e3,
        s.as_secs_f64() / p.as_secs_f64()
    );
}

fn load_10k(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("cache")).unwrap();
    let (pipeline, start) = chain(cache);
    let store = SheetStore::open_with_history_limit(dir.path().join("sheets.db"), 1000).unwrap();
    let sheet = store.create(&pipeline, "big").unwrap();
    for i in 0..100u64 {
        sheet.set_input(&start, 1000 + i).unwrap();
        rt.block_on(sheet.run(Scope::All)).unwrap();
    }
    let count = sheet.history("n0").unwrap().len() * NODES;
    assert_eq!(count, 10_000, "the sheet holds 10 000 results");
    let mut group = c.benchmark_group("sheet_load_10k");
    group.sample_size(20);
    group.bench_function("open_sheet", |b| {
        b.iter(|| store.open_sheet(&pipeline, "big").unwrap())
    });
    group.bench_function("history_of_one_node", |b| {
        b.iter(|| sheet.history("n50").unwrap())
    });
    group.finish();
}

criterion_group!(benches, persistence_overhead, load_10k);
criterion_main!(benches);
