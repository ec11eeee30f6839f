//! The executor's rules: concurrency, scopes, invalidation, early cutoff,
//! failure isolation, cancellation, retries, timeouts and events.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daggr::{
    constant, random_seed, Cache, CachePolicy, CacheSource, Configure, Error, Event, FnNode, Graph,
    Image, Outcome, RetryPolicy, Scope,
};

fn temp_cache() -> (tempfile::TempDir, Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    (dir, cache)
}

/// Counts calls per node.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Tracks how many nodes are inside their body at once.
#[derive(Clone, Default)]
struct Overlap {
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Overlap {
    async fn occupy(&self, for_: Duration) {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(for_).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_really_overlaps_in_time() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("fanout").cache(cache);
    let overlap = Overlap::default();
    let seed = g.input("seed", 0u64);
    let mut outs = Vec::new();
    for i in 0..8u64 {
        let o = overlap.clone();
        outs.push(g.add(
            FnNode::from_async(&format!("branch{i}"), move |s: u64| {
                let o = o.clone();
                async move {
                    o.occupy(Duration::from_millis(150)).await;
                    s + i
                }
            }),
            (seed,),
        ));
    }
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success());
    assert_eq!(
        overlap.peak(),
        8,
        "all eight independent branches were in flight together"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_limits_bound_concurrency_within_the_group_only() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("groups").cache(cache).group_limit("gpu", 1);
    let gpu = Overlap::default();
    let cpu = Overlap::default();
    let seed = g.input("seed", 0u64);
    for i in 0..3u64 {
        let (gpu, cpu) = (gpu.clone(), cpu.clone());
        let gpu_fn = move |s: u64| {
            let o = gpu.clone();
            async move {
                o.occupy(Duration::from_millis(60)).await;
                s + i
            }
        };
        let cpu_fn = move |s: u64| {
            let o = cpu.clone();
            async move {
                o.occupy(Duration::from_millis(60)).await;
                s + i
            }
        };
        g.add(
            FnNode::from_async(&format!("gpu{i}"), gpu_fn).group("gpu"),
            (seed,),
        );
        g.add(FnNode::from_async(&format!("cpu{i}"), cpu_fn), (seed,));
    }
    let pipeline = g.build().unwrap();
    assert!(pipeline.run(Scope::All).await.unwrap().is_success());
    assert_eq!(gpu.peak(), 1, "the gpu group never ran two nodes at once");
    assert_eq!(cpu.peak(), 3, "ungrouped nodes still overlap");
}

#[tokio::test]
async fn a_second_run_with_nothing_changed_calls_no_node() {
    let (_d, cache) = temp_cache();
    let calls = Calls::default();
    let mut g = Graph::new("rerun").cache(cache);
    let x = g.input("x", 3u64);
    let c = calls.clone();
    let sq = g.add(
        FnNode::sync("square", move |x: u64| {
            c.hit();
            x * x
        }),
        (x,),
    );
    let pipeline = g.build().unwrap();
    assert_eq!(
        *pipeline.run(Scope::All).await.unwrap().value(&sq).unwrap(),
        9
    );
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(calls.get(), 1);
    assert_eq!(report.cached(), ["x", "square"]);
    assert!(matches!(
        report.outcome("square"),
        Some(Outcome::Cached(CacheSource::Workspace))
    ));
}

#[tokio::test]
async fn results_survive_the_process_through_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let build = |calls: Calls| {
        let mut g = Graph::new("disk").cache(Cache::open(dir.path()).unwrap());
        let size = g.input("size", 16u32);
        let img = g.add(
            FnNode::sync("render", move |s: u32| {
                calls.hit();
                Image::new(vec![s as u8; (s * s) as usize], "image/x-raw")
            }),
            (size,),
        );
        let total = g.add(
            FnNode::sync("total", |i: Image| {
                i.bytes().iter().map(|b| *b as u64).sum::<u64>()
            }),
            (img,),
        );
        (g.build().unwrap(), img, total)
    };
    let (first, _, total) = build(calls.clone());
    assert_eq!(
        *first.run(Scope::All).await.unwrap().value(&total).unwrap(),
        16 * 256
    );
    drop(first); // the last handle flushes queued writes
    let (second, img, total) = build(calls.clone());
    let report = second.run(Scope::All).await.unwrap();
    assert_eq!(calls.get(), 1, "the render node was read back from disk");
    assert!(matches!(
        report.outcome("render"),
        Some(Outcome::Cached(CacheSource::Disk))
    ));
    assert_eq!(report.value(&img).unwrap().bytes().len(), 256);
    assert_eq!(*report.value(&total).unwrap(), 16 * 256);
}

/// `a -> parity -> report`, plus an independent branch `b -> double`.
#[tokio::test]
async fn early_cutoff_and_exact_downstream_invalidation() {
    let (_d, cache) = temp_cache();
    let calls: Vec<Calls> = (0..3).map(|_| Calls::default()).collect();
    let mut g = Graph::new("cutoff").cache(cache);
    let a = g.input("a", 2u64);
    let b = g.input("b", 5u64);
    let c0 = calls[0].clone();
    let parity = g.add(
        FnNode::sync("parity", move |x: u64| {
            c0.hit();
            x % 2
        }),
        (a,),
    );
    let c1 = calls[1].clone();
    let report_node = g.add(
        FnNode::sync("describe", move |p: u64| {
            c1.hit();
            if p == 0 { "even" } else { "odd" }.to_string()
        }),
        (parity,),
    );
    let c2 = calls[2].clone();
    g.add(
        FnNode::sync("double", move |x: u64| {
            c2.hit();
            x * 2
        }),
        (b,),
    );
    let pipeline = g.build().unwrap();
    pipeline.run(Scope::All).await.unwrap();
    let counts = || calls.iter().map(Calls::get).collect::<Vec<_>>();
    assert_eq!(counts(), [1, 1, 1]);

    // 2 -> 4: parity reruns and yields the same bytes, so `describe` is a cache hit.
    pipeline.set_input(&a, 4).unwrap();
    assert_eq!(
        pipeline.stale_nodes(),
        ["a", "parity", "describe"],
        "exactly the downstream cone"
    );
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(counts(), [2, 1, 1]);
    assert_eq!(report.computed(), ["a", "parity"]);
    assert_eq!(report.cached().len(), 3); // b, double, describe
    assert_eq!(*report.value(&report_node).unwrap(), "even");

    // 4 -> 7: the parity changes, so `describe` reruns; `double` never does.
    pipeline.set_input(&a, 7).unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(counts(), [3, 2, 1]);
    assert_eq!(*report.value(&report_node).unwrap(), "odd");
}

/// The Python original returns a stale final value here (reference §13).
#[tokio::test]
async fn edit_middle_run_only_then_run_to_end_is_correct() {
    let (_d, cache) = temp_cache();
    let calls: Vec<Calls> = (0..3).map(|_| Calls::default()).collect();
    let mut g = Graph::new("middle").cache(cache);
    let c0 = calls[0].clone();
    let first = g.add(
        FnNode::sync("first", move || {
            c0.hit();
            10u64
        }),
        (),
    );
    let c1 = calls[1].clone();
    let middle = g.add(
        FnNode::sync("middle", move |x: u64, k: u64| {
            c1.hit();
            x * k
        })
        .inputs(["x", "k"]),
        (first, constant(2u64)),
    );
    let c2 = calls[2].clone();
    let last = g.add(
        FnNode::sync("last", move |x: u64| {
            c2.hit();
            x + 1
        }),
        (middle,),
    );
    let pipeline = g.build().unwrap();
    assert_eq!(
        *pipeline
            .run(Scope::All)
            .await
            .unwrap()
            .value(&last)
            .unwrap(),
        21
    );

    pipeline.set_constant("middle", "k", 3u64).unwrap();
    assert!(
        matches!(pipeline.value(&last), Err(Error::Stale { .. })),
        "a stale value is never current"
    );
    let report = pipeline.run(Scope::only(middle)).await.unwrap();
    assert_eq!(report.computed(), ["middle"]);
    assert_eq!(*report.value(&middle).unwrap(), 30);
    assert!(pipeline.is_stale(last).unwrap());

    let report = pipeline.run(Scope::to(last)).await.unwrap();
    assert_eq!(
        *report.value(&last).unwrap(),
        31,
        "the final value reflects the edit"
    );
    assert_eq!(report.computed(), ["last"]);
    assert_eq!(calls.iter().map(Calls::get).collect::<Vec<_>>(), [1, 2, 2]);
    assert_eq!(*pipeline.value(&last).unwrap(), 31);
    assert!(pipeline.stale_nodes().is_empty());
}

#[tokio::test]
async fn run_from_reruns_the_node_and_everything_downstream_only() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("from").cache(cache);
    let up = g.add(FnNode::sync("up", || 1u64), ());
    let mid = g.add(
        FnNode::sync("mid", |x: u64| x + 1).cache_policy(CachePolicy::AlwaysRecompute),
        (up,),
    );
    let down = g.add(FnNode::sync("down", |x: u64| x * 10), (mid,));
    let pipeline = g.build().unwrap();
    pipeline.run(Scope::All).await.unwrap();
    let report = pipeline.run(Scope::from(mid)).await.unwrap();
    let evaluated: Vec<&str> = report.outcomes().map(|(n, _)| n).collect();
    assert_eq!(
        evaluated,
        ["mid", "down"],
        "upstream is reused, not evaluated"
    );
    assert_eq!(
        report.computed(),
        ["mid"],
        "always-recompute ran; down hit by early cutoff"
    );
    assert_eq!(*report.value(&down).unwrap(), 20);
}

