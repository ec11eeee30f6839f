//! The shared cache tier against real object stores started on loopback by the harness:
//! an S3-compatible server (moto) and Azure Blob Storage (Azurite), and for reading, Google
//! Cloud Storage (fake-gcs-server). The same scenarios run on S3 and Azure
//! (`<scenario>::s3`, `<scenario>::azure`): separate processes with their own
//! cache directories and one bucket, a damaged object, and the server going away in the
//! middle of a run.
//!
//! The "processes" are this test binary run again as a worker (the ignored test `worker`),
//! configured only through the environment a user would set: `DAGGR_CACHE_DIR`,
//! `DAGGR_CACHE_URL` and the `AWS_*`, `GOOGLE_*` or `AZURE_*` variables. Nothing is shared but the
//! bucket.

#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/fake_gcs.rs"]
mod fake_gcs;
#[path = "common/s3_server.rs"]
mod s3_server;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use azurite::Azurite;
use daggr::cache::{ObjectStoreShared, SharedStore};
use daggr::{Cache, CacheSource, FnNode, Graph, Image, Outcome, Scope};
use fake_gcs::FakeGcs;
use s3_server::S3Server;

/// A real object store the tests start: the scenarios are written once against this.
trait Server: Send {
    /// Creates the bucket (or container) `name`; returns the `DAGGR_CACHE_URL` of `prefix`
    /// in it.
    fn bucket(&self, name: &str, prefix: &str) -> String;
    /// The `object_store` options reaching it (and, upper-cased, the environment).
    fn options(&self) -> Vec<(String, String)>;
    /// Stops the server.
    fn stop(&mut self);
}

impl Server for S3Server {
    fn bucket(&self, name: &str, prefix: &str) -> String {
        self.create_bucket(name);
        format!("s3://{name}/{prefix}")
    }
    fn options(&self) -> Vec<(String, String)> {
        S3Server::options(self)
    }
    fn stop(&mut self) {
        S3Server::stop(self)
    }
}

impl Server for FakeGcs {
    fn bucket(&self, name: &str, prefix: &str) -> String {
        self.create_bucket(name);
        format!("gs://{name}/{prefix}")
    }
    fn options(&self) -> Vec<(String, String)> {
        FakeGcs::options(self)
    }
    fn stop(&mut self) {
        FakeGcs::stop(self)
    }
}

/// A shared directory (`file://`), standing in for whatever machine wrote results first.
struct SharedDir(tempfile::TempDir);

impl Server for SharedDir {
    fn bucket(&self, name: &str, prefix: &str) -> String {
        format!("file://{}/{name}/{prefix}", self.0.path().display())
    }
    fn options(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn stop(&mut self) {}
}

impl Server for Azurite {
    fn bucket(&self, name: &str, prefix: &str) -> String {
        self.create_container(name);
        format!("az://{name}/{prefix}")
    }
    fn options(&self) -> Vec<(String, String)> {
        Azurite::options(self)
    }
    fn stop(&mut self) {
        Azurite::stop(self)
    }
}

/// The backends the scenarios run on.
#[derive(Clone, Copy)]
enum Backend {
    S3,
    Azure,
}

fn start(backend: Backend) -> Box<dyn Server> {
    match backend {
        Backend::S3 => Box::new(S3Server::start()),
        Backend::Azure => Box::new(Azurite::start()),
    }
}

/// One test per backend for the scenario `$scenario`, in a module of that name.
macro_rules! on_each_backend {
    ($scenario:ident) => {
        mod $scenario {
            #[test]
            fn s3() {
                super::$scenario(super::Backend::S3)
            }
            #[test]
            fn azure() {
                super::$scenario(super::Backend::Azure)
            }
        }
    };
    (async $scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                super::$scenario(super::Backend::S3).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn azure() {
                super::$scenario(super::Backend::Azure).await
            }
        }
    };
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// `seed → render (an image) → measure (the sum of its bytes) → describe`, each node
/// counting its calls.
fn pipeline(cache: Cache, seed: u32) -> (daggr::Pipeline, daggr::Output<String>) {
    let mut g = Graph::new("shared").cache(cache);
    let seed = g.input("seed", seed);
    let image = g.add(
        FnNode::sync("render", |s: u32| {
            CALLS.fetch_add(1, Ordering::SeqCst);
            let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 31 + s) as u8).collect();
            Image::new(bytes, "image/x-raw")
        }),
        (seed,),
    );
    let sum = g.add(
        FnNode::sync("measure", |i: Image| {
            CALLS.fetch_add(1, Ordering::SeqCst);
            i.bytes().iter().map(|b| u64::from(*b)).sum::<u64>()
        }),
        (image,),
    );
    let text = g.add(
        FnNode::sync("describe", |n: u64| {
            CALLS.fetch_add(1, Ordering::SeqCst);
            format!("the bytes sum to {n}")
        }),
        (sum,),
    );
    (g.build().unwrap(), text)
}

