//! GradioNode against Python's gradio_client: 100 sequential calls of a trivial endpoint
//! (`/ping` of tests/fixtures/gradio/text_app.py, no inputs, returns "pong") on the same
//! local Gradio app, measured in the same run, alternating Rust and Python samples.
//!
//! Prints the median of each side and the ratio (gradio_client time / GradioNode time),
//! then lets criterion measure a single GradioNode call. Each GradioNode call is a full
//! pipeline run of a never-cached node (queue join + event stream), as in a real pipeline.
//! Run with `cargo bench --bench gradio` or `scripts/bench-gradio.sh`; needs the venv of
//! scripts/setup/gradio.sh (set up on first use).
//!
//! Measured on the 2-core machine, Gradio 5.50.0, gradio_client 1.14.0: idle, GradioNode
//! 55.2 ms per call against gradio_client 104.5 ms (ratio 1.89); under a parallel build,
//! 60.9 ms against 196.1 ms (3.22). Gradio's queue loop sleeps 50 ms when it is free, which
//! is most of GradioNode's time per call.

#[path = "../../tests/gradio_support/mod.rs"]
mod gradio_support;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use daggr::{Cache, CachePolicy, Configure, GradioNode, Graph, Output, Pipeline, Scope};

const CALLS: usize = 100;
const SAMPLES: usize = 7;

fn pipeline(url: &str, dir: &std::path::Path) -> (Pipeline, Output<String>) {
    let mut g = Graph::new("ping").cache(Cache::open(dir).unwrap());
    let out = g.add(
        GradioNode::new("ping", url)
            .api("/ping")
            .output::<String>("pong")
            .cache_policy(CachePolicy::NeverCache),
        (),
    );
    (g.build().unwrap(), out)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn python_sample(url: &str) -> Duration {
    let script = gradio_support::repo_root().join("benches/gradio_client_calls.py");
    let out = std::process::Command::new(gradio_support::python())
        .arg(script)
        .args([url, "/ping", &CALLS.to_string()])
        .env("GRADIO_ANALYTICS_ENABLED", "False")
        .output()
        .expect("running the gradio_client side");
    assert!(
        out.status.success(),
        "gradio_client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    Duration::from_secs_f64(secs)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = gradio_support::GradioApp::start("text_app.py");
    let dir = tempfile::tempdir().unwrap();
    let (p, out) = pipeline(&app.url, dir.path());
    rt.block_on(async {
        let r = p.run(Scope::All).await.unwrap();
        assert_eq!(*r.value(&out).unwrap(), "pong");
    });

    let (mut rust, mut python) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let started = Instant::now();
        rt.block_on(async {
            for _ in 0..CALLS {
                let r = p.run(Scope::All).await.unwrap();
                assert!(r.is_success());
            }
        });
        rust.push(started.elapsed());
        python.push(python_sample(&app.url));
    }
    let (r, py) = (median(rust.clone()), median(python.clone()));
    println!(
        "gradio: {CALLS} sequential calls of /ping, median of {SAMPLES} alternating samples: \
         GradioNode {:.1} ms ({:.2} ms/call), gradio_client {:.1} ms ({:.2} ms/call); \
         gradio_client / GradioNode = {:.2}",
        r.as_secs_f64() * 1e3,
        r.as_secs_f64() * 1e3 / CALLS as f64,
        py.as_secs_f64() * 1e3,
        py.as_secs_f64() * 1e3 / CALLS as f64,
        py.as_secs_f64() / r.as_secs_f64()
    );
    println!("gradio: samples GradioNode {rust:?}, gradio_client {python:?}");

    let mut group = c.benchmark_group("gradio");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("gradio_node_one_call", |b| {
        b.to_async(&rt).iter(|| async {
            let r = p.run(Scope::All).await.unwrap();
            assert!(r.is_success());
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