#[tokio::test]
async fn run_only_without_upstream_values_names_the_missing_port() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("missing").cache(cache);
    let up = g.add(FnNode::sync("up", || 1u64), ());
    let down = g.add(FnNode::sync("down", |x: u64| x).inputs(["value"]), (up,));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::only(down)).await.unwrap();
    let err = report.value(&down).unwrap_err().to_string();
    assert!(
        err.contains("`down.value`") && err.contains("`up`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failure_skips_its_downstream_and_the_other_branches_finish() {
    let (_d, cache) = temp_cache();
    let broken = Arc::new(AtomicBool::new(true));
    let flaky_calls = Calls::default();
    let mut g = Graph::new("isolation").cache(cache);
    let x = g.input("x", 1u64);
    let (b, c) = (broken.clone(), flaky_calls.clone());
    let flaky = g.add(
        FnNode::try_sync("flaky", move |x: u64| {
            c.hit();
            if b.load(Ordering::SeqCst) {
                Err(std::io::Error::other("disk on fire"))
            } else {
                Ok(x)
            }
        }),
        (x,),
    );
    let after = g.add(FnNode::sync("after_flaky", |x: u64| x + 1), (flaky,));
    let healthy = g.add(FnNode::sync("healthy", |x: u64| x * 100), (x,));
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(!report.is_success());
    assert_eq!(report.failed(), ["flaky"]);
    assert_eq!(report.skipped(), ["after_flaky"]);
    assert_eq!(*report.value(&healthy).unwrap(), 100);
    let err = report.errors()[0].to_string();
    assert!(
        err.contains("node `flaky` failed") && err.contains("disk on fire"),
        "{err}"
    );
    assert!(
        matches!(report.outcome("after_flaky"), Some(Outcome::Skipped { because }) if because == "flaky")
    );

    // Nothing from the failed node was cached: once fixed it runs again.
    broken.store(false, Ordering::SeqCst);
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(flaky_calls.get(), 2);
    assert_eq!(report.computed(), ["flaky", "after_flaky"]);
    assert_eq!(*report.value(&after).unwrap(), 2);
}

#[tokio::test]
async fn a_panicking_node_fails_cleanly() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("panic").cache(cache);
    let out = g.add(FnNode::sync("boom", || -> u64 { panic!("kaboom") }), ());
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    let err = report.value(&out).unwrap_err().to_string();
    assert!(err.contains("boom") && err.contains("kaboom"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_scheduling_and_drops_in_flight_nodes() {
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (_d, cache) = temp_cache();
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Calls::default();
    let after_calls = Calls::default();
    let mut g = Graph::new("cancel").cache(cache);
    let (d, f) = (dropped.clone(), finished.clone());
    let slow = g.add(
        FnNode::from_async("slow", move || {
            let guard = SetOnDrop(d.clone());
            let f = f.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                f.hit();
                drop(guard);
                1u64
            }
        }),
        (),
    );
    let a = after_calls.clone();
    g.add(
        FnNode::sync("after", move |x: u64| {
            a.hit();
            x
        }),
        (slow,),
    );
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    let handle = pipeline.spawn(Scope::All);
    // Wait until the slow node is really running, then cancel.
    loop {
        if let Ok(Event::NodeStarted { name, .. }) = events.recv().await {
            if &*name == "slow" {
                break;
            }
        }
    }
    handle.cancel();
    let report = handle.wait().await.unwrap();
    assert!(report.cancelled);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the in-flight future was dropped"
    );
    assert_eq!(finished.get(), 0);
    assert_eq!(
        after_calls.get(),
        0,
        "nothing was scheduled after the cancel"
    );
    assert!(
        matches!(report.outcome("slow"), Some(Outcome::Failed(e)) if matches!(**e, Error::Cancelled { .. }))
    );
    assert!(
        pipeline.result("slow").unwrap().is_none(),
        "a cancelled node leaves no result"
    );
}

#[tokio::test]
async fn context_nodes_see_cancellation_and_report_progress() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("ctx").cache(cache);
    let out = g.add(
        FnNode::with_context("steps", |ctx: daggr::NodeContext, n: u32| async move {
            for i in 0..n {
                ctx.progress(Some(i as f32 / n as f32), format!("step {i}"));
                ctx.partial(serde_json::json!({ "done": i }));
            }
            Ok::<_, std::io::Error>(n * 2)
        }),
        (constant(4u32),),
    );
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&out).unwrap(), 8);
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        kinds.push(match e {
            Event::RunStarted { .. } => "run_started".to_string(),
            Event::NodeStarted { .. } => "started".into(),
            Event::NodeProgress { message, .. } => message,
            Event::NodePartial { .. } => "partial".into(),
            Event::NodeFinished { .. } => "finished".into(),
            Event::RunFinished { computed, .. } => format!("run_finished:{computed}"),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(kinds.first().unwrap(), "run_started");
    assert_eq!(kinds.last().unwrap(), "run_finished:1");
    assert_eq!(kinds.iter().filter(|k| k.starts_with("step")).count(), 4);
    assert_eq!(kinds.iter().filter(|k| *k == "partial").count(), 4);
    // Events are small deltas: serialised, none carries the graph.
    let json = serde_json::to_string(&Event::RunStarted { run: 1, nodes: 3 }).unwrap();
    assert_eq!(json, r#"{"type":"run_started","run":1,"nodes":3}"#);
}

#[tokio::test]
async fn retries_with_backoff_then_succeeds() {
    let (_d, cache) = temp_cache();
    let attempts = Calls::default();
    let mut g = Graph::new("retry").cache(cache);
    let a = attempts.clone();
    let out = g.add(
        FnNode::try_async("flaky", move || {
            let a = a.clone();
            async move {
                a.hit();
                if a.get() < 3 {
                    Err("503 service unavailable")
                } else {
                    Ok(7u64)
                }
            }
        })
        .retry(RetryPolicy::new(3, Duration::from_millis(5))),
        (),
    );
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&out).unwrap(), 7);
    assert!(matches!(
        report.outcome("flaky"),
        Some(Outcome::Computed { attempts: 3, .. })
    ));
    let mut retries = 0;
    while let Ok(e) = events.try_recv() {
        if let Event::NodeRetrying { error, .. } = e {
            assert!(error.contains("503"));
            retries += 1;
        }
    }
    assert_eq!(retries, 2);
    assert_eq!(
        RetryPolicy::new(5, Duration::from_millis(100)).delay(3),
        Duration::from_millis(400)
    );
}