fn label(outcome: Option<&Outcome>) -> String {
    match outcome {
        Some(Outcome::Computed { .. }) => "computed".into(),
        Some(Outcome::Cached(CacheSource::Memory)) => "memory".into(),
        Some(Outcome::Cached(CacheSource::Disk)) => "disk".into(),
        Some(Outcome::Cached(CacheSource::Shared)) => "shared".into(),
        other => format!("{other:?}"),
    }
}

/// What a worker process reports.
#[derive(Debug)]
struct Report {
    calls: u64,
    outcomes: BTreeMap<String, String>,
    text: String,
    counters: serde_json::Value,
}

/// Runs the pipeline in a new process with its own cache directory `dir`, in front of
/// `url` on `server` (or only `dir`, when `server` is `None`).
fn run_worker(dir: &Path, server: Option<&dyn Server>, url: &str) -> Report {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["worker", "--exact", "--ignored", "--nocapture", "--quiet"])
        .env("DAGGR_SHARED_WORKER", "1")
        .env("DAGGR_CACHE_DIR", dir)
        .env("RUST_BACKTRACE", "1");
    // The user's configuration: the URL and the AWS, Google or Azure variables, nothing
    // else.
    for key in std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE"))
    {
        command.env_remove(key);
    }
    if let Some(server) = server {
        command.env("DAGGR_CACHE_URL", url);
        for (key, value) in server.options() {
            command.env(key.to_uppercase(), value);
        }
    }
    let out = command.output().expect("running the worker");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "worker failed:\n{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WORKER "))
        .unwrap_or_else(|| panic!("no report from the worker:\n{stdout}\n{stderr}"));
    let json: serde_json::Value = serde_json::from_str(line).unwrap();
    Report {
        calls: json["calls"].as_u64().unwrap(),
        outcomes: serde_json::from_value(json["outcomes"].clone()).unwrap(),
        text: json["text"].as_str().unwrap().to_string(),
        counters: json["counters"].clone(),
    }
}

/// The worker process: the pipeline on `Cache::open_default()`, as configured by the
/// environment. Run by the other tests; does nothing when run directly.
#[test]
#[ignore = "run by the other tests of this file as a separate process"]
fn worker() {
    if std::env::var_os("DAGGR_SHARED_WORKER").is_none() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = Cache::open_default().unwrap();
    let (pipeline, text) = pipeline(cache.clone(), 7);
    let report = rt.block_on(pipeline.run(Scope::All)).unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    let outcomes: BTreeMap<String, String> = ["render", "measure", "describe"]
        .iter()
        .map(|n| (n.to_string(), label(report.outcome(n))))
        .collect();
    let value = report.value(&text).unwrap().to_string();
    drop(pipeline);
    assert!(cache.flush().is_empty());
    let json = serde_json::json!({
        "calls": CALLS.load(Ordering::SeqCst),
        "outcomes": outcomes,
        "text": value,
        "counters": cache.counters(),
        "upload_failures": cache.shared_upload_failures(),
    });
    println!("WORKER {json}");
}

/// The bucket at `url`, as a store of objects (signed requests, as daggr's own).
fn bucket(server: &dyn Server, url: &str) -> ObjectStoreShared {
    ObjectStoreShared::from_url_with_options(url, server.options()).unwrap()
}

fn all(outcomes: &BTreeMap<String, String>, what: &str) -> bool {
    outcomes.values().all(|o| o == what)
}

