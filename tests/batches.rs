//! Batches (`Pipeline::run_batch`, `cargo daggr run --batch`): a pipeline over many input
//! sets, each an item with a row of its own in the sheet database.
//!
//! - On SQLite, in this process: every item done, a failing item reported with its error,
//!   a second run that runs nothing done, and a run stopped mid-way (its task aborted: no
//!   clean-up) that a new run finishes without running a done item again (node calls are
//!   counted per item).
//! - Claims on both backends: a claim taken over after its lease ended writes nothing.
//! - On PostgreSQL and S3 (a real server and a real moto, both started by the harness),
//!   three worker processes (the `batch_worker` example started as `cargo daggr run
//!   --batch` starts it once built, through the batch handshake; each with its own working
//!   and cache directory, nothing shared but the database and the bucket) share a batch
//!   while one is SIGKILLed mid-item and another is stopped for longer than its lease:
//!   every item is done exactly once, none is lost.
//! - Items per second with 1, 2 and 3 workers (printed; not asserted).
//! - Limits: an item whose every worker stopped before it finished is given up after its
//!   claims (both backends); an item running past `item_timeout` fails, its run cancelled.
//! - `cargo daggr run --batch` itself: its updates and summary, its exit status, a rerun,
//!   `--item-timeout`.

#[path = "common/cargo_daggr.rs"]
mod cargo_daggr_bin;
#[path = "common/postgres_server.rs"]
mod postgres_server;
#[path = "common/s3_server.rs"]
mod s3_server;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daggr::sheet::batch::{BatchEvent, BatchItem, BatchOptions, BatchUpdate, ItemStatus};
use daggr::sheet::SheetStore;
use daggr::{Cache, FnNode, Graph, Pipeline};
use serde_json::{json, Map, Value as Json};

use cargo_daggr_bin::{test_target_dir, workspace};
use s3_server::S3Server;

/// Node calls per `n`.
type Calls = Arc<Mutex<HashMap<u64, usize>>>;

/// `n → square`, counting its calls per `n`, sleeping `sleep` in each, failing for 13.
fn squares(cache: Cache, calls: Calls, sleep: Duration) -> Pipeline {
    let mut g = Graph::new("squares").cache(cache);
    let n = g.input("n", 0u64);
    let square = g.add(
        FnNode::try_sync("square", move |n: u64| {
            *calls.lock().unwrap().entry(n).or_default() += 1;
            std::thread::sleep(sleep);
            if n == 13 {
                return Err("13 is unlucky");
            }
            Ok(n * n)
        }),
        (n,),
    );
    g.name_output("square", &square);
    g.build().unwrap()
}

fn set(value: Json) -> Map<String, Json> {
    value.as_object().unwrap().clone()
}

/// Input sets `{"n": n}` for each `n`.
fn sets(ns: impl IntoIterator<Item = u64>) -> Vec<Map<String, Json>> {
    ns.into_iter().map(|n| set(json!({ "n": n }))).collect()
}

fn calls_of(calls: &Calls, n: u64) -> usize {
    calls.lock().unwrap().get(&n).copied().unwrap_or(0)
}

/// The updates a run reports, collected.
fn collect(updates: &Arc<Mutex<Vec<BatchUpdate>>>) -> impl Fn(&BatchUpdate) + Send + Sync {
    let updates = updates.clone();
    move |u: &BatchUpdate| updates.lock().unwrap().push(u.clone())
}