#[tokio::test]
async fn a_node_past_its_timeout_fails_with_a_timeout_error() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("timeout").cache(cache);
    let out = g.add(
        FnNode::from_async("hang", || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            1u64
        })
        .timeout(Duration::from_millis(50)),
        (),
    );
    let pipeline = g.build().unwrap();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(
        matches!(report.outcome("hang"), Some(Outcome::Failed(e)) if matches!(**e, Error::Timeout { .. }))
    );
    assert!(report
        .value(&out)
        .unwrap_err()
        .to_string()
        .contains("timed out after 50ms"));
}

#[tokio::test]
async fn generated_inputs_are_recorded_with_the_result() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("seed").cache(cache);
    let draw = g.add(
        FnNode::sync("draw", |seed: u64| seed % 1000).inputs(["seed"]),
        (random_seed(),),
    );
    let pipeline = g.build().unwrap();
    let first = pipeline.run(Scope::All).await.unwrap();
    let result = pipeline.result("draw").unwrap().unwrap();
    let (port, seed) = &result.generated[0];
    assert_eq!(port, "seed");
    let seed = *seed.downcast_ref::<u64>().unwrap();
    assert_eq!(*first.value(&draw).unwrap(), seed % 1000);
    assert!(
        !pipeline.is_stale("draw").unwrap(),
        "a generated input alone does not make a node stale"
    );
    pipeline.run(Scope::All).await.unwrap();
    let again = pipeline.result("draw").unwrap().unwrap();
    assert_ne!(
        *again.generated[0].1.downcast_ref::<u64>().unwrap(),
        seed,
        "a new seed each run"
    );
}

