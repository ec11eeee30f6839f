//! The shared cache tier against a real S3-compatible server (moto, from the test
//! environment: run `bash scripts/setup/s3.sh` first), beside the local-only cache.
//!
//! One node producing either a small value (`small`, a `u64`) or a 4 MiB image (`image`).
//! Per payload:
//! - `local/cold_miss`: a new cache directory, the node runs, then `Cache::flush` (durable
//!   on disk) — included in the figure;
//! - `local/local_hit`: the same directory, memory cleared: read back from disk;
//! - `shared/cold_miss`: as `local/cold_miss` with the bucket behind it; the flush waits
//!   for the upload too, so the figure includes it;
//! - `shared/remote_hit`: a new, empty cache directory each time in front of the bucket
//!   that holds the result: fetched, verified and kept locally;
//! - `shared/local_hit`: after that, the same directory with memory cleared: local.
//!
//! moto is a Python server on loopback: remote figures are a floor for the client's work
//! plus moto's, not a prediction for a real bucket across a network.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use daggr::cache::ObjectStoreShared;
use daggr::{Cache, FnNode, Graph, Image, Output, Pipeline, Scope};

const IMAGE_BYTES: usize = 4 << 20;

struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto() -> Option<Moto> {
    let env = std::env::var_os("DAGGR_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/daggr-test-env")
        });
    let server = env.join("s3-venv/bin/moto_server");
    if !server.exists() {
        eprintln!(
            "shared_cache bench: no moto at {} (run scripts/setup/s3.sh)",
            server.display()
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = daggr::reqwest::Client::new();
    for _ in 0..300 {
        let created = rt.block_on(client.put(format!("{}/bench", moto.endpoint)).send());
        if created.is_ok_and(|r| r.status().is_success()) {
            return Some(moto);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn store(moto: &Moto) -> Arc<ObjectStoreShared> {
    let options = [
        ("aws_endpoint", moto.endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "bench"),
        ("aws_secret_access_key", "bench"),
        ("aws_region", "us-east-1"),
    ];
    Arc::new(ObjectStoreShared::from_url_with_options("s3://bench/run", options).unwrap())
}

/// `seed → make`, where `make` produces the payload.
fn pipeline(cache: Cache, image: bool) -> (Pipeline, Output<u64>) {
    let mut g = Graph::new("bench-shared").cache(cache);
    let seed = g.input("seed", 0u64);
    if image {
        g.add(
            FnNode::sync("make", |s: u64| {
                let mut bytes = vec![0u8; IMAGE_BYTES];
                bytes[..8].copy_from_slice(&s.to_le_bytes());
                Image::new(bytes, "image/x-raw")
            }),
            (seed,),
        );
    } else {
        g.add(FnNode::sync("make", |s: u64| s * 3), (seed,));
    }
    (g.build().unwrap(), seed)
}

fn bench(c: &mut Criterion) {
    let Some(moto) = start_moto() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shared = store(&moto);
    let mut seed = 1_000u64;
    for (payload, image) in [("small", false), ("image", true)] {
        let mut group = c.benchmark_group(format!("shared_cache_{payload}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(5));
        for tier in ["local", "shared"] {
            let open = |dir: &std::path::Path| match tier {
                "local" => Cache::open(dir).unwrap(),
                _ => Cache::open_shared(dir, shared.clone()).unwrap(),
            };
            group.bench_function(format!("{tier}/cold_miss"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let dir = tempfile::tempdir().unwrap();
                        let cache = open(dir.path());
                        let (p, input) = pipeline(cache.clone(), image);
                        seed += 1;
                        p.set_input(&input, seed).unwrap();
                        let t = Instant::now();
                        rt.block_on(p.run(Scope::All)).unwrap();
                        cache.flush();
                        total += t.elapsed();
                    }
                    total
                })
            });
            // One result to hit, computed once.
            let hit_seed = seed + 1_000_000;
            let warm = tempfile::tempdir().unwrap();
            {
                let cache = open(warm.path());
                let (p, input) = pipeline(cache.clone(), image);
                p.set_input(&input, hit_seed).unwrap();
                rt.block_on(p.run(Scope::All)).unwrap();
                cache.flush();
            }
            if tier == "shared" {
                group.bench_function("shared/remote_hit", |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let dir = tempfile::tempdir().unwrap();
                            let cache = open(dir.path());
                            let (p, input) = pipeline(cache.clone(), image);
                            p.set_input(&input, hit_seed).unwrap();
                            let t = Instant::now();
                            let report = rt.block_on(p.run(Scope::All)).unwrap();
                            total += t.elapsed();
                            assert!(report.computed().is_empty(), "a hit");
                        }
                        total
                    })
                });
            }
            let cache = open(warm.path());
            let (p, input) = pipeline(cache.clone(), image);
            group.bench_function(format!("{tier}/local_hit"), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        cache.clear_memory();
                        let fresh = p.new_workspace();
                        fresh.set_input(&input, hit_seed).unwrap();
                        let t = Instant::now();
                        let report = rt.block_on(fresh.run(Scope::All)).unwrap();
                        total += t.elapsed();
                        assert!(report.computed().is_empty(), "a hit");
                    }
                    total
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