on_each_backend!(a_second_process_with_its_own_directory_makes_no_node_call);
fn a_second_process_with_its_own_directory_makes_no_node_call(backend: Backend) {
    let server = start(backend);
    let url = &server.bucket("team", "project-a");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    let first = run_worker(a.path(), Some(&*server), url);
    assert_eq!(first.calls, 3, "{first:?}");
    assert!(all(&first.outcomes, "computed"), "{first:?}");
    // The input's result and the three nodes'.
    assert_eq!(first.counters["shared_uploads"], 4, "{first:?}");
    let bucket = bucket(&*server, url);
    assert_eq!(bucket.list("records").unwrap().len(), 4);
    assert_eq!(bucket.list("blobs").unwrap().len(), 1, "the image, once");

    let second = run_worker(b.path(), Some(&*server), url);
    assert_eq!(second.calls, 0, "{second:?}");
    assert!(
        second.outcomes.values().all(|o| o == "shared"),
        "{second:?}"
    );
    assert_eq!(second.text, first.text);
    assert!(
        second.counters["shared_hits"].as_u64().unwrap() >= 1,
        "{second:?}"
    );

    // The second directory now holds them: with the server gone, a third process on it
    // still makes no call.
    drop(server);
    let third = run_worker(b.path(), None, url);
    assert_eq!(third.calls, 0, "{third:?}");
    assert!(all(&third.outcomes, "disk"), "{third:?}");
    assert_eq!(third.text, first.text);
}

on_each_backend!(results_computed_before_the_store_was_set_up_are_pushed);
/// A shared store receives what is computed once it is set up; `push_shared` uploads what
/// the local directory already had, and a second machine then computes nothing.
fn results_computed_before_the_store_was_set_up_are_pushed(backend: Backend) {
    let server = start(backend);
    let url = &server.bucket("team", "pushed");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Computed with no shared store.
    let first = run_worker(a.path(), None, url);
    assert_eq!(first.calls, 3, "{first:?}");
    assert!(bucket(&*server, url).list("records").unwrap().is_empty());

    let store = Arc::new(bucket(&*server, url));
    let cache = Cache::open_shared(a.path(), store.clone()).unwrap();
    let report = cache.push_shared().unwrap();
    assert_eq!(
        (report.uploaded, report.already_there, report.unreadable),
        (4, 0, 0),
        "{report:?}"
    );
    assert!(report.failed.is_empty(), "{report:?}");
    assert!(report.bytes > 200_000, "the image went too: {report:?}");
    assert_eq!(store.list("records").unwrap().len(), 4);
    assert_eq!(store.list("blobs").unwrap().len(), 1);
    let again = cache.push_shared().unwrap();
    assert_eq!((again.uploaded, again.already_there), (0, 4), "{again:?}");

    let second = run_worker(b.path(), Some(&*server), url);
    assert_eq!(second.calls, 0, "{second:?}");
    assert!(all(&second.outcomes, "shared"), "{second:?}");
    assert_eq!(second.text, first.text);
}

on_each_backend!(a_damaged_object_is_detected_recomputed_and_replaced);
fn a_damaged_object_is_detected_recomputed_and_replaced(backend: Backend) {
    let server = start(backend);
    let url = &server.bucket("team", "damage");
    let first = run_worker(tempfile::tempdir().unwrap().path(), Some(&*server), url);
    assert_eq!(first.calls, 3);

    // Flip a byte in the image blob and in every record, in the bucket.
    let bucket = bucket(&*server, url);
    let names = [
        bucket.list("records").unwrap(),
        bucket.list("blobs").unwrap(),
    ]
    .concat();
    assert_eq!(names.len(), 5, "{names:?}");
    for name in names {
        let mut bytes = bucket.get(&name).unwrap().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        bucket.put(&name, &bytes).unwrap();
    }
    let second = run_worker(tempfile::tempdir().unwrap().path(), Some(&*server), url);
    assert_eq!(second.calls, 3, "nothing damaged was served: {second:?}");
    assert!(all(&second.outcomes, "computed"), "{second:?}");
    assert!(
        second.counters["integrity_failures"].as_u64().unwrap() >= 1,
        "{second:?}"
    );
    assert_eq!(second.text, first.text);

    // The recomputed results replaced the damaged objects.
    let third = run_worker(tempfile::tempdir().unwrap().path(), Some(&*server), url);
    assert_eq!(third.calls, 0, "{third:?}");
    assert_eq!(third.text, first.text);
}