#[tokio::test]
async fn cache_policies_are_honoured() {
    let (_d, cache) = temp_cache();
    let (always, never) = (Calls::default(), Calls::default());
    let mut g = Graph::new("policies").cache(cache.clone());
    let (a, n) = (always.clone(), never.clone());
    g.add(
        FnNode::sync("always", move || {
            a.hit();
            1u64
        })
        .cache_policy(CachePolicy::AlwaysRecompute),
        (),
    );
    g.add(
        FnNode::sync("never", move || {
            n.hit();
            2u64
        })
        .cache_policy(CachePolicy::NeverCache),
        (),
    );
    let pipeline = g.build().unwrap();
    pipeline.run(Scope::All).await.unwrap();
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!((always.get(), never.get()), (2, 2));
    let always_key = pipeline.result("always").unwrap().unwrap().key;
    let never_key = pipeline.result("never").unwrap().unwrap().key;
    cache.flush();
    assert!(cache.contains(&always_key));
    assert!(
        !cache.contains(&never_key),
        "never-cache results are not written"
    );
}

#[tokio::test]
async fn a_corrupted_cache_entry_is_detected_and_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let build = |calls: Calls| {
        let mut g = Graph::new("corrupt").cache(Cache::open(dir.path()).unwrap());
        let out = g.add(
            FnNode::sync("text", move || {
                calls.hit();
                "precious result".to_string()
            }),
            (),
        );
        (g.build().unwrap(), out)
    };
    let (p, _) = build(calls.clone());
    p.run(Scope::All).await.unwrap();
    drop(p);
    // Flip bytes in every content file.
    let mut damaged = 0;
    for entry in walk(&dir.path().join("content-v2")) {
        let mut bytes = std::fs::read(&entry).unwrap();
        for b in bytes.iter_mut() {
            *b ^= 0x55;
        }
        std::fs::write(&entry, bytes).unwrap();
        damaged += 1;
    }
    assert!(damaged > 0);
    let (p, out) = build(calls.clone());
    let report = p.run(Scope::All).await.unwrap();
    assert_eq!(calls.get(), 2, "the damaged entry was a miss");
    assert_eq!(*report.value(&out).unwrap(), "precious result");
    assert_eq!(p.cache().counters().integrity_failures, 1);
    drop(p);
    let (p, _) = build(calls.clone());
    let report = p.run(Scope::All).await.unwrap();
    assert_eq!(calls.get(), 2, "the entry was repaired");
    assert!(matches!(
        report.outcome("text"),
        Some(Outcome::Cached(CacheSource::Disk))
    ));
}

#[tokio::test]
async fn a_changed_version_or_constant_invalidates_but_a_renamed_pipeline_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let run = |pipeline_name: &str, version: &str, k: u64| {
        let calls = calls.clone();
        let mut g = Graph::new(pipeline_name).cache(Cache::open(dir.path()).unwrap());
        g.add(
            FnNode::sync("scale", move |k: u64| {
                calls.hit();
                k * 2
            })
            .version(version),
            (constant(k),),
        );
        let pipeline = g.build().unwrap();
        async move { pipeline.run(Scope::All).await.unwrap() }
    };
    run("p", "1", 1).await;
    run("p", "1", 1).await;
    assert_eq!(calls.get(), 1);
    run("renamed", "1", 1).await;
    assert_eq!(
        calls.get(),
        1,
        "the key is about what the node computes, not the pipeline name"
    );
    run("p", "2", 1).await;
    assert_eq!(calls.get(), 2);
    run("p", "2", 5).await;
    assert_eq!(calls.get(), 3);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(read) = std::fs::read_dir(dir) {
        for entry in read.flatten() {
            if entry.path().is_dir() {
                out.extend(walk(&entry.path()));
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn workspaces_share_the_graph_and_cache_but_not_inputs_or_results() {
    let (_d, cache) = temp_cache();
    let calls = Calls::default();
    let mut g = Graph::new("workspaces").cache(cache);
    let x = g.input("x", 2u64);
    let c = calls.clone();
    let sq = g.add(
        FnNode::sync("square", move |x: u64| {
            c.hit();
            x * x
        }),
        (x,),
    );
    let first = g.build().unwrap();
    let second = first.new_workspace();
    second.set_input(&x, 5).unwrap();
    assert_eq!(*first.run(Scope::All).await.unwrap().value(&sq).unwrap(), 4);
    assert_eq!(
        *second.run(Scope::All).await.unwrap().value(&sq).unwrap(),
        25
    );
    let third = first.new_workspace();
    let report = third.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&sq).unwrap(), 4);
    assert!(matches!(
        report.outcome("square"),
        Some(Outcome::Cached(CacheSource::Memory))
    ));
    assert_eq!(calls.get(), 2);
    assert_eq!(
        *first.value(&sq).unwrap(),
        4,
        "the first workspace kept its own result"
    );
}

/// A node whose code fingerprint is only learnt when a run starts (like a remote app's
/// current revision): it doubles its input and counts its calls.
struct RemoteRevision {
    spec: daggr::NodeSpec,
    revision: Arc<std::sync::Mutex<Option<String>>>,
    asked: Calls,
    calls: Calls,
}

impl daggr::Node for RemoteRevision {
    fn spec(&self) -> &daggr::NodeSpec {
        &self.spec
    }
    fn run(
        &self,
        _ctx: daggr::NodeContext,
        inputs: daggr::Inputs,
    ) -> futures::future::BoxFuture<'static, Result<Vec<daggr::Value>, daggr::BoxError>> {
        self.calls.hit();
        let x = inputs.get::<u64>(0);
        Box::pin(async move { Ok(vec![daggr::Value::new(x? * 2)?]) })
    }
    fn runtime_fingerprint(&self) -> Option<futures::future::BoxFuture<'static, Option<String>>> {
        self.asked.hit();
        let revision = self.revision.lock().unwrap().clone();
        Some(Box::pin(async move {
            tokio::task::yield_now().await;
            revision
        }))
    }
}

