//! Latency of the workflow API's `POST /api/call`, over real HTTP on loopback (a reqwest
//! client with a kept-alive connection against the served inspector), client time included.
//! Nothing is asserted on timings. Each bench prints the median, 90th and 99th percentile
//! of every call it timed (warm-up included) as `daggr-bench: workflow_call/<name>
//! median_ms=… p90_ms=… p99_ms=…`, beside criterion's estimates (which are of each sample's
//! mean time per call, so a few slow calls in a sample weigh on them).
//!
//! | bench | what is timed | budget |
//! |---|---|---|
//! | `workflow_call/cached_chain100` | a call on a 100-node chain whose inputs were seen before: a fresh workspace per call, every node from the memory cache, 0 node calls | ≤ 2 ms |
//! | `workflow_call/uncached_trivial` | a call on a one-node pipeline with a new input each time: the node runs | reported |
//!
//! Setup (building the pipelines, the first cold call) is untimed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use daggr::inspector::{Inspector, LaunchOptions};
use daggr::{Cache, FnNode, Graph, Pipeline};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

/// Nodes of the cached chain (after its input).
const CHAIN: usize = 100;

/// An input `start` then `n` inline `x + 1` nodes; the last one is the output.
fn chain(n: usize, cache: Cache, calls: &Arc<AtomicUsize>) -> Pipeline {
    let mut g = Graph::new(format!("chain{n}")).cache(cache);
    let mut prev = g.input("start", 0u64);
    for i in 0..n {
        let calls = calls.clone();
        prev = g.add(
            FnNode::sync(&format!("n{i}"), move |x: u64| {
                calls.fetch_add(1, Ordering::Relaxed);
                x + 1
            })
            .inline(),
            (prev,),
        );
    }
    g.name_output("last", &prev);
    g.build().unwrap()
}

/// Serves `pipeline` (its sheets in `sheets_db`) on a free loopback port until the runtime
/// ends; its base URL.
fn serve(rt: &Runtime, pipeline: &Pipeline, sheets_db: std::path::PathBuf) -> String {
    rt.block_on(async {
        let inspector = Inspector::bind(
            pipeline,
            LaunchOptions {
                port: Some(0),
                open_browser: false,
                sheets_db: Some(sheets_db),
                ..LaunchOptions::default()
            },
        )
        .await
        .unwrap();
        let base = format!("http://127.0.0.1:{}", inspector.local_addr().port());
        tokio::spawn(inspector.serve(std::future::pending()));
        base
    })
}

async fn call(client: &reqwest::Client, base: &str, inputs: Value) -> Value {
    let r = client
        .post(format!("{base}/api/call"))
        .json(&json!({ "inputs": inputs }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Times `iters` calls made by `body`, keeping each one's time for the median.
fn timed<F: std::future::Future<Output = ()>>(
    rt: &Runtime,
    iters: u64,
    samples: &Mutex<Vec<Duration>>,
    mut body: impl FnMut() -> F,
) -> Duration {
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let t = Instant::now();
            body().await;
            let spent = t.elapsed();
            total += spent;
            samples.lock().unwrap().push(spent);
        }
        total
    })
}

fn median_line(name: &str, samples: &Mutex<Vec<Duration>>) {
    let mut samples = samples.lock().unwrap();
    samples.sort();
    if samples.is_empty() {
        return;
    }
    let at = |q: f64| {
        let i = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    println!(
        "daggr-bench: workflow_call/{name} median_ms={:.3} p90_ms={:.3} p99_ms={:.3} calls={}",
        at(0.5),
        at(0.9),
        at(0.99),
        samples.len()
    );
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut group = c.benchmark_group("workflow_call");

    // Cached: the same inputs every time, after one cold call.
    let calls = Arc::new(AtomicUsize::new(0));
    let pipeline = chain(
        CHAIN,
        Cache::open(dir.path().join("chain")).unwrap(),
        &calls,
    );
    let base = serve(&rt, &pipeline, dir.path().join("chain.db"));
    let first = rt.block_on(call(&client, &base, json!({ "start": 1 })));
    assert_eq!(first["outputs"]["last"], json!(CHAIN as u64 + 1));
    let ran = calls.load(Ordering::Relaxed);
    assert_eq!(ran, CHAIN, "the cold call runs every node");
    let samples = Mutex::new(Vec::new());
    group.bench_function("cached_chain100", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, &samples, || async {
                let answer = call(&client, &base, json!({ "start": 1 })).await;
                debug_assert_eq!(answer["computed"], json!([]));
            })
        })
    });
    assert_eq!(
        calls.load(Ordering::Relaxed),
        ran,
        "cached calls run no node"
    );
    median_line("cached_chain100", &samples);

    // Uncached: one node, a new input each time.
    let calls = Arc::new(AtomicUsize::new(0));
    let trivial = chain(1, Cache::open(dir.path().join("one")).unwrap(), &calls);
    let base = serve(&rt, &trivial, dir.path().join("one.db"));
    let next = AtomicU64::new(1);
    let samples = Mutex::new(Vec::new());
    group.bench_function("uncached_trivial", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, &samples, || async {
                let start = next.fetch_add(1, Ordering::Relaxed);
                let answer = call(&client, &base, json!({ "start": start })).await;
                debug_assert_eq!(answer["computed"], json!(["n0"]));
            })
        })
    });
    assert_eq!(
        calls.load(Ordering::Relaxed) as u64,
        next.load(Ordering::Relaxed) - 1,
        "every uncached call runs its node"
    );
    median_line("uncached_trivial", &samples);
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