/// `seed → first → second` on `cache`; `first` stops `stop_server` when given (the bucket
/// goes away while the run is under way). One closure for both runs: a node's code is
/// part of its key.
fn mid_run_pipeline(
    cache: Cache,
    calls: Arc<AtomicUsize>,
    stop_server: Option<Arc<Mutex<Box<dyn Server>>>>,
) -> (daggr::Pipeline, daggr::Output<u64>) {
    let mut g = Graph::new("mid-run").cache(cache);
    let seed = g.input("seed", 3u64);
    let c1 = calls.clone();
    let first = g.add(
        FnNode::sync("first", move |x: u64| {
            c1.fetch_add(1, Ordering::SeqCst);
            if let Some(server) = &stop_server {
                server.lock().unwrap().stop();
            }
            x + 1
        }),
        (seed,),
    );
    let second = g.add(
        FnNode::sync("second", move |x: u64| {
            calls.fetch_add(1, Ordering::SeqCst);
            x * 10
        }),
        (first,),
    );
    (g.build().unwrap(), second)
}

on_each_backend!(async the_bucket_going_away_mid_run_fails_over_to_computing_and_loses_nothing);
async fn the_bucket_going_away_mid_run_fails_over_to_computing_and_loses_nothing(backend: Backend) {
    let server = Arc::new(Mutex::new(start(backend)));
    let url = server.lock().unwrap().bucket("team", "mid-run");
    let options = server.lock().unwrap().options();
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = ObjectStoreShared::from_url_with_options(&url, options.clone()).unwrap();
        Cache::open_shared(dir.path(), Arc::new(store)).unwrap()
    };
    let cache = open();
    let calls = Arc::new(AtomicUsize::new(0));
    let (pipeline, second) = mid_run_pipeline(cache.clone(), calls.clone(), Some(server));
    let report = pipeline.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.errors());
    assert_eq!(*report.value(&second).unwrap(), 40);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(cache.flush().is_empty(), "everything is on the local disk");
    // And it says so: the failed uploads are counted and listed.
    // Both nodes' results (computed after the server went away), and the input's unless
    // its upload, started before `first` ran, won the race with the stop: a single
    // conditional PUT often does.
    let failures = cache.shared_upload_failures();
    assert!((2..=3).contains(&failures.len()), "{failures:?}");
    assert!(
        failures.iter().all(|f| f.object.starts_with("records/")),
        "{failures:?}"
    );
    let counters = cache.counters();
    assert!(counters.shared_upload_failures >= 2, "{counters:?}");
    assert!(counters.shared_read_failures >= 1, "{counters:?}");
    drop(pipeline);
    drop(cache);

    // Nothing was lost: the same directory, the bucket still gone, serves both results.
    let (pipeline, second) = mid_run_pipeline(open(), calls.clone(), None);
    let report = pipeline.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&second).unwrap(), 40);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "no node ran again");
}