#[tokio::test]
async fn a_fingerprint_learnt_at_run_time_keys_the_cache() {
    let (_d, cache) = temp_cache();
    let revision = Arc::new(std::sync::Mutex::new(Some("r1".to_string())));
    let (asked, calls) = (Calls::default(), Calls::default());
    let build = |cache: Cache| {
        let mut g = Graph::new("runtime-fingerprint").cache(cache);
        let node = g.add_dyn(RemoteRevision {
            spec: daggr::NodeSpec {
                name: "remote".into(),
                kind: "test",
                identity: "double".into(),
                code_fingerprint: "static".into(),
                params: serde_json::Value::Null,
                inputs: vec![daggr::PortSpec::new::<u64>("x")],
                outputs: vec![daggr::PortSpec::new::<u64>("y")],
                config: Default::default(),
            },
            revision: revision.clone(),
            asked: asked.clone(),
            calls: calls.clone(),
        });
        g.set_constant_value(node, "x", daggr::Value::new(21u64).unwrap())
            .unwrap();
        g.build().unwrap()
    };
    let pipeline = build(cache.clone());
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(matches!(
        report.outcome("remote"),
        Some(Outcome::Computed { .. })
    ));
    // Same fingerprint: the workspace's own result, then (new pipeline) the shared cache.
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(matches!(
        report.outcome("remote"),
        Some(Outcome::Cached(CacheSource::Workspace))
    ));
    let report = build(cache.clone()).run(Scope::All).await.unwrap();
    assert!(matches!(
        report.outcome("remote"),
        Some(Outcome::Cached(CacheSource::Memory | CacheSource::Disk))
    ));
    assert_eq!(calls.get(), 1);
    // A new fingerprint is a new key, in the same pipeline and in a new one.
    *revision.lock().unwrap() = Some("r2".into());
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(matches!(
        report.outcome("remote"),
        Some(Outcome::Computed { .. })
    ));
    assert_eq!(calls.get(), 2);
    let report = build(cache.clone()).run(Scope::All).await.unwrap();
    assert!(matches!(
        report.outcome("remote"),
        Some(Outcome::Cached(CacheSource::Memory | CacheSource::Disk))
    ));
    // No answer keeps the spec's fingerprint: a key of its own, stored like any other.
    *revision.lock().unwrap() = None;
    let report = build(cache.clone()).run(Scope::All).await.unwrap();
    assert!(matches!(
        report.outcome("remote"),
        Some(Outcome::Computed { .. })
    ));
    let report = build(cache.clone()).run(Scope::All).await.unwrap();
    assert!(matches!(
        report.outcome("remote"),
        Some(Outcome::Cached(CacheSource::Memory | CacheSource::Disk))
    ));
    assert_eq!(calls.get(), 3);
    assert_eq!(asked.get(), 7);
}

// ---- node logs ----

/// The text of a result's log lines.
fn log_lines(result: &daggr::NodeResult) -> Vec<String> {
    result.logs.lines.iter().map(|l| l.line.clone()).collect()
}

/// `(node, line)` of every `NodeLog` event received so far.
fn logged(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::NodeLog { name, line, .. } = e {
            lines.push((name.to_string(), line));
        }
    }
    lines
}

#[tokio::test]
async fn node_log_lines_are_sent_as_events_and_kept_with_the_result() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("logs").cache(cache.clone());
    let out = g.add(
        FnNode::with_context("chatty", |ctx: daggr::NodeContext, n: u32| async move {
            ctx.log(format!("starting with n = {n}\n"));
            ctx.progress(Some(0.5), "halfway");
            ctx.log("done");
            Ok::<_, std::io::Error>(n + 1)
        }),
        (constant(1u32),),
    );
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    pipeline.run(Scope::All).await.unwrap();
    let expected = ["starting with n = 1", "progress 50%: halfway", "done"];
    let sent = logged(&mut events);
    assert_eq!(
        sent,
        expected.map(|l| ("chatty".to_string(), l.to_string())),
        "one event per line, in order, the trailing newline removed"
    );
    let result = pipeline.result(out).unwrap().unwrap();
    assert_eq!(log_lines(&result), expected);
    assert_eq!(result.logs.dropped, 0);
    assert!(result.logs.lines.iter().all(|l| l.unix_ms >= before));
    // Rerun with nothing changed: the same result, so the same log, and nothing new sent.
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!(log_lines(&pipeline.result(out).unwrap().unwrap()), expected);
    assert!(logged(&mut events).is_empty());
    // Another workspace gets the value from the cache: the node did not run, so no log.
    let other = pipeline.new_workspace();
    let report = other.run(Scope::All).await.unwrap();
    assert!(matches!(report.outcome("chatty"), Some(Outcome::Cached(_))));
    assert!(other.result(out).unwrap().unwrap().logs.is_empty());
}