fn done_set(items: &[BatchItem]) -> BTreeSet<u64> {
    items
        .iter()
        .filter(|i| i.status == ItemStatus::Done)
        .map(|i| i.item)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_is_done_a_failing_one_is_reported_and_a_rerun_runs_nothing_done() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let pipeline = squares(
        Cache::open(dir.path().join("cache")).unwrap(),
        calls.clone(),
        Duration::from_millis(5),
    );
    let store = SheetStore::open(dir.path().join("sheets.db")).unwrap();
    // Items 0..=19 are n = 0..=19 (13 fails); item 20 names an input the pipeline lacks.
    let mut inputs = sets(0..20);
    inputs.push(set(json!({ "nn": 1 })));
    let batch = store.batch(&pipeline, "squares", &inputs).unwrap();
    assert_eq!(batch.len(), 21);

    let updates = Arc::new(Mutex::new(Vec::new()));
    let options = BatchOptions::default()
        .concurrency(3)
        .worker("w")
        .on_update(collect(&updates));
    let summary = pipeline.run_batch(&batch, options).await.unwrap();
    assert!(!summary.is_success());
    assert_eq!(summary.total, 21);
    assert_eq!(summary.done, 19);
    assert_eq!(summary.done_here.len(), 19);
    assert_eq!((summary.skipped, summary.remaining), (0, 0));
    assert!(summary.lost.is_empty());
    let failed: BTreeMap<u64, String> = summary
        .failed
        .iter()
        .map(|f| (f.item, f.error.clone()))
        .collect();
    assert_eq!(failed.keys().copied().collect::<Vec<_>>(), [13, 20]);
    assert!(
        failed[&13].contains("square") && failed[&13].contains("13 is unlucky"),
        "{failed:?}"
    );
    assert!(
        failed[&20].contains("unknown input `nn`; did you mean `n`?"),
        "the workflow call path's own input check: {failed:?}"
    );
    assert!(summary
        .failed
        .iter()
        .all(|f| f.worker.as_deref() == Some("w")));

    // Each item's row: done ones hold their outputs, failed ones their errors.
    let items = batch.items().unwrap();
    for item in &items {
        match item.item {
            13 | 20 => {
                assert_eq!(item.status, ItemStatus::Failed, "{item:?}");
                assert!(item.outputs.is_none() && item.error.is_some());
            }
            n => {
                assert_eq!(item.status, ItemStatus::Done, "{item:?}");
                assert_eq!(item.outputs.as_ref().unwrap()["square"], json!(n * n));
                assert_eq!((item.worker.as_deref(), item.attempts), (Some("w"), 1));
                assert!(item.error.is_none() && item.elapsed_ms.is_some());
            }
        }
    }
    for n in 0..20 {
        assert_eq!(calls_of(&calls, n), 1, "n = {n}");
    }

    // Progress: each item claimed once and ended once, with running counts.
    let updates = std::mem::take(&mut *updates.lock().unwrap());
    let count = |f: &dyn Fn(&BatchEvent) -> bool| updates.iter().filter(|u| f(&u.event)).count();
    assert_eq!(count(&|e| matches!(e, BatchEvent::Claimed { .. })), 21);
    assert_eq!(count(&|e| matches!(e, BatchEvent::Done { .. })), 19);
    assert_eq!(count(&|e| matches!(e, BatchEvent::Failed { .. })), 2);
    let last = updates.last().unwrap();
    assert_eq!((last.done_here + last.failed_here, last.total), (21, 21));
    let json_line = serde_json::to_value(&updates[0]).unwrap();
    assert_eq!(json_line["event"], "claimed", "{json_line}");
    assert_eq!(json_line["worker"], "w");

    // Again, on an empty cache (so an item run again would call its node): the done items
    // are skipped; the failed ones are tried again, and fail again.
    let again = squares(
        Cache::open(dir.path().join("cache-2")).unwrap(),
        calls.clone(),
        Duration::from_millis(5),
    );
    let summary = again
        .run_batch(&batch, BatchOptions::default().worker("w"))
        .await
        .unwrap();
    assert_eq!((summary.skipped, summary.done), (19, 19));
    assert!(summary.done_here.is_empty());
    assert_eq!(summary.failed.len(), 2);
    assert_eq!(calls_of(&calls, 13), 2, "tried again");
    for n in (0..20).filter(|n| *n != 13) {
        assert_eq!(
            calls_of(&calls, n),
            1,
            "n = {n} is done and never runs again"
        );
    }
    let attempts: Vec<u32> = batch.items().unwrap().iter().map(|i| i.attempts).collect();
    assert_eq!(attempts[13], 2);
    assert_eq!(attempts[12], 1);

    // Without retrying failures: nothing at all runs.
    let summary = again
        .run_batch(&batch, BatchOptions::default().retry_failed(false))
        .await
        .unwrap();
    assert_eq!(summary.failed.len(), 2);
    assert_eq!(calls_of(&calls, 13), 2);

    // The same name with other input sets is refused; a batch of another pipeline too.
    let err = store
        .batch(&pipeline, "squares", &sets(0..3))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch `squares`: it has 21 items, and 3 input sets are given"),
        "{err}"
    );
    let mut other = sets(0..20);
    other.push(set(json!({ "n": 99 })));
    let err = store
        .batch(&pipeline, "squares", &other)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("item 20 is stored as {\"nn\":1}, and given as {\"n\":99}"),
        "{err}"
    );
    let err = store.open_batch("squares", "squares-2").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown batch `squares-2`; did you mean `squares`?"
    );
    let mut g = Graph::new("other").cache(Cache::temporary().unwrap());
    g.input("n", 0u64);
    let err = g
        .build()
        .unwrap()
        .run_batch(&batch, BatchOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("it belongs to pipeline `squares`, not to `other`"),
        "{err}"
    );
    assert_eq!(store.batches("squares").unwrap(), ["squares"]);
    store.delete_batch("squares", "squares").unwrap();
    assert!(store.batches("squares").unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_mid_way_is_resumed_and_no_done_item_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let store = SheetStore::open(dir.path().join("sheets.db")).unwrap();
    let first = squares(
        Cache::open(dir.path().join("cache")).unwrap(),
        calls.clone(),
        Duration::from_millis(40),
    );
    let total = 24;
    let batch = store.batch(&first, "resume", &sets(100..124)).unwrap();
    let lease = Duration::from_millis(600);
    let options = BatchOptions::default()
        .concurrency(2)
        .worker("w")
        .lease(lease);

    // The run dies mid-way: its task is aborted, nothing cleans up after it.
    let task = {
        let (pipeline, batch, options) = (first.clone(), batch.clone(), options.clone());
        tokio::spawn(async move { pipeline.run_batch(&batch, options).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while batch.counts().unwrap().done < 8 {
        assert!(Instant::now() < deadline, "the first run did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // What the dead run had started on the blocking pool (a node call, a database call)
    // ends on its own: look once it has.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let at_crash = batch.items().unwrap();
    let done_before = done_set(&at_crash);
    let claimed_at_crash: BTreeSet<u64> = at_crash
        .iter()
        .filter(|i| i.status == ItemStatus::Claimed)
        .map(|i| i.item)
        .collect();
    assert!(done_before.len() >= 8 && done_before.len() < total);
    let calls_at_crash = calls.lock().unwrap().clone();

    // A new run (a new process would do the same) on an empty cache: an item run again
    // would call its node.
    let second = squares(
        Cache::open(dir.path().join("cache-2")).unwrap(),
        calls.clone(),
        Duration::from_millis(40),
    );
    let updates = Arc::new(Mutex::new(Vec::new()));
    let summary = second
        .run_batch(&batch, options.on_update(collect(&updates)))
        .await
        .unwrap();
    assert!(summary.is_success(), "{summary:?}");
    assert_eq!(summary.skipped as usize, done_before.len());
    let done_now: BTreeSet<u64> = summary.done_here.iter().copied().collect();
    assert!(done_now.is_disjoint(&done_before), "{done_now:?}");
    assert_eq!(done_now.len() + done_before.len(), total);
    for item in &done_before {
        let n = 100 + item;
        assert_eq!(
            calls_of(&calls, n),
            calls_at_crash[&n],
            "item {item} was done before the crash and ran again"
        );
        assert_eq!(calls_of(&calls, n), 1);
    }
    for item in &done_now {
        assert!(calls_of(&calls, 100 + item) >= 1);
    }
    // The claims the dead run held were taken over once their lease ended.
    let updates = updates.lock().unwrap();
    for item in &claimed_at_crash {
        assert!(
            updates.iter().any(|u| matches!(
                &u.event,
                BatchEvent::Claimed { item: i, reclaimed_from: Some(from), attempt: 2 }
                    if i == item && from == "w"
            )),
            "item {item}, claimed when the run died, was not taken over"
        );
    }
    let items = batch.items().unwrap();
    assert!(items.iter().all(|i| i.status == ItemStatus::Done));
    for item in items {
        let n = 100 + item.item;
        assert_eq!(item.outputs.unwrap()["square"], json!(n * n));
    }
}

/// The claim rules on `store`: a claim whose lease ended and that another worker took over
/// can neither renew nor write; one whose lease ended that nobody took can.
fn claims_are_exact(store: &SheetStore) {
    let pipeline = squares(
        Cache::temporary().unwrap(),
        Calls::default(),
        Duration::ZERO,
    );
    let batch = store.batch(&pipeline, "claims", &sets([1, 2, 3])).unwrap();
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(30);
    let a = batch.claim("a", short).unwrap().unwrap();
    assert_eq!((a.item(), a.attempt(), a.reclaimed_from()), (0, 1, None));
    let b1 = batch.claim("b", long).unwrap().unwrap();
    assert_eq!(b1.item(), 1, "item 0 is held");
    let c = batch.claim("c", short).unwrap().unwrap();
    assert_eq!(c.item(), 2);
    assert!(batch.claim("d", long).unwrap().is_none(), "nothing is free");
    assert!(a.renew(short).unwrap(), "a's claim is a's");

    std::thread::sleep(Duration::from_millis(350));
    // a's lease ended: b takes item 0 over; c's ended too, but nobody took it.
    let b0 = batch.claim("b", long).unwrap().unwrap();
    assert_eq!((b0.item(), b0.attempt()), (0, 2));
    assert_eq!(b0.reclaimed_from(), Some("a"));
    assert!(!a.renew(short).unwrap());
    assert!(!a.finish(&set(json!({ "square": 999 })), short).unwrap());
    assert!(!a.fail("late", short).unwrap());
    assert!(b0.finish(&set(json!({ "square": 1 })), short).unwrap());
    assert!(
        !b0.finish(&set(json!({ "square": 2 })), short).unwrap(),
        "an item is done once"
    );
    assert!(c.finish(&set(json!({ "square": 9 })), short).unwrap());
    // The next claim skips c's item (done) and finds b's held; nothing is free.
    let d = batch.claim("d", long).unwrap();
    assert!(d.is_none());
    assert!(b1.fail("b gave up", short).unwrap());

    let items = batch.items().unwrap();
    assert_eq!(items[0].status, ItemStatus::Done);
    assert_eq!(items[0].worker.as_deref(), Some("b"));
    assert_eq!(items[0].attempts, 2);
    assert_eq!(items[0].outputs.as_ref().unwrap()["square"], 1);
    assert_eq!(items[1].status, ItemStatus::Failed);
    assert_eq!(items[1].error.as_deref(), Some("b gave up"));
    assert_eq!(items[2].outputs.as_ref().unwrap()["square"], 9);
    let counts = batch.counts().unwrap();
    assert_eq!(
        (counts.done, counts.failed, counts.pending, counts.claimed),
        (2, 1, 0, 0)
    );
    // Pages, read as such from the database.
    let page = |status, offset, limit| -> Vec<u64> {
        let items = batch.items_page(status, offset, limit).unwrap();
        items.iter().map(|i| i.item).collect()
    };
    assert_eq!(page(None, 1, 1), vec![1]);
    assert_eq!(page(None, 0, 10), vec![0, 1, 2]);
    assert_eq!(page(Some(ItemStatus::Done), 0, 10), vec![0, 2]);
    assert_eq!(page(Some(ItemStatus::Done), 1, 10), vec![2]);
    assert_eq!(page(Some(ItemStatus::Failed), 0, 10), vec![1]);
    assert!(page(Some(ItemStatus::Pending), 0, 10).is_empty());
    assert!(page(None, 3, 10).is_empty());

    assert_eq!(batch.retry_failed().unwrap(), 1);
    assert_eq!(batch.claim("e", long).unwrap().unwrap().item(), 1);
}

#[test]
fn a_claim_taken_over_after_its_lease_writes_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    claims_are_exact(&SheetStore::open(dir.path().join("sheets.db")).unwrap());
}

#[test]
fn a_claim_taken_over_after_its_lease_writes_nothing_on_postgres() {
    let server = postgres_server::shared();
    let url = server.url(&server.create_database());
    claims_are_exact(&SheetStore::open_url(&url).unwrap());
}

/// An item whose every worker stops before it finishes (it crashes or hangs them) is
/// given up after its claims, not handed from worker to worker for ever.
fn an_item_that_stops_its_workers_is_given_up(store: &SheetStore) {
    let pipeline = squares(
        Cache::temporary().unwrap(),
        Calls::default(),
        Duration::ZERO,
    );
    let batch = store.batch(&pipeline, "poison", &sets([1, 2])).unwrap();
    let short = Duration::from_millis(150);
    let pause = Duration::from_millis(250);
    for (claims, worker) in ["a", "b", "c"].iter().enumerate() {
        let claim = batch.claim(worker, short).unwrap().unwrap();
        assert_eq!((claim.item(), claim.attempt()), (0, claims as u32 + 1));
        std::thread::sleep(pause);
    }
    // Three claims ended with their leases: the next claimer fails item 0 and takes item 1.
    let next = batch.claim("d", Duration::from_secs(30)).unwrap().unwrap();
    assert_eq!(next.item(), 1);
    let items = batch.items().unwrap();
    assert_eq!(items[0].status, ItemStatus::Failed);
    let error = items[0].error.as_deref().unwrap();
    assert!(
        error.contains("given up after 3 claims") && error.contains("the last: c"),
        "{error}"
    );
    // A run with `retry_failed` gives it one more claim.
    assert_eq!(batch.retry_failed().unwrap(), 1);
    let again = batch.claim("e", short).unwrap().unwrap();
    assert_eq!((again.item(), again.attempt()), (0, 4));
}

#[test]
fn an_item_that_stops_its_workers_is_given_up_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    an_item_that_stops_its_workers_is_given_up(
        &SheetStore::open(dir.path().join("sheets.db")).unwrap(),
    );
}

#[test]
fn an_item_that_stops_its_workers_is_given_up_on_postgres() {
    let server = postgres_server::shared();
    let url = server.url(&server.create_database());
    an_item_that_stops_its_workers_is_given_up(&SheetStore::open_url(&url).unwrap());
}

/// `run_batch` reports an item it gave up (`max_claims`), and fails an item that runs past
/// `item_timeout` (its run cancelled) while the others are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_gives_up_an_abandoned_item_and_times_out_a_slow_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = SheetStore::open(dir.path().join("sheets.db")).unwrap();
    let calls = Calls::default();
    let mut g = Graph::new("slow").cache(Cache::open(dir.path().join("cache")).unwrap());
    let n = g.input("n", 0u64);
    let c = calls.clone();
    let out = g.add(
        FnNode::from_async("wait", move |n: u64| {
            *c.lock().unwrap().entry(n).or_default() += 1;
            async move {
                // Item 2 takes far longer than the timeout.
                let ms = if n == 2 { 30_000 } else { 10 };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                n
            }
        }),
        (n,),
    );
    g.name_output("n", &out);
    let pipeline = g.build().unwrap();
    let batch = store
        .batch(&pipeline, "mixed", &sets([0, 1, 2, 3]))
        .unwrap();
    // A worker claimed item 0 and died: its lease ends, and one claim is all it gets.
    let dead = batch
        .claim("dead", Duration::from_millis(100))
        .unwrap()
        .unwrap();
    assert_eq!(dead.item(), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let updates = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let summary = pipeline
        .run_batch(
            &batch,
            BatchOptions::default()
                .worker("w")
                .max_claims(1)
                .item_timeout(Duration::from_millis(500))
                .on_update(collect(&updates)),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the slow item was cancelled, not waited for"
    );
    let given_up: Vec<(u64, u32, Option<String>)> = updates
        .lock()
        .unwrap()
        .iter()
        .filter_map(|u| match &u.event {
            BatchEvent::GivenUp {
                item,
                claims,
                last_worker,
            } => Some((*item, *claims, last_worker.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(given_up, vec![(0, 1, Some("dead".to_string()))]);
    assert_eq!(summary.done, 2, "{summary:?}");
    let failed: BTreeMap<u64, String> = summary
        .failed
        .iter()
        .map(|f| (f.item, f.error.clone()))
        .collect();
    assert_eq!(failed.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
    assert!(failed[&0].contains("given up after 1 claims"), "{failed:?}");
    assert!(failed[&2].contains("timed out"), "{failed:?}");
    assert_eq!(
        calls_of(&calls, 0),
        0,
        "the abandoned item did not run again"
    );
    assert_eq!(calls_of(&calls, 2), 1);
}

// ---- Worker processes ----

/// The process tests take turns: their figures and their timing are their own.
static PROCESSES: Mutex<()> = Mutex::new(());

/// The worker program, built once per test process into the CLI suites' build directory
/// (the same build `cargo daggr run --batch -p daggr-tests --example batch_worker` uses).
fn worker_exe() -> &'static Path {
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args([
                "build",
                "-q",
                "-p",
                "daggr-tests",
                "--example",
                "batch_worker",
            ])
            .arg("--manifest-path")
            .arg(workspace().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(test_target_dir())
            .status()
            .unwrap();
        assert!(status.success(), "building the batch_worker example failed");
        test_target_dir().join("debug/examples/batch_worker")
    })
}

/// Writes a JSON Lines file of input sets `{"n", "sleep_ms"}` into `dir`.
fn inputs_file(
    dir: &Path,
    name: &str,
    ns: impl IntoIterator<Item = u64>,
    sleep_ms: u64,
) -> PathBuf {
    let path = dir.join(format!("{name}.jsonl"));
    let lines: Vec<String> = ns
        .into_iter()
        .map(|n| json!({ "n": n, "sleep_ms": sleep_ms }).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// What the worker processes share: a PostgreSQL database and an S3 bucket.
struct Cluster {
    db_url: String,
    s3: S3Server,
    cache_url: String,
    root: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        worker_exe();
        let server = postgres_server::shared();
        let db_url = server.url(&server.create_database());
        let s3 = S3Server::start();
        s3.create_bucket("team");
        Cluster {
            db_url,
            s3,
            cache_url: "s3://team/batches".into(),
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// Starts the worker program as worker `id` of the batch of `file`, as `cargo daggr
    /// run --batch FILE --sheets DB --worker ID --concurrency 1 --lease S` starts it once
    /// built (the batch handshake), in a process group, a working directory and a cache
    /// directory of its own (in front of the bucket): one "machine".
    fn worker(&self, id: &str, file: &Path, lease_s: f64) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("output.log")).unwrap();
        let request = json!({
            "inputs": file,
            "sheets": self.db_url,
            "worker": id,
            "concurrency": 1,
            "lease_ms": (lease_s * 1000.0) as u64,
            "events": dir.path().join("events.jsonl"),
        });
        let mut command = Command::new(worker_exe());
        command
            .env(daggr::RUN_ENV, dir.path().join("answer.json"))
            .env(daggr::RUN_BATCH_ENV, request.to_string())
            .env("DAGGR_NO_LAUNCH", "1")
            .current_dir(dir.path())
            .env("DAGGR_CACHE_DIR", dir.path().join("cache"))
            .env("DAGGR_CACHE_URL", &self.cache_url)
            .env("BATCH_CALLS_LOG", dir.path().join("calls.log"))
            .env_remove("DAGGR_SHEETS_URL")
            .env_remove("DAGGR_SHEETS_DB")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        for key in std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("AWS_"))
        {
            command.env_remove(key);
        }
        for (key, value) in self.s3.options() {
            command.env(key.to_uppercase(), value);
        }
        let child = command.spawn().expect("starting the batch worker");
        Worker {
            id: id.to_string(),
            child,
            dir,
        }
    }

    fn store(&self) -> SheetStore {
        SheetStore::open_url(&self.db_url).unwrap()
    }
}

/// A worker process (group).
struct Worker {
    id: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Worker {
    /// Sends `signal` to the worker's process group.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([
                &format!("-{signal}"),
                "--",
                &format!("-{}", self.child.id()),
            ])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.id);
    }

    /// Waits (at most `timeout`) for it to exit; its exit code.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                self.signal("KILL");
                panic!("worker {} did not finish:\n{}", self.id, self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it printed.
    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default()
    }

    /// The updates it wrote (each a whole line, written at once), up to now.
    fn updates(&self) -> Vec<Json> {
        std::fs::read_to_string(self.dir.path().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The items of its updates of kind `event`.
    fn items(&self, event: &str) -> Vec<u64> {
        self.updates()
            .iter()
            .filter(|u| u["event"] == event)
            .map(|u| u["item"].as_u64().unwrap())
            .collect()
    }

    /// Its answer: the run's summary.
    fn summary(&self) -> Json {
        let text = std::fs::read_to_string(self.dir.path().join("answer.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Its node calls, by `n`.
    fn calls(&self) -> Vec<u64> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal("KILL");
            let _ = self.child.wait();
        }
    }
}

/// The batch, once a worker created it.
fn wait_for_batch(store: &SheetStore, name: &str) -> daggr::sheet::batch::Batch {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(batch) = store.open_batch("batch_worker", name) {
            return batch;
        }
        assert!(
            Instant::now() < deadline,
            "no worker created batch `{name}`"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops `worker` (SIGSTOP) at a moment it holds a claim; the claims it holds (which stay
/// as they are while it is stopped).
fn stop_holding_a_claim(worker: &Worker, batch: &daggr::sheet::batch::Batch) -> Vec<BatchItem> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        worker.signal("STOP");
        let held: Vec<BatchItem> = batch
            .items()
            .unwrap()
            .into_iter()
            .filter(|i| i.status == ItemStatus::Claimed && i.worker.as_deref() == Some(&worker.id))
            .collect();
        if !held.is_empty() {
            return held;
        }
        // Between two items: let it go on a little.
        worker.signal("CONT");
        assert!(
            Instant::now() < deadline,
            "{} never held a claim",
            worker.id
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn three_worker_processes_share_a_batch_through_a_kill_and_a_stall_and_do_each_item_once() {
    let _turn = PROCESSES.lock().unwrap_or_else(|p| p.into_inner());
    let cluster = Cluster::start();
    let total = 60u64;
    let file = inputs_file(cluster.root.path(), "shared", 1000..1000 + total, 150);
    let lease_s = 2.0;
    let mut w1 = cluster.worker("w1", &file, lease_s);
    let mut w2 = cluster.worker("w2", &file, lease_s);
    let mut w3 = cluster.worker("w3", &file, lease_s);
    let store = cluster.store();
    let batch = wait_for_batch(&store, "shared");
    assert_eq!(batch.len(), total as usize);

    // Each worker gets going.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let items = batch.items().unwrap();
        let done_by = |w: &str| {
            items
                .iter()
                .filter(|i| i.status == ItemStatus::Done && i.worker.as_deref() == Some(w))
                .count()
        };
        if ["w1", "w2", "w3"].iter().all(|w| done_by(w) >= 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workers did not all get going:\n{}\n{}\n{}",
            w1.output(),
            w2.output(),
            w3.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // w1's machine dies mid-item: SIGKILL, no clean-up.
    let killed = stop_holding_a_claim(&w1, &batch);
    w1.signal("KILL");
    assert_eq!(w1.wait(Duration::from_secs(10)), None, "killed by a signal");
    let killed_at = Instant::now();
    // w2's is stopped (a pause, a partition) for longer than its lease, then goes on.
    let stalled = stop_holding_a_claim(&w2, &batch);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let items = batch.items().unwrap();
        let taken_over = stalled.iter().all(|s| {
            let now = &items[s.item as usize];
            now.status == ItemStatus::Done && now.worker.as_deref() != Some("w2")
        });
        if taken_over {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled claims were not taken over: {:?}",
            stalled
                .iter()
                .map(|s| &items[s.item as usize])
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    w2.signal("CONT");
    assert_eq!(
        w2.wait(Duration::from_secs(120)),
        Some(0),
        "{}",
        w2.output()
    );
    assert_eq!(
        w3.wait(Duration::from_secs(120)),
        Some(0),
        "{}",
        w3.output()
    );
    eprintln!(
        "all done {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );

    // Every item done, with its own result.
    let items = batch.items().unwrap();
    assert_eq!(items.len(), total as usize);
    for item in &items {
        assert_eq!(item.status, ItemStatus::Done, "{item:?}");
        let n = 1000 + item.item;
        assert_eq!(item.outputs.as_ref().unwrap()["square"], json!(n * n));
    }
    // Exactly once: each item is in one worker's results (the killed worker's updates up
    // to its death included), and its row names that worker.
    let mut finished_by: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for worker in [&w1, &w2, &w3] {
        for item in worker.items("done") {
            finished_by.entry(item).or_default().push(worker.id.clone());
            assert_eq!(
                items[item as usize].worker.as_deref(),
                Some(worker.id.as_str()),
                "item {item}"
            );
        }
    }
    assert_eq!(finished_by.len(), total as usize, "{finished_by:?}");
    let twice: Vec<_> = finished_by.iter().filter(|(_, w)| w.len() != 1).collect();
    assert!(twice.is_empty(), "items with two results: {twice:?}");
    for worker in [&w2, &w3] {
        let summary = worker.summary();
        assert_eq!(summary["done"], total, "{summary}");
        assert!(
            summary["failed"].as_array().unwrap().is_empty(),
            "{summary}"
        );
        let done_here: Vec<u64> = serde_json::from_value(summary["done_here"].clone()).unwrap();
        assert_eq!(done_here, worker.items("done"), "{summary}");
    }

    // The killed worker's item was finished by another, once its lease had ended.
    for held in &killed {
        let now = &items[held.item as usize];
        eprintln!(
            "item {} of the killed w1 (lease until {}): taken over by {:?} at {} (claim {})",
            held.item,
            held.claimed_until_ms.unwrap(),
            now.worker,
            now.started_ms.unwrap(),
            now.attempts
        );
        assert_ne!(now.worker.as_deref(), Some("w1"), "{now:?}");
        assert!(now.attempts > held.attempts, "{now:?}");
        assert!(
            now.started_ms.unwrap() >= held.claimed_until_ms.unwrap(),
            "taken over before the lease ended: {held:?} → {now:?}"
        );
        let finisher = if now.worker.as_deref() == Some("w2") {
            &w2
        } else {
            &w3
        };
        let taken_over = finisher.updates().iter().any(|u| {
            u["event"] == "claimed" && u["item"] == held.item && u["reclaimed_from"] == "w1"
        });
        assert!(
            taken_over,
            "{} did not say it took item {} over",
            finisher.id, held.item
        );
    }
    // The stalled worker came back to find its claim taken: it wrote nothing for it.
    for held in &stalled {
        let now = &items[held.item as usize];
        eprintln!(
            "item {} of the stopped w2: finished by {:?}; w2 reported it lost",
            held.item, now.worker
        );
        assert_eq!(now.worker.as_deref(), Some("w3"), "{now:?}");
        assert!(w2.items("lost").contains(&held.item), "{:?}", w2.updates());
        assert!(!w2.items("done").contains(&held.item));
        let lost = w2.summary()["lost"].clone();
        assert!(
            lost.as_array().unwrap().contains(&json!(held.item)),
            "{lost}"
        );
    }

    // Node calls: once per item, except the items whose claim was lost (the dead or
    // stalled worker had started them), at most twice; the bucket served the rest.
    let mut calls: BTreeMap<u64, usize> = BTreeMap::new();
    for worker in [&w1, &w2, &w3] {
        for n in worker.calls() {
            *calls.entry(n).or_default() += 1;
        }
    }
    let redone: BTreeSet<u64> = killed
        .iter()
        .chain(&stalled)
        .map(|i| 1000 + i.item)
        .collect();
    for n in 1000..1000 + total {
        let count = calls.get(&n).copied().unwrap_or(0);
        if redone.contains(&n) {
            assert!((1..=2).contains(&count), "n = {n}: {count} calls");
        } else {
            assert_eq!(count, 1, "n = {n}: {count} calls");
        }
    }
}

#[test]
fn items_per_second_with_one_two_and_three_workers() {
    let _turn = PROCESSES.lock().unwrap_or_else(|p| p.into_inner());
    let cluster = Cluster::start();
    let store = cluster.store();
    let items = 30u64;
    let sleep_ms = 100;
    let mut rates = Vec::new();
    for workers in 1..=3u64 {
        let name = format!("rate-{workers}");
        // Inputs of their own: no item is a cache hit of another round's.
        let first = 10_000 * workers;
        let file = inputs_file(cluster.root.path(), &name, first..first + items, sleep_ms);
        let started = Instant::now();
        let mut running: Vec<Worker> = (1..=workers)
            .map(|w| cluster.worker(&format!("{name}-w{w}"), &file, 10.0))
            .collect();
        for worker in &mut running {
            let code = worker.wait(Duration::from_secs(300));
            assert_eq!(code, Some(0), "{}", worker.output());
        }
        let wall = started.elapsed();
        let batch = store.open_batch("batch_worker", &name).unwrap();
        let rows = batch.items().unwrap();
        assert!(rows.iter().all(|i| i.status == ItemStatus::Done));
        let by_worker: BTreeSet<&str> = rows.iter().filter_map(|i| i.worker.as_deref()).collect();
        assert_eq!(by_worker.len(), workers as usize, "every worker took items");
        // From the first claim to the last item done, in the server's clock: the workers'
        // start-up (connecting, creating or opening the batch) is not the batch's.
        let start = rows.iter().map(|i| i.started_ms.unwrap()).min().unwrap();
        let end = rows.iter().map(|i| i.finished_ms.unwrap()).max().unwrap();
        let rate = items as f64 / ((end - start) as f64 / 1000.0);
        eprintln!(
            "batch figures: {workers} worker(s): {items} items of {sleep_ms} ms in {:.2} s = {rate:.2} items/s (wall time with start-up {:.2} s)",
            (end - start) as f64 / 1000.0,
            wall.as_secs_f64()
        );
        rates.push(rate);
    }
    eprintln!(
        "batch figures: items/s 1 : 2 : 3 workers = 1 : {:.2} : {:.2}",
        rates[1] / rates[0],
        rates[2] / rates[0]
    );
}

// ---- The command line ----

/// `cargo daggr run --batch` on the worker example, in `dir` (its `.daggr/`), on an SQLite
/// file.
fn cli_batch(dir: &Path, file: &Path, args: &[&str]) -> std::process::Output {
    Command::new(cargo_daggr_bin::binary())
        .args([
            "daggr",
            "run",
            "-p",
            "daggr-tests",
            "--example",
            "batch_worker",
        ])
        .arg("--manifest-path")
        .arg(workspace().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(test_target_dir())
        .arg("--batch")
        .arg(file)
        .args(["--sheets", "sheets.db", "--worker", "cli"])
        .args(args)
        .current_dir(dir)
        .env("DAGGR_CACHE_DIR", dir.join("cache"))
        .env("BATCH_CALLS_LOG", dir.join("calls.log"))
        .env_remove("DAGGR_CACHE_URL")
        .env_remove("DAGGR_SHEETS_URL")
        .output()
        .unwrap()
}

#[test]
fn cargo_daggr_run_batch_prints_updates_and_a_summary_and_exits_1_on_a_failed_item() {
    // Its builds would weigh on the other process tests' timing.
    let _turn = PROCESSES.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let file = inputs_file(dir.path(), "inputs", 10..16, 0);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();

    let out = cli_batch(dir.path(), &file, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let lines: Vec<Json> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events.iter().filter(|e| **e == "claimed").count(),
        6,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| **e == "done").count(),
        5,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| **e == "failed").count(),
        1,
        "{events:?}"
    );
    let done = lines.iter().find(|l| l["event"] == "done").unwrap();
    let n = 10 + done["item"].as_u64().unwrap();
    assert_eq!(done["outputs"]["square"], json!(n * n), "{done}");
    assert_eq!(done["worker"], "cli");
    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary", "{summary}");
    assert_eq!(
        (summary["batch"].as_str(), summary["total"].as_u64()),
        (Some("inputs"), Some(6))
    );
    assert_eq!(summary["done"], 5);
    assert_eq!(summary["failed"][0]["item"], 3, "n = 13 fails: {summary}");
    let error = summary["failed"][0]["error"].as_str().unwrap();
    assert!(error.contains("13 is unlucky"), "{error}");
    assert!(
        text(&out.stderr).contains("error: item 3 failed: "),
        "{}",
        text(&out.stderr)
    );
    assert!(dir.path().join("sheets.db").is_file());

    // Again, as text: the done items are skipped, the failed one is tried again.
    let out = cli_batch(dir.path(), &file, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.starts_with("batch `inputs` of `batch_worker`: 5 of 6 items done (0 by this worker, 5 already done), 1 failed"),
        "{shown}"
    );
    assert!(
        text(&out.stderr).contains("item 3 failed: "),
        "{}",
        text(&out.stderr)
    );
    let calls = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
    let mut calls: Vec<&str> = calls.lines().collect();
    calls.sort();
    assert_eq!(
        calls,
        ["10", "11", "12", "13", "13", "14", "15"],
        "done items never ran again"
    );

    // `--keep-failed`: the failed item is left failed, and nothing runs.
    let out = cli_batch(dir.path(), &file, &["--keep-failed"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .contains("5 of 6 items done (0 by this worker, 5 already done), 1 failed"),
        "{}",
        text(&out.stdout)
    );
    let calls = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
    assert_eq!(
        calls.lines().count(),
        7,
        "the failed item did not run again"
    );

    // A line that is not an object: exit 2, naming the line.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"n\": 1}\n[2]\n").unwrap();
    let out = cli_batch(dir.path(), &bad, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("line 2: `[2]` is not a JSON object"), "{err}");

    // `--item-timeout`: an item still running after it fails, and the command says so.
    let slow = inputs_file(dir.path(), "slow", [21], 2_000);
    let out = cli_batch(dir.path(), &slow, &["--item-timeout", "0.3"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("item 0 failed: timed out"), "{err}");
    let out = cli_batch(dir.path(), &slow, &["--item-timeout", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--item-timeout 0: give a number of seconds above 0"),
        "{}",
        text(&out.stderr)
    );
}