/// Azure's https address form names the same container and prefix as `az://`.
#[test]
fn the_https_form_of_an_azure_address_names_the_same_objects() {
    let server = Azurite::start();
    let url = Server::bucket(&server, "team", "forms");
    bucket(&server, &url).put("records/k", b"v").unwrap();
    let https = format!(
        "https://{}.blob.core.windows.net/team/forms",
        azurite::ACCOUNT
    );
    let same = bucket(&server, &https);
    assert_eq!(same.get("records/k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(same.list("records").unwrap(), vec!["records/k".to_string()]);
    // Write-once: a second write of a key keeps the first (a conditional put on Azure).
    same.put_if_absent("records/k", b"other").unwrap();
    assert_eq!(same.get("records/k").unwrap().as_deref(), Some(&b"v"[..]));
}

on_each_backend!(a_key_is_written_once);
/// Content addressing makes keys write-once: `put_if_absent` keeps the first bytes (a
/// conditional put: `If-None-Match: *` on S3 and Azure, `x-goog-if-generation-match: 0` on
/// GCS), while `put` (repairs) replaces.
fn a_key_is_written_once(backend: Backend) {
    let server = start(backend);
    let store = bucket(&*server, &server.bucket("team", "once"));
    store.put_if_absent("records/k", b"first").unwrap();
    store.put_if_absent("records/k", b"second").unwrap();
    assert_eq!(
        store.get("records/k").unwrap().as_deref(),
        Some(&b"first"[..])
    );
    store.put("records/k", b"repaired").unwrap();
    assert_eq!(
        store.get("records/k").unwrap().as_deref(),
        Some(&b"repaired"[..])
    );
    // Without conditional puts (`AWS_CONDITIONAL_PUT=disabled`, for S3-compatible servers
    // that reject them), a look before the write keeps the key write-once.
    if let Backend::S3 = backend {
        let mut options = server.options();
        options.push(("aws_conditional_put".into(), "disabled".into()));
        let url = server.bucket("plain", "once");
        let plain = ObjectStoreShared::from_url_with_options(&url, options).unwrap();
        plain.put_if_absent("records/k", b"first").unwrap();
        plain.put_if_absent("records/k", b"second").unwrap();
        assert_eq!(
            plain.get("records/k").unwrap().as_deref(),
            Some(&b"first"[..])
        );
    }
}

/// Google Cloud Storage, on fake-gcs-server. Its XML API (the one `object_store` speaks)
/// reads, lists and deletes objects but takes no plain uploads (only signed-URL ones), so
/// here the results another machine computed are put in the bucket through the JSON API,
/// as `gcloud storage cp` would, and daggr's part is reading them: a process with its own
/// directory serves everything from the bucket with no node call, damaged objects are
/// detected and recomputed, the failed uploads are reported, and gc lists and removes.
#[test]
fn a_bucket_on_google_cloud_storage_serves_results_computed_elsewhere() {
    let server = FakeGcs::start();
    let url = Server::bucket(&server, "team", "project-g");
    let uploaded = |name: &str, bytes: Vec<u8>| {
        let object = format!("project-g/{name}");
        let address = format!(
            "{}/upload/storage/v1/b/team/o?uploadType=media&name={}",
            server.endpoint,
            object.replace('/', "%2F")
        );
        let (status, body) = fake_gcs::gcs_test_env::http(&address, "POST", &[], bytes).unwrap();
        assert!(status < 300, "{status} {}", String::from_utf8_lossy(&body));
    };

    // Another machine computes the pipeline on its shared store; its objects are copied
    // into the bucket.
    let elsewhere = SharedDir(tempfile::tempdir().unwrap());
    let elsewhere_url = elsewhere.bucket("team", "project-g");
    let first = run_worker(
        tempfile::tempdir().unwrap().path(),
        Some(&elsewhere),
        &elsewhere_url,
    );
    assert_eq!(first.calls, 3, "{first:?}");
    let source = ObjectStoreShared::from_url(&elsewhere_url).unwrap();
    let names = [
        source.list("records").unwrap(),
        source.list("blobs").unwrap(),
    ]
    .concat();
    assert_eq!(names.len(), 5, "four results and the image: {names:?}");
    for name in &names {
        uploaded(name, source.get(name).unwrap().unwrap());
    }

    // A process with its own directory and `DAGGR_CACHE_URL=gs://team/project-g`.
    let second = run_worker(tempfile::tempdir().unwrap().path(), Some(&server), &url);
    assert_eq!(second.calls, 0, "{second:?}");
    assert!(all(&second.outcomes, "shared"), "{second:?}");
    assert_eq!(second.text, first.text);
    let gcs = bucket(&server, &url);
    let mut listed = [gcs.list("records").unwrap(), gcs.list("blobs").unwrap()].concat();
    listed.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(listed, expected);

    // Damaged objects are never served: every one recomputes, and the uploads the
    // emulator refuses are counted, not lost (the results are on the local disk).
    for name in &names {
        let mut bytes = gcs.get(name).unwrap().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        uploaded(name, bytes);
    }
    let third = run_worker(tempfile::tempdir().unwrap().path(), Some(&server), &url);
    assert_eq!(third.calls, 3, "nothing damaged was served: {third:?}");
    assert!(
        third.counters["integrity_failures"].as_u64().unwrap() >= 1,
        "{third:?}"
    );
    assert!(
        third.counters["shared_upload_failures"].as_u64().unwrap() >= 1,
        "{third:?}"
    );
    assert_eq!(third.text, first.text);

    // gc on the bucket: nothing is live, so every result and the image go.
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open_shared(dir.path(), Arc::new(bucket(&server, &url))).unwrap();
    let report = cache
        .gc_shared(&Default::default(), &Default::default())
        .unwrap();
    assert_eq!(
        (report.removed_entries, report.removed_files),
        (4, 1),
        "{report:?}"
    );
    assert!(gcs.list("records").unwrap().is_empty());
    assert!(gcs.list("blobs").unwrap().is_empty());
    assert!(!gcs.exists(&names[0]).unwrap());
}