#[tokio::test]
async fn retries_timeouts_and_the_final_error_are_written_to_the_node_log() {
    let (_d, cache) = temp_cache();
    let attempts = Calls::default();
    let mut g = Graph::new("retry-log").cache(cache);
    let a = attempts.clone();
    let flaky = g.add(
        FnNode::try_async("flaky", move || {
            let a = a.clone();
            async move {
                a.hit();
                match a.get() {
                    1 => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        Ok(0u64)
                    }
                    2 => Err("503 service unavailable"),
                    _ => Ok(7u64),
                }
            }
        })
        .timeout(Duration::from_millis(50))
        .retry(RetryPolicy::new(2, Duration::from_millis(5))),
        (),
    );
    g.add(
        FnNode::try_sync("broken", || Err::<u64, _>("disk full")),
        (),
    );
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    pipeline.run(Scope::All).await.unwrap();
    assert_eq!(
        log_lines(&pipeline.result(flaky).unwrap().unwrap()),
        [
            "attempt 1 of 3 timed out after 50ms",
            "attempt 1 of 3 failed, retrying in 5ms: node `flaky` timed out after 50ms",
            "attempt 2 of 3 failed, retrying in 10ms: node `flaky` failed: 503 service unavailable",
        ]
    );
    // A failure leaves no result: its log is in the events, ending with the error.
    let broken: Vec<String> = logged(&mut events)
        .into_iter()
        .filter(|(node, _)| node == "broken")
        .map(|(_, line)| line)
        .collect();
    assert_eq!(broken, ["failed: node `broken` failed: disk full"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_node_is_written_to_its_log() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("cancel-log").cache(cache);
    g.add(
        FnNode::with_context("slow", |ctx: daggr::NodeContext| async move {
            ctx.log("working");
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>(1u64)
        }),
        (),
    );
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    let handle = pipeline.spawn(Scope::All);
    loop {
        if let Ok(Event::NodeLog { line, .. }) = events.recv().await {
            if line == "working" {
                break;
            }
        }
    }
    handle.cancel();
    assert!(handle.wait().await.unwrap().cancelled);
    assert_eq!(logged(&mut events), [("slow".into(), "cancelled".into())]);
}

/// Records what a workspace's observer is told.
#[derive(Default)]
struct Told {
    results: std::sync::Mutex<Vec<String>>,
    failures: std::sync::Mutex<Vec<(String, daggr::NodeFailure)>>,
}

impl daggr::ResultObserver for Told {
    fn on_result(&self, _node: usize, name: &str, _result: &daggr::NodeResult) {
        self.results.lock().unwrap().push(name.to_string());
    }
    fn on_failure(&self, _node: usize, name: &str, failure: &daggr::NodeFailure) {
        self.failures
            .lock()
            .unwrap()
            .push((name.to_string(), failure.clone()));
    }
}

impl Told {
    fn take_failures(&self) -> Vec<(String, daggr::NodeFailure)> {
        std::mem::take(&mut self.failures.lock().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_are_told_of_failed_and_cancelled_nodes_but_not_skipped_ones() {
    let (_d, cache) = temp_cache();
    let broken = Arc::new(AtomicBool::new(false));
    let mut g = Graph::new("told").cache(cache.clone());
    let x = g.input("x", 1u64);
    let b = broken.clone();
    let flaky = g.add(
        FnNode::with_context("flaky", move |ctx: daggr::NodeContext, x: u64| {
            let broken = b.load(Ordering::SeqCst);
            async move {
                ctx.log("trying");
                if broken {
                    Err(std::io::Error::other("503 service unavailable"))
                } else {
                    Ok(x)
                }
            }
        })
        .cache_policy(CachePolicy::AlwaysRecompute)
        .retry(RetryPolicy::new(1, Duration::from_millis(1))),
        (x,),
    );
    let after = g.add(FnNode::sync("after", |x: u64| x + 1), (flaky,));
    g.add(
        FnNode::with_context("slow", |ctx: daggr::NodeContext| async move {
            ctx.log("working");
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>(1u64)
        }),
        (),
    );
    let pipeline = g.build().unwrap();
    let told = Arc::new(Told::default());
    pipeline.add_observer(told.clone());
    pipeline.run(Scope::to(after)).await.unwrap();
    let good = pipeline.result(flaky).unwrap().unwrap();
    let entries = cache.stats().unwrap().entries;

    // A failure: told once, with its attempts, inputs and log; skipped `after` is not told.
    broken.store(true, Ordering::SeqCst);
    let report = pipeline.run(Scope::to(after)).await.unwrap();
    assert_eq!(report.failed(), ["flaky"]);
    assert_eq!(report.skipped(), ["after"]);
    let failures = told.take_failures();
    assert_eq!(failures.len(), 1, "skipped nodes are not failures");
    let (name, failure) = &failures[0];
    assert_eq!(name, "flaky");
    assert_eq!(failure.run, 2);
    assert!(!failure.cancelled);
    assert_eq!(failure.attempts, 2);
    assert_eq!(
        failure.error,
        "node `flaky` failed: 503 service unavailable"
    );
    assert!(failure.elapsed > Duration::ZERO);
    assert_eq!(
        failure.key,
        Some(good.key),
        "the same inputs as the good result"
    );
    assert_eq!(failure.inputs, good.inputs);
    let lines: Vec<&str> = failure.logs.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "trying",
            "attempt 1 of 2 failed, retrying in 1ms: node `flaky` failed: 503 service unavailable",
            "trying",
            "failed: node `flaky` failed: 503 service unavailable",
        ]
    );
    // Nothing else changed: the last good result is current, nothing is stale or cached.
    let current = pipeline.result(flaky).unwrap().unwrap();
    assert_eq!((current.run, current.key), (1, good.key));
    assert_eq!(pipeline.stale_nodes(), ["slow"], "it never ran");
    assert_eq!(*pipeline.value(&after).unwrap(), 2);
    cache.flush();
    assert_eq!(cache.stats().unwrap().entries, entries);
    let results = told.results.lock().unwrap().clone();
    assert_eq!(
        results.iter().filter(|n| *n == "flaky").count(),
        1,
        "a failure is not a result: {results:?}"
    );

    // A node that fails before it runs (no upstream value) is told without inputs.
    let fresh = pipeline.new_workspace();
    let told_fresh = Arc::new(Told::default());
    fresh.add_observer(told_fresh.clone());
    fresh.run(Scope::only(after)).await.unwrap();
    let failures = told_fresh.take_failures();
    let (name, failure) = &failures[0];
    assert_eq!(name, "after");
    assert!(failure.error.contains("has no value"), "{}", failure.error);
    assert_eq!((failure.attempts, failure.elapsed), (0, Duration::ZERO));
    assert!(failure.key.is_none() && failure.inputs.is_empty() && failure.logs.is_empty());

    // A cancelled node is told as cancelled, with what it logged.
    let mut events = pipeline.subscribe();
    let handle = pipeline.spawn(Scope::only("slow"));
    loop {
        if let Ok(Event::NodeLog { line, .. }) = events.recv().await {
            if line == "working" {
                break;
            }
        }
    }
    handle.cancel();
    assert!(handle.wait().await.unwrap().cancelled);
    let failures = told.take_failures();
    let (name, failure) = &failures[0];
    assert_eq!(name, "slow");
    assert!(failure.cancelled);
    assert_eq!(failure.error, "node `slow` was cancelled");
    assert_eq!(failure.attempts, 1);
    let lines: Vec<&str> = failure.logs.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(lines, ["working", "cancelled"]);
}

#[tokio::test]
async fn a_failure_event_reports_the_nodes_own_time_not_the_runs() {
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("failure-time").cache(cache);
    let slow = g.add(
        FnNode::from_async("slow", |x: u64| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            x
        }),
        (constant(1u64),),
    );
    g.add(
        FnNode::try_sync("fails", |x: u64| -> Result<u64, std::io::Error> {
            Err(std::io::Error::other(format!("no {x}")))
        }),
        (slow,),
    );
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(report.failed(), ["fails"]);
    let mut failed = None;
    while let Ok(e) = events.try_recv() {
        if let Event::NodeFailed { elapsed, .. } = e {
            failed = Some(elapsed);
        }
    }
    // The run took 300 ms before the node started; the node itself failed at once.
    let elapsed = failed.expect("a NodeFailed event");
    assert!(elapsed < Duration::from_millis(250), "{elapsed:?}");
    assert!(report.elapsed >= Duration::from_millis(300));
}

/// A `tracing` subscriber that keeps every span's name, parent and fields (as text), so a
/// test can read what a user's subscriber would be shown.
mod spans {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    #[derive(Clone, Debug)]
    pub struct Span {
        pub id: u64,
        pub name: &'static str,
        pub parent: Option<u64>,
        pub fields: HashMap<String, String>,
    }

    impl Span {
        pub fn field(&self, name: &str) -> Option<&str> {
            self.fields.get(name).map(String::as_str)
        }
    }

    #[derive(Clone, Default)]
    pub struct Collector(Arc<Mutex<Vec<Span>>>);

    impl Collector {
        /// The spans so far, in creation order (a span's id is its position, from 1).
        pub fn spans(&self) -> Vec<Span> {
            self.0.lock().unwrap().clone()
        }
    }

    struct Fields<'a>(&'a mut HashMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_string(), value.to_string());
        }
        // Display fields (`%name`) arrive here too, and print as themselves.
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }

    impl Subscriber for Collector {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, attrs: &Attributes<'_>) -> Id {
            let mut spans = self.0.lock().unwrap();
            let mut span = Span {
                id: spans.len() as u64 + 1,
                name: attrs.metadata().name(),
                parent: attrs.parent().map(Id::into_u64),
                fields: HashMap::new(),
            };
            attrs.record(&mut Fields(&mut span.fields));
            spans.push(span);
            Id::from_u64(spans.len() as u64)
        }
        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut spans = self.0.lock().unwrap();
            let span = &mut spans[span.into_u64() as usize - 1];
            values.record(&mut Fields(&mut span.fields));
        }
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

/// The node spans of the run span `run`, by node name.
fn node_spans(all: &[spans::Span], run: &spans::Span) -> Vec<(String, spans::Span)> {
    all.iter()
        .filter(|s| s.name == "node" && s.parent == Some(run.id))
        .map(|s| (s.field("node").unwrap_or_default().to_string(), s.clone()))
        .collect()
}

// A current-thread runtime: the subscriber is this thread's default, and the executor
// creates its spans on the thread running the run.
#[tokio::test]
async fn runs_and_nodes_are_traced_with_their_cache_outcome() {
    let collector = spans::Collector::default();
    let _default = tracing::subscriber::set_default(collector.clone());
    let (_d, cache) = temp_cache();
    let mut g = Graph::new("traced").cache(cache);
    let x = g.input("x", 2u64);
    let tries = Calls::default();
    let t = tries.clone();
    let flaky = g.add(
        FnNode::try_sync("flaky", move |x: u64| {
            t.hit();
            if t.get() == 1 {
                Err(std::io::Error::other("first try fails"))
            } else {
                Ok(x + 1)
            }
        })
        .retry(RetryPolicy::new(1, Duration::from_millis(1))),
        (x,),
    );
    let double = g.add(FnNode::sync("double", |x: u64| x * 2), (flaky,));
    let broken = g.add(
        FnNode::try_sync("broken", |_: u64| -> Result<u64, std::io::Error> {
            Err(std::io::Error::other("disk on fire"))
        }),
        (x,),
    );
    g.add(FnNode::sync("after_broken", |x: u64| x), (broken,));
    let pipeline = g.build().unwrap();

    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&double).unwrap(), 6);
    let all = collector.spans();
    let runs: Vec<_> = all.iter().filter(|s| s.name == "run").collect();
    assert_eq!(runs.len(), 1, "{all:#?}");
    let run = runs[0];
    assert_eq!(run.field("pipeline"), Some("traced"));
    assert_eq!(run.field("run"), Some("1"));
    assert_eq!(run.field("scope"), Some("all"));
    assert_eq!(run.field("computed"), Some("3"));
    assert_eq!(run.field("failed"), Some("1"));
    assert_eq!(run.field("skipped"), Some("1"));
    assert_eq!(run.field("cancelled"), Some("false"));
    let nodes = node_spans(&all, run);
    let names: Vec<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 5, "one span per node: {names:?}");
    let node = |name: &str| &nodes.iter().find(|(n, _)| n == name).unwrap().1;
    for name in ["x", "flaky", "double", "broken", "after_broken"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert_eq!(node("x").field("outcome"), Some("computed"));
    assert_eq!(node("flaky").field("outcome"), Some("computed"));
    assert_eq!(node("flaky").field("attempt"), Some("2"));
    assert_eq!(node("double").field("attempt"), Some("1"));
    assert_eq!(node("broken").field("outcome"), Some("failed"));
    assert!(node("broken")
        .field("error")
        .is_some_and(|e| e.contains("disk on fire")));
    assert_eq!(node("after_broken").field("outcome"), Some("skipped"));
    assert_eq!(node("after_broken").field("attempt"), None);

    // A rerun finds the workspace's own results; another workspace, the cache's memory.
    pipeline.run(Scope::to(double)).await.unwrap();
    pipeline.new_workspace().run(Scope::All).await.unwrap();
    assert_eq!(tries.get(), 2);
    let all = collector.spans();
    let runs: Vec<_> = all.iter().filter(|s| s.name == "run").collect();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[1].field("scope"), Some("to double"));
    assert_eq!(runs[1].field("cached"), Some("3"));
    let rerun = node_spans(&all, runs[1]);
    assert_eq!(rerun.len(), 3);
    for (name, span) in &rerun {
        assert_eq!(span.field("outcome"), Some("workspace"), "{name}");
        assert_eq!(span.field("attempt"), None, "{name} did not run");
    }
    let fresh = node_spans(&all, runs[2]);
    let double = &fresh.iter().find(|(n, _)| n == "double").unwrap().1;
    assert_eq!(double.field("outcome"), Some("memory"));
}

/// What the `watched` node of [`watched_run`] saw: `finished`, or `cancelled` (its
/// cancellation token fired, seen in its body or when its future was dropped).
#[derive(Clone, Default)]
struct Seen(Arc<std::sync::Mutex<Vec<&'static str>>>);

impl Seen {
    fn push(&self, what: &'static str) {
        self.0.lock().unwrap().push(what);
    }
    fn get(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }
    /// Waits (5 s at most) until the node saw something.
    async fn wait(&self) -> Vec<&'static str> {
        for _ in 0..500 {
            if !self.get().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.get()
    }
}

/// Records on drop what its node saw, unless the node ended by itself.
struct DropWatch {
    seen: Seen,
    token: tokio_util::sync::CancellationToken,
    done: bool,
}

impl Drop for DropWatch {
    fn drop(&mut self) {
        if !self.done {
            self.seen.push(if self.token.is_cancelled() {
                "cancelled"
            } else {
                "dropped uncancelled"
            });
        }
    }
}

/// A pipeline of one node, `watched`, that takes 800 ms unless cancelled, and a spawned
/// run of it whose node has started.
async fn watched_run() -> (daggr::Pipeline, daggr::RunHandle, Seen, tempfile::TempDir) {
    let (dir, cache) = temp_cache();
    let mut g = Graph::new("handle").cache(cache);
    let seen = Seen::default();
    let s = seen.clone();
    g.add(
        FnNode::with_context("watched", move |ctx: daggr::NodeContext| {
            let seen = s.clone();
            async move {
                let mut watch = DropWatch {
                    seen: seen.clone(),
                    token: ctx.cancellation_token(),
                    done: false,
                };
                tokio::select! {
                    _ = ctx.cancelled() => {
                        watch.done = true;
                        seen.push("cancelled");
                        Err(std::io::Error::other("cancelled"))
                    }
                    _ = tokio::time::sleep(Duration::from_millis(800)) => {
                        watch.done = true;
                        seen.push("finished");
                        Ok(7u64)
                    }
                }
            }
        }),
        (),
    );
    let pipeline = g.build().unwrap();
    let mut events = pipeline.subscribe();
    let handle = pipeline.spawn(Scope::All);
    loop {
        if let Ok(Event::NodeStarted { name, .. }) = events.recv().await {
            if &*name == "watched" {
                break;
            }
        }
    }
    (pipeline, handle, seen, dir)
}

/// Issue 12: a run lives as long as its handle, as a `run` lives as long as its future.
/// Dropping the handle cancels the run (the node sees its token fire, and never
/// finishes); dropping the future of `wait` (a timeout around it) does too; `detach` lets
/// the run go on to its end, its result adopted by the workspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_run_handle_cancels_the_run_and_detach_lets_it_run_on() {
    // Dropped: cancelled.
    let (_pipeline, handle, seen, _d) = watched_run().await;
    drop(handle);
    assert_eq!(
        seen.wait().await,
        ["cancelled"],
        "the dropped run was not cancelled"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        seen.get(),
        ["cancelled"],
        "the node ran on after its handle was dropped"
    );

    // A wait given up on (its future dropped): cancelled too.
    let (_pipeline, handle, seen, _d) = watched_run().await;
    assert!(
        tokio::time::timeout(Duration::from_millis(100), handle.wait())
            .await
            .is_err()
    );
    assert_eq!(seen.wait().await, ["cancelled"]);

    // Detached: it runs to its end and its result is the workspace's.
    let (pipeline, handle, seen, _d) = watched_run().await;
    handle.detach();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(seen.get().is_empty(), "{:?}", seen.get());
    assert_eq!(seen.wait().await, ["finished"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let result = pipeline
        .result("watched")
        .unwrap()
        .expect("the detached run adopted its result");
    assert_eq!(result.outputs[0].downcast_ref::<u64>(), Some(&7));

    // Waited for: the report comes, and nothing is cancelled after it.
    let (_pipeline, handle, seen, _d) = watched_run().await;
    let report = handle.wait().await.unwrap();
    assert!(report.is_success() && !report.cancelled);
    assert_eq!(seen.get(), ["finished"]);
}
