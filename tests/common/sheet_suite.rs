//! The sheet tests that run on every backend: persistence, history, provenance,
//! selection, CRUD and fork, retention, GC, logs and failures, and durability under
//! SIGKILL and concurrent processes (real child processes on one database).
//!
//! Included by `tests/sheets.rs` (SQLite, a file in the test's directory) and
//! `tests/sheets_postgres.rs` (a database of its own on a throw-away PostgreSQL server),
//! each declaring `const BACKEND: Backend` and the `postgres_server` module beside it.
//! Child processes find the database through `DAGGR_SHEETS_URL` (`SheetStore::open_default`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daggr::sheet::SheetStore;
use daggr::{
    constant, CachePolicy, Configure, Error, FnNode, Graph, Image, Output, Pipeline, Scope,
};

use super::postgres_server;

/// Which database the suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (`SheetStore::open`).
    Sqlite,
    /// A PostgreSQL database (`SheetStore::open_url("postgres://…")`).
    Postgres,
}

/// One test's database: a file in its directory, or a new database on the shared server.
pub struct Db {
    pub backend: Backend,
    /// For `SheetStore::open_url` and `DAGGR_SHEETS_URL`.
    pub url: String,
    /// The SQLite file.
    path: PathBuf,
    /// The PostgreSQL database's name.
    name: String,
}

/// A new, empty database for a test of the binary's backend.
pub fn new_db(dir: &Path) -> Db {
    Db::new(super::BACKEND, dir)
}

impl Db {
    pub fn new(backend: Backend, dir: &Path) -> Db {
        let path = dir.join("sheets.db");
        match backend {
            Backend::Sqlite => Db {
                backend,
                url: format!("sqlite://{}", path.display()),
                path,
                name: String::new(),
            },
            Backend::Postgres => {
                let server = postgres_server::shared();
                let name = server.create_database();
                Db {
                    backend,
                    url: server.url(&name),
                    path,
                    name,
                }
            }
        }
    }

    /// Opens a store on it, as a process would.
    pub fn open(&self) -> SheetStore {
        self.open_with_history_limit(daggr::sheet::DEFAULT_HISTORY_LIMIT)
    }

    pub fn open_with_history_limit(&self, limit: usize) -> SheetStore {
        let opened = match self.backend {
            Backend::Sqlite => SheetStore::open_with_history_limit(&self.path, limit),
            Backend::Postgres => SheetStore::open_url_with_history_limit(&self.url, limit),
        };
        opened.unwrap_or_else(|e| panic!("opening {}: {e}", self.url))
    }

    /// Runs SQL that changes rows (the same text on both backends); rows changed.
    pub fn execute(&self, sql: &str) -> usize {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(&self.path)
                .unwrap()
                .execute(sql, [])
                .unwrap(),
            Backend::Postgres => {
                let out = postgres_server::shared().psql(
                    &self.name,
                    &format!("WITH changed AS ({sql} RETURNING 1) SELECT COUNT(*) FROM changed"),
                );
                out.trim().parse().unwrap()
            }
        }
    }

    /// A query's single integer.
    pub fn query_i64(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(&self.path)
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
            Backend::Postgres => postgres_server::shared()
                .psql(&self.name, sql)
                .trim()
                .parse()
                .unwrap(),
        }
    }

    /// "ok" when the database is sound: SQLite's own integrity check, and on both backends
    /// the invariants the writer keeps (every selection names a result, not a failure, of
    /// its own sheet and node; every log and result belongs to something).
    pub fn integrity_check(&self) -> String {
        if self.backend == Backend::Sqlite {
            let conn = rusqlite::Connection::open(&self.path).unwrap();
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            if check != "ok" {
                return check;
            }
        }
        let broken = self.query_i64(
            "SELECT (SELECT COUNT(*) FROM selections s LEFT JOIN results r ON r.id = s.result_id
                     WHERE r.id IS NULL OR r.sheet_id <> s.sheet_id OR r.node <> s.node OR r.error IS NOT NULL)
                  + (SELECT COUNT(*) FROM result_logs l LEFT JOIN results r ON r.id = l.result_id WHERE r.id IS NULL)
                  + (SELECT COUNT(*) FROM results r LEFT JOIN sheets s ON s.id = r.sheet_id WHERE s.id IS NULL)
                  + (SELECT COUNT(*) FROM sheet_inputs i LEFT JOIN sheets s ON s.id = i.sheet_id WHERE s.id IS NULL)",
        );
        match broken {
            0 => "ok".into(),
            n => format!("{n} rows break the sheet invariants"),
        }
    }

    /// The schema version the database records.
    pub fn schema_version(&self) -> i64 {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(&self.path)
                .unwrap()
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap(),
            Backend::Postgres => self.query_i64("SELECT MAX(version) FROM daggr_sheets_schema"),
        }
    }

    /// Records another schema version (as a newer daggr would).
    pub fn set_schema_version(&self, version: i64) {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(&self.path)
                .unwrap()
                .pragma_update(None, "user_version", version)
                .unwrap(),
            Backend::Postgres => {
                self.execute(&format!(
                    "UPDATE daggr_sheets_schema SET version = {version}"
                ));
            }
        }
    }

    /// Everything the database keeps, as bytes: SQLite's files, or a PostgreSQL dump.
    pub fn raw_contents(&self) -> Vec<Vec<u8>> {
        match self.backend {
            Backend::Sqlite => std::fs::read_dir(self.path.parent().unwrap())
                .unwrap()
                .flatten()
                .filter(|e| e.path().is_file())
                .map(|e| std::fs::read(e.path()).unwrap())
                .collect(),
            Backend::Postgres => vec![postgres_server::shared().dump(&self.name)],
        }
    }
}

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

pub struct Chain {
    pub pipeline: Pipeline,
    pub first: Output<u64>,
    pub last: Output<u64>,
    calls: Vec<Calls>,
}

/// `first -> middle(k) -> last`, with per-node call counters.
pub fn chain(dir: &std::path::Path) -> Chain {
    let calls: Vec<Calls> = (0..3).map(|_| Calls::default()).collect();
    let mut g = Graph::new("chain").cache(daggr::Cache::open(dir.join("cache")).unwrap());
    let c0 = calls[0].clone();
    let first = g.add(
        FnNode::sync("first", move |x: u64| {
            c0.hit();
            x + 1
        })
        .inputs(["x"]),
        (constant(9u64),),
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
    Chain {
        pipeline: g.build().unwrap(),
        first,
        last,
        calls,
    }
}

fn counts(c: &Chain) -> Vec<usize> {
    c.calls.iter().map(Calls::get).collect()
}

#[tokio::test]
async fn edit_middle_run_only_then_run_to_end_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let store = db.open();
    let c = chain(dir.path());
    let sheet = store.create(&c.pipeline, "main").unwrap();
    assert_eq!(
        *sheet.run(Scope::All).await.unwrap().value(&c.last).unwrap(),
        21
    );

    sheet.set_constant("middle", "k", 3u64).unwrap();
    assert!(matches!(sheet.value(&c.last), Err(Error::Stale { .. })));
    let report = sheet.run(Scope::only("middle")).await.unwrap();
    assert_eq!(report.computed(), ["middle"]);
    let report = sheet.run(Scope::to(c.last)).await.unwrap();
    assert_eq!(*report.value(&c.last).unwrap(), 31);
    assert_eq!(report.computed(), ["last"]);
    assert_eq!(counts(&c), [1, 2, 2]);

    // A new process: new store handle, new pipeline, empty memory. Nothing reruns.
    drop(sheet);
    drop(store);
    let c2 = chain(dir.path());
    let store = db.open();
    let sheet = store.open_sheet(&c2.pipeline, "main").unwrap();
    assert_eq!(
        *sheet.value(&c2.last).unwrap(),
        31,
        "inputs and results were restored"
    );
    assert!(sheet.stale_nodes().is_empty());
    let report = sheet.run(Scope::All).await.unwrap();
    assert!(report.computed().is_empty(), "{:?}", report.computed());
    assert_eq!(counts(&c2), [0, 0, 0]);
    assert_eq!(
        report.run, 4,
        "run numbers go on from the sheet's stored runs"
    );
    let inputs = sheet.stored_inputs().unwrap();
    assert_eq!(
        inputs,
        [("middle".to_string(), "k".to_string(), serde_json::json!(3))]
    );
}

#[tokio::test]
async fn history_selection_and_restoring_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let store = db.open();
    let c = chain(dir.path());
    let sheet = store.create(&c.pipeline, "h").unwrap();
    sheet.run(Scope::All).await.unwrap(); // k = 2 → middle 20
    sheet.set_constant("middle", "k", 5u64).unwrap();
    sheet.run(Scope::All).await.unwrap(); // k = 5 → middle 50
    let history = sheet.history("middle").unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].selected && !history[1].selected);
    assert_eq!(history[0].outputs, [serde_json::json!(50)]);
    let old = &history[1];
    assert_eq!(old.outputs, [serde_json::json!(20)]);
    let k = old
        .provenance
        .inputs
        .iter()
        .find(|i| i.port == "k")
        .unwrap();
    assert_eq!(
        k.value,
        Some(serde_json::json!(2)),
        "constant inputs are recorded with the result"
    );
    assert!(old.provenance.identity.starts_with("fn:fn:middle"));

    // Selecting the old entry: downstream sees its value once it reruns.
    sheet.select("middle", old.id).unwrap();
    assert_eq!(
        sheet.stale_nodes(),
        ["middle", "last"],
        "middle no longer matches k = 5"
    );
    let report = sheet.run(Scope::only("last")).await.unwrap();
    assert_eq!(*report.value(&c.last).unwrap(), 21);
    // Restoring the old entry's inputs makes it current again.
    sheet.restore_inputs_of("middle", old.id).unwrap();
    assert!(sheet.stale_nodes().is_empty(), "{:?}", sheet.stale_nodes());
    assert_eq!(
        sheet
            .history("middle")
            .unwrap()
            .iter()
            .filter(|e| e.selected)
            .count(),
        1
    );
}

#[tokio::test]
async fn create_list_rename_fork_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let store = db.open();
    let c = chain(dir.path());
    let a = store.create(&c.pipeline, "alpha").unwrap();
    a.run(Scope::All).await.unwrap();
    assert!(matches!(
        store.create(&c.pipeline, "alpha"),
        Err(Error::SheetExists { .. })
    ));
    store.rename("chain", "alpha", "beta").unwrap();
    let err = store.open_sheet(&c.pipeline, "alpah").unwrap_err();
    assert_eq!(err.to_string(), "no sheet named `alpah`");
    let err = store.open_sheet(&c.pipeline, "bta").unwrap_err();
    assert!(err.to_string().contains("did you mean `beta`"), "{err}");

    let fork = store.fork(&c.pipeline, "beta", "gamma").unwrap();
    assert_eq!(
        *fork.value(&c.last).unwrap(),
        21,
        "the fork has the results"
    );
    assert_eq!(fork.history("middle").unwrap().len(), 1);
    fork.set_constant("middle", "k", 10u64).unwrap();
    fork.run(Scope::All).await.unwrap();
    assert_eq!(*fork.value(&c.last).unwrap(), 101);
    let beta = store.open_sheet(&c.pipeline, "beta").unwrap();
    assert_eq!(
        *beta.value(&c.last).unwrap(),
        21,
        "the original is untouched"
    );
    let names: Vec<String> = store
        .list("chain")
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["beta", "gamma"]);
    store.delete("chain", "gamma").unwrap();
    assert_eq!(store.list("chain").unwrap().len(), 1);
    assert!(store.delete("chain", "gamma").is_err());
    assert!(store.list("other-pipeline").unwrap().is_empty());
}

#[tokio::test]
async fn history_is_pruned_to_the_limit_and_the_viewport_persists() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let store = db.open_with_history_limit(3);
    let mut g = Graph::new("draws").cache(daggr::Cache::open(dir.path().join("cache")).unwrap());
    g.add(
        FnNode::sync("draw", |seed: u64| seed).cache_policy(CachePolicy::AlwaysRecompute),
        (daggr::random_seed(),),
    );
    let pipeline = g.build().unwrap();
    let sheet = store.create(&pipeline, "s").unwrap();
    for _ in 0..5 {
        sheet.run(Scope::All).await.unwrap();
    }
    let history = sheet.history("draw").unwrap();
    assert_eq!(history.len(), 3);
    assert!(
        history[0].provenance.inputs[0].generated,
        "the seed is recorded as generated"
    );
    assert!(history[0].provenance.inputs[0].value.is_some());
    sheet
        .set_viewport(&serde_json::json!({"x": 10, "y": -4, "zoom": 1.5}))
        .unwrap();
    let again = store.open_sheet(&pipeline, "s").unwrap();
    assert_eq!(again.viewport().unwrap().unwrap()["zoom"], 1.5);
    let seed = again.result("draw").unwrap().unwrap().generated[0]
        .1
        .to_json();
    assert_eq!(seed, history[0].provenance.inputs[0].value.clone().unwrap());
}

#[tokio::test]
async fn large_and_media_outputs_of_uncached_nodes_are_kept_by_the_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let build = || {
        let mut g = Graph::new("big").cache(daggr::Cache::open(dir.path().join("cache")).unwrap());
        let big = g.add(
            FnNode::sync("big", || vec![7u32; 50_000]).cache_policy(CachePolicy::NeverCache),
            (),
        );
        let img = g.add(
            FnNode::sync("img", || Image::new(vec![3u8; 5000], "image/x-raw"))
                .cache_policy(CachePolicy::NeverCache),
            (),
        );
        (g.build().unwrap(), big, img)
    };
    let store = db.open();
    let (p, _, _) = build();
    store
        .create(&p, "s")
        .unwrap()
        .run(Scope::All)
        .await
        .unwrap();
    drop(p);
    let (p, big, img) = build();
    let sheet = store.open_sheet(&p, "s").unwrap();
    assert_eq!(sheet.value(&big).unwrap().len(), 50_000);
    assert_eq!(sheet.value(&img).unwrap().bytes(), &[3u8; 5000][..]);
    let inline = db.query_i64("SELECT COALESCE(SUM(LENGTH(outputs)), 0) FROM results");
    assert!(
        inline < 10_000,
        "the 200 kB value is not inline ({inline} bytes of outputs)"
    );
    if db.backend == Backend::Sqlite {
        let file = std::fs::read(dir.path().join("sheets.db")).unwrap();
        assert!(
            file.len() < 100_000,
            "the 200 kB value is not inline ({} bytes)",
            file.len()
        );
    }
}

#[tokio::test]
async fn gc_keeps_what_sheets_refer_to() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let store = db.open();
    let c = chain(dir.path());
    store
        .create(&c.pipeline, "keep")
        .unwrap()
        .run(Scope::All)
        .await
        .unwrap();
    let drop_me = store.create(&c.pipeline, "drop").unwrap();
    drop_me.set_constant("middle", "k", 7u64).unwrap();
    drop_me.run(Scope::All).await.unwrap();
    store.delete("chain", "drop").unwrap();
    let cache = c.pipeline.cache().clone();
    let before = cache.stats().unwrap();
    let report = store.gc_cache(&cache).unwrap();
    assert_eq!(report.removed_entries, 2, "middle and last for k = 7");
    assert_eq!(cache.stats().unwrap().entries, before.entries - 2);
    // The kept sheet still reruns from disk without computing anything.
    let c2 = chain(dir.path());
    let fresh = c2.pipeline.new_workspace();
    let report = fresh.run(Scope::All).await.unwrap();
    assert!(report.computed().is_empty(), "{:?}", report.computed());
    let _ = c2.first;
}

#[tokio::test]
async fn tokens_never_reach_the_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let secret = "hf_sheet_secret_0123456789";
    // A node that uses a token (as a remote node would) but never outputs it.
    let mut g = Graph::new("secret").cache(daggr::Cache::open(dir.path().join("cache")).unwrap());
    let token = daggr::hf::HfToken::new(secret);
    g.add(
        FnNode::sync("call", move |x: u64| {
            let _auth = format!("Bearer {}", token.expose());
            x + 1
        }),
        (constant(1u64),),
    );
    let pipeline = g.build().unwrap();
    let store = db.open();
    store
        .create(&pipeline, "s")
        .unwrap()
        .run(Scope::All)
        .await
        .unwrap();
    drop(store);
    let contents = db.raw_contents();
    assert!(!contents.is_empty());
    for bytes in contents {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}

#[tokio::test]
async fn each_history_entry_keeps_its_log_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let mut g = Graph::new("logged").cache(daggr::Cache::open(dir.path().join("cache")).unwrap());
    let x = g.input("x", 1u64);
    let chatty = g.add(
        FnNode::with_context("chatty", |ctx: daggr::NodeContext, x: u64| async move {
            ctx.log(format!("x is {x}"));
            // x = 2 logs past the bound: only the last MAX_LOG_LINES lines are kept.
            let extra = if x == 2 {
                daggr::event::MAX_LOG_LINES + 4
            } else {
                0
            };
            for i in 0..extra {
                ctx.log(format!("line {i}"));
            }
            Ok::<_, std::io::Error>(x * 10)
        }),
        (x,),
    );
    let pipeline = g.build().unwrap();
    let store = db.open();
    let sheet = store.create(&pipeline, "s").unwrap();
    sheet.run(Scope::All).await.unwrap();
    sheet.set_input(&x, 2).unwrap();
    sheet.run(Scope::All).await.unwrap();
    sheet.set_input(&x, 3).unwrap();
    sheet.run(Scope::All).await.unwrap();
    let history = sheet.history("chatty").unwrap();
    let lines: Vec<usize> = history.iter().map(|e| e.log_lines).collect();
    assert_eq!(lines, [1, daggr::event::MAX_LOG_LINES, 1], "newest first");
    drop(sheet);
    drop(store);

    // After a restart: the current result has its log, and so has every history entry.
    let store = db.open();
    let sheet = store.open_sheet(&pipeline, "s").unwrap();
    let text = |logs: &daggr::event::Logs| -> Vec<String> {
        logs.lines.iter().map(|l| l.line.clone()).collect()
    };
    let current = sheet.result(chatty).unwrap().unwrap();
    assert_eq!(text(&current.logs), ["x is 3"]);
    assert!(current.logs.lines[0].unix_ms > 0);
    let (newest, bounded, oldest) = (history[0].id, history[1].id, history[2].id);
    assert_eq!(text(&sheet.log("chatty", oldest).unwrap()), ["x is 1"]);
    let long = sheet.log("chatty", bounded).unwrap();
    assert_eq!(long.lines.len(), daggr::event::MAX_LOG_LINES);
    assert_eq!(long.dropped, 5, "`x is 2` and lines 0..=3 were not kept");
    assert_eq!(long.lines[0].line, "line 4");
    assert!(sheet.log("chatty", newest + 100).is_err());
    // Selecting an older entry makes its log the current one; a fork copies the logs.
    sheet.select("chatty", oldest).unwrap();
    assert_eq!(
        text(&sheet.result(chatty).unwrap().unwrap().logs),
        ["x is 1"]
    );
    let fork = store.fork(&pipeline, "s", "copy").unwrap();
    assert_eq!(
        text(&fork.result(chatty).unwrap().unwrap().logs),
        ["x is 1"]
    );
    let forked = fork.history("chatty").unwrap();
    assert_eq!(text(&fork.log("chatty", forked[0].id).unwrap()), ["x is 3"]);
    // A result served from the cache did not run here: no log.
    let other = store.create(&pipeline, "other").unwrap();
    other.run(Scope::All).await.unwrap();
    let entry = &other.history("chatty").unwrap()[0];
    assert!(entry.outcome.starts_with("cached"));
    assert_eq!(entry.log_lines, 0);
    assert!(other.log("chatty", entry.id).unwrap().is_empty());
}

#[tokio::test]
async fn node_positions_persist_per_sheet_and_are_forked() {
    use daggr::sheet::NodePosition;
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let c = chain(dir.path());
    let store = db.open();
    let sheet = store.create(&c.pipeline, "s").unwrap();
    assert!(
        sheet.node_positions().unwrap().is_empty(),
        "the computed layout"
    );
    let moved = BTreeMap::from([
        ("middle".to_string(), NodePosition { x: 420.5, y: -30.0 }),
        ("last".to_string(), NodePosition { x: 10.0, y: 900.0 }),
    ]);
    sheet.set_node_positions(&moved).unwrap();
    let unknown = BTreeMap::from([("nope".to_string(), NodePosition { x: 0.0, y: 0.0 })]);
    assert!(matches!(
        sheet.set_node_positions(&unknown),
        Err(Error::UnknownNode { .. })
    ));
    drop(sheet);
    drop(store);
    let store = db.open();
    let sheet = store.open_sheet(&c.pipeline, "s").unwrap();
    assert_eq!(sheet.node_positions().unwrap(), moved);
    let other = store.create(&c.pipeline, "other").unwrap();
    assert!(other.node_positions().unwrap().is_empty(), "per sheet");
    let fork = store.fork(&c.pipeline, "s", "copy").unwrap();
    assert_eq!(fork.node_positions().unwrap(), moved);
    sheet.set_node_positions(&BTreeMap::new()).unwrap();
    assert!(sheet.node_positions().unwrap().is_empty(), "reset");
    assert_eq!(fork.node_positions().unwrap(), moved);
}

/// `x -> flaky -> down`; `flaky` is always recomputed, logs each try and, while `broken`
/// is set, fails after 3 attempts (the error's second line is the server's body).
struct Flaky {
    pipeline: Pipeline,
    flaky: Output<u64>,
    down: Output<u64>,
    broken: Arc<AtomicBool>,
}

fn flaky_chain(dir: &std::path::Path) -> Flaky {
    let broken = Arc::new(AtomicBool::new(false));
    let mut g = Graph::new("flaky").cache(daggr::Cache::open(dir.join("cache")).unwrap());
    let x = g.input("x", 1u64);
    let b = broken.clone();
    let flaky = g.add(
        FnNode::with_context("flaky", move |ctx: daggr::NodeContext, x: u64| {
            let broken = b.load(Ordering::SeqCst);
            async move {
                ctx.log(format!("calling the remote step with {x}"));
                if broken {
                    Err(std::io::Error::other(
                        "503 service unavailable\n<html>busy</html>",
                    ))
                } else {
                    Ok(x * 10)
                }
            }
        })
        .cache_policy(CachePolicy::AlwaysRecompute)
        .retry(daggr::RetryPolicy::new(2, Duration::from_millis(1))),
        (x,),
    );
    let down = g.add(FnNode::sync("down", |x: u64| x + 1), (flaky,));
    Flaky {
        pipeline: g.build().unwrap(),
        flaky,
        down,
        broken,
    }
}

#[tokio::test]
async fn a_failure_is_kept_in_the_history_and_the_last_good_result_stays_current() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let f = flaky_chain(dir.path());
    let store = db.open();
    let sheet = store.create(&f.pipeline, "s").unwrap();
    sheet.run(Scope::All).await.unwrap();
    let entries = f.pipeline.cache().stats().unwrap().entries;

    f.broken.store(true, Ordering::SeqCst);
    let report = sheet.run(Scope::All).await.unwrap();
    assert_eq!(report.failed(), ["flaky"]);
    assert_eq!(report.skipped(), ["down"]);
    let check = |sheet: &daggr::sheet::Sheet| {
        let history = sheet.history("flaky").unwrap();
        assert_eq!(
            history.len(),
            2,
            "newest first: the failure, then the result"
        );
        let (failed, good) = (&history[0], &history[1]);
        assert!(failed.is_failure() && !good.is_failure());
        assert_eq!((failed.run, failed.outcome.as_str()), (2, "failed"));
        assert_eq!(
            failed.error.as_deref(),
            Some("node `flaky` failed: 503 service unavailable\n<html>busy</html>")
        );
        assert_eq!(failed.attempts, Some(3));
        assert!(failed.elapsed_ms.is_some());
        assert!(failed.outputs.is_empty() && !failed.selected);
        assert_eq!(
            failed.provenance.inputs, good.provenance.inputs,
            "what it was computing from"
        );
        assert_eq!(failed.key, good.key);
        assert!(good.selected && good.error.is_none());
        assert_eq!(good.attempts, Some(1));
        let log: Vec<String> = sheet
            .log("flaky", failed.id)
            .unwrap()
            .lines
            .into_iter()
            .map(|l| l.line)
            .collect();
        assert_eq!(failed.log_lines, log.len());
        assert_eq!(log.len(), 6, "{log:?}");
        assert_eq!(log[0], "calling the remote step with 1");
        assert!(
            log[1].starts_with("attempt 1 of 3 failed, retrying in 1ms: node `flaky` failed: 503")
        );
        assert_eq!(
            log[5],
            format!("failed: {}", failed.error.as_ref().unwrap())
        );
        // Skipped nodes leave no entry.
        assert_eq!(sheet.history("down").unwrap().len(), 1);
        // The last good result is still current, and nothing went stale.
        assert_eq!(*sheet.value(&f.flaky).unwrap(), 10);
        assert_eq!(*sheet.value(&f.down).unwrap(), 11);
        assert!(sheet.stale_nodes().is_empty(), "{:?}", sheet.stale_nodes());
        let summary = sheet.history_summary().unwrap()["flaky"];
        assert_eq!(
            (
                summary.count,
                summary.failed,
                summary.position,
                summary.selected_id
            ),
            (1, 1, 1, Some(good.id))
        );
        // Selecting the failure is refused and changes nothing.
        let err = sheet.select("flaky", failed.id).unwrap_err();
        assert!(matches!(err, Error::NotSelectable { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "history entry {} of node `flaky` cannot be selected: it is the failed execution of run 2, \
                 which has no outputs (its log and error stay in the history)",
                failed.id
            )
        );
        assert_eq!(*sheet.value(&f.flaky).unwrap(), 10);
        assert!(sheet.history("flaky").unwrap()[1].selected);
    };
    check(&sheet);
    assert_eq!(
        f.pipeline.cache().stats().unwrap().entries,
        entries,
        "a failure never reaches the cache"
    );

    // After a restart (new store, new pipeline) it is all still there.
    drop(sheet);
    drop(store);
    let f = flaky_chain(dir.path());
    let store = db.open();
    let sheet = store.open_sheet(&f.pipeline, "s").unwrap();
    check(&sheet);
    // Once fixed, the node runs again and its new result becomes current.
    let report = sheet.run(Scope::All).await.unwrap();
    assert_eq!(report.computed(), ["flaky"], "down's input did not change");
    let history = sheet.history("flaky").unwrap();
    let outcomes: Vec<&str> = history.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["computed", "failed", "computed"]);
    assert!(history[0].selected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_runs_are_recorded_and_failures_are_pruned_and_forked_like_results() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let store = db.open_with_history_limit(3);
    let f = flaky_chain(dir.path());
    let sheet = store.create(&f.pipeline, "s").unwrap();
    sheet.run(Scope::All).await.unwrap();
    f.broken.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        sheet.run(Scope::All).await.unwrap();
    }
    // The newest 3 entries are kept, and the selected result (older) too.
    let history = sheet.history("flaky").unwrap();
    let runs: Vec<(u64, &str)> = history
        .iter()
        .map(|e| (e.run, e.outcome.as_str()))
        .collect();
    assert_eq!(
        runs,
        [(5, "failed"), (4, "failed"), (3, "failed"), (1, "computed")]
    );
    assert!(history[3].selected);

    // A fork copies the failures with their errors and logs.
    let fork = store.fork(&f.pipeline, "s", "copy").unwrap();
    let forked = fork.history("flaky").unwrap();
    assert_eq!(forked.len(), 4);
    assert_eq!(forked[0].error, history[0].error);
    assert_eq!(forked[0].attempts, Some(3));
    assert_eq!(
        fork.log("flaky", forked[0].id).unwrap(),
        sheet.log("flaky", history[0].id).unwrap()
    );
    assert!(fork.select("flaky", forked[0].id).is_err());
    assert_eq!(*fork.value(&f.flaky).unwrap(), 10);

    // A cancelled node is an entry too, with what it logged.
    let mut g = Graph::new("slow").cache(daggr::Cache::open(dir.path().join("cache")).unwrap());
    g.add(
        FnNode::with_context("slow", |ctx: daggr::NodeContext| async move {
            ctx.log("working");
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::io::Error>(1u64)
        }),
        (),
    );
    let pipeline = g.build().unwrap();
    let sheet = store.create(&pipeline, "slow").unwrap();
    let mut events = sheet.pipeline().subscribe();
    let cancel = tokio_util::sync::CancellationToken::new();
    let token = cancel.clone();
    let waiter = tokio::spawn(async move {
        loop {
            if let Ok(daggr::Event::NodeLog { line, .. }) = events.recv().await {
                if line == "working" {
                    token.cancel();
                    break;
                }
            }
        }
    });
    let report = sheet.run_with_cancel(Scope::All, cancel).await.unwrap();
    waiter.await.unwrap();
    assert!(report.cancelled);
    let history = sheet.history("slow").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, "cancelled");
    assert_eq!(
        history[0].error.as_deref(),
        Some("node `slow` was cancelled")
    );
    let log: Vec<String> = sheet
        .log("slow", history[0].id)
        .unwrap()
        .lines
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(log, ["working", "cancelled"]);
    assert!(sheet.result("slow").unwrap().is_none());
    assert_eq!(sheet.history_summary().unwrap()["slow"].count, 0);
}

#[test]
fn a_database_from_a_newer_daggr_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    drop(db.open());
    assert_eq!(db.schema_version(), 5);
    // Opening again migrates nothing.
    drop(db.open());
    assert_eq!(db.schema_version(), 5);
    db.set_schema_version(99);
    let err = match db.backend {
        Backend::Sqlite => SheetStore::open(dir.path().join("sheets.db")),
        Backend::Postgres => SheetStore::open_url(&db.url),
    }
    .unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn damaged_json_is_skipped_and_reported_and_the_rest_of_the_sheet_opens() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let c = chain(dir.path());
    let store = db.open();
    let sheet = store.create(&c.pipeline, "s").unwrap();
    sheet.set_constant("middle", "k", 3u64).unwrap();
    sheet.run(Scope::All).await.unwrap();
    assert_eq!(*sheet.value(&c.last).unwrap(), 31);
    drop(sheet);
    store.flush();
    drop(store);
    // Damage one result's outputs and one stored input (text that is not JSON), as a
    // broken tool would; the columns keep their types (PostgreSQL would refuse others).
    assert_eq!(
        db.execute("UPDATE results SET outputs = '[{broken' WHERE node = 'middle'"),
        1
    );
    assert_eq!(
        db.execute("UPDATE sheet_inputs SET value = '{broken' WHERE node = 'middle'"),
        1
    );

    let store = db.open();
    let sheet = store
        .open_sheet(&c.pipeline, "s")
        .expect("a damaged row does not stop the sheet from opening");
    let skipped = sheet.skipped();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let result = skipped.iter().find(|s| s.table == "results").unwrap();
    assert_eq!(result.node.as_deref(), Some("middle"));
    let input = skipped.iter().find(|s| s.table == "sheet_inputs").unwrap();
    assert_eq!(input.node.as_deref(), Some("middle"));
    // The rest is there.
    assert_eq!(*sheet.value(&c.first).unwrap(), 10);
    assert!(sheet.result("last").unwrap().is_some());
    assert!(sheet.result("middle").unwrap().is_none());
    assert_eq!(sheet.history("first").unwrap().len(), 1);
    // And the sheet works on: the damaged node is computed again (with the default k, its
    // stored override being damaged), runs numbered after the stored ones.
    let report = sheet.run(Scope::All).await.unwrap();
    assert_eq!(report.run, 2);
    assert_eq!(report.computed(), ["middle", "last"]);
    assert_eq!(*sheet.value(&c.last).unwrap(), 21);
}

// ---- child processes ----

const CHILD_ENV: &str = "DAGGR_SHEET_CHILD";
const CHAIN_LEN: usize = 24;

/// `n0 -> n1 -> … -> n23`, each sleeping `ms` and adding 1.
fn long_chain(dir: &std::path::Path, ms: u64) -> (Pipeline, Output<u64>) {
    let mut g = Graph::new("long").cache(daggr::Cache::open(dir.join("cache")).unwrap());
    let mut prev = g.input("start", 0u64);
    for i in 0..CHAIN_LEN {
        prev = g.add(
            FnNode::from_async(&format!("n{i}"), move |x: u64| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                x + 1
            }),
            (prev,),
        );
    }
    (g.build().unwrap(), prev)
}

/// [`long_chain`] beside `remote`, an independent, always recomputed node that logs a line
/// and fails while `broken` is set.
fn long_chain_and_remote(
    dir: &std::path::Path,
    ms: u64,
    broken: Arc<AtomicBool>,
) -> (Pipeline, Output<u64>, Output<u64>) {
    let mut g = Graph::new("long-remote").cache(daggr::Cache::open(dir.join("cache")).unwrap());
    let remote = g.add(
        FnNode::with_context("remote", move |ctx: daggr::NodeContext| {
            let broken = broken.load(Ordering::SeqCst);
            async move {
                ctx.log("calling the remote step");
                if broken {
                    Err(std::io::Error::other("connection reset"))
                } else {
                    Ok(7u64)
                }
            }
        })
        .cache_policy(CachePolicy::AlwaysRecompute),
        (),
    );
    let mut prev = g.input("start", 0u64);
    for i in 0..CHAIN_LEN {
        prev = g.add(
            FnNode::from_async(&format!("n{i}"), move |x: u64| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                x + 1
            }),
            (prev,),
        );
    }
    (g.build().unwrap(), remote, prev)
}

/// The child of [`a_sigkill_after_a_failure_leaves_it_recorded_and_the_sheet_consistent`]:
/// `remote` succeeds once, then fails while the chain runs; every stored node and the
/// stored failure are reported.
async fn failing_child(dir: &std::path::Path) {
    let broken = Arc::new(AtomicBool::new(false));
    let (pipeline, _, _) = long_chain_and_remote(dir, 40, broken.clone());
    let store = SheetStore::open_default().unwrap();
    let sheet = store.open_or_create(&pipeline, "shared").unwrap();
    sheet.run(Scope::only("remote")).await.unwrap();
    broken.store(true, Ordering::SeqCst);
    let mut events = sheet.pipeline().subscribe();
    let s2 = store.clone();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            let line = match event {
                daggr::Event::NodeFinished { name, .. } => format!("stored {name}"),
                daggr::Event::NodeFailed { name, .. } => format!("failed {name}"),
                _ => continue,
            };
            // Report only what is durably stored.
            let s3 = s2.clone();
            tokio::task::spawn_blocking(move || s3.flush())
                .await
                .unwrap();
            println!("{line}");
        }
    });
    sheet.run(Scope::All).await.unwrap();
    println!("done");
}

/// Entry point of the child processes (ignored unless run by the tests below).
#[test]
#[ignore]
fn sheet_child_process() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var("DAGGR_CHILD_DIR").unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    if mode == "failing" {
        rt.block_on(failing_child(&dir));
        return;
    }
    rt.block_on(async {
        let (pipeline, _) = long_chain(&dir, 40);
        // The database is the one `DAGGR_SHEETS_URL` names, as configured for a deployment.
        let store = SheetStore::open_default().unwrap();
        let sheet = store.open_or_create(&pipeline, "shared").unwrap();
        if mode == "concurrent" {
            let start: u64 = std::env::var("DAGGR_CHILD_START").unwrap().parse().unwrap();
            let input: Output<u64> = Output::new(0, 0);
            sheet.set_input(&input, start).unwrap();
        }
        let mut events = sheet.pipeline().subscribe();
        let s2 = store.clone();
        let reporter = tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if let daggr::Event::NodeFinished { name, .. } = event {
                    // Report only what is durably stored.
                    let s3 = s2.clone();
                    tokio::task::spawn_blocking(move || s3.flush())
                        .await
                        .unwrap();
                    println!("stored {name}");
                }
            }
        });
        let report = sheet.run(Scope::All).await.unwrap();
        assert!(report.is_success());
        reporter.abort();
        println!("done");
    });
}

fn spawn_child(dir: &std::path::Path, db: &Db, mode: &str, start: u64) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "suite::sheet_child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .env("DAGGR_CHILD_DIR", dir)
        .env(daggr::sheet::SHEETS_URL_ENV, &db.url)
        .env("DAGGR_CHILD_START", start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs a "kill" child and SIGKILLs it once it reports `count` more stored results; the
/// names it reported.
fn kill_after_stored(dir: &std::path::Path, db: &Db, count: usize) -> Vec<String> {
    let mut child = spawn_child(dir, db, "kill", 0);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stored = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(name) = line.strip_prefix("stored ") {
            stored.push(name.to_string());
            if stored.len() == count {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    child.wait().unwrap();
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_run_leaves_the_sheet_consistent_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let stored = kill_after_stored(dir.path(), &db, 8);
    assert_eq!(stored.len(), 8, "the child got far enough before the kill");
    assert_eq!(db.integrity_check(), "ok");

    let (pipeline, last) = long_chain(dir.path(), 1);
    let store = db.open();
    let sheet = store.open_sheet(&pipeline, "shared").unwrap();
    let report = sheet.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&last).unwrap(), CHAIN_LEN as u64);
    let computed = report.computed();
    for name in &stored {
        assert!(
            !computed.contains(&name.as_str()),
            "{name} was stored before the kill yet ran again"
        );
    }
    assert!(computed.len() <= CHAIN_LEN - stored.len(), "{computed:?}");
    assert!(computed.contains(&"n23"), "the nodes after the kill ran");
}

/// SIGKILL × 5 on one sheet: each child resumes where the last was killed, runs a few more
/// nodes and is killed again. After every kill the database passes its integrity check;
/// at the end no node that any child reported stored is computed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_sigkills_in_a_row_lose_nothing_that_was_stored() {
    const KILLS: usize = 5;
    const MORE_PER_CHILD: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let mut stored: Vec<String> = Vec::new();
    for kill in 0..KILLS {
        let this_child = kill_after_stored(dir.path(), &db, MORE_PER_CHILD);
        for name in &this_child {
            assert!(
                !stored.contains(name),
                "kill {kill}: {name} was stored by an earlier child yet ran again"
            );
        }
        assert_eq!(
            this_child.len(),
            MORE_PER_CHILD,
            "kill {kill}: the child got far enough"
        );
        stored.extend(this_child);
        assert_eq!(db.integrity_check(), "ok", "after kill {kill}");
    }
    assert_eq!(stored.len(), KILLS * MORE_PER_CHILD);

    let (pipeline, last) = long_chain(dir.path(), 1);
    let store = db.open();
    let sheet = store.open_sheet(&pipeline, "shared").unwrap();
    let report = sheet.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&last).unwrap(), CHAIN_LEN as u64);
    let computed = report.computed();
    for name in &stored {
        assert!(
            !computed.contains(&name.as_str()),
            "{name} was stored before a kill yet ran again"
        );
    }
    // Nodes a child finished but was killed before reporting may be stored too.
    assert!(computed.len() <= CHAIN_LEN - stored.len(), "{computed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_after_a_failure_leaves_it_recorded_and_the_sheet_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let mut child = spawn_child(dir.path(), &db, "failing", 0);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut stored, mut failed) = (0, false);
    for line in stdout.lines() {
        let line = line.unwrap();
        failed |= line == "failed remote";
        stored += line.starts_with("stored n") as usize;
        if failed && stored >= 4 {
            child.kill().unwrap(); // SIGKILL, mid-run
            break;
        }
    }
    child.wait().unwrap();
    assert!(
        failed && stored >= 4,
        "the child got far enough before the kill"
    );
    assert_eq!(db.integrity_check(), "ok");

    let (pipeline, remote, last) =
        long_chain_and_remote(dir.path(), 1, Arc::new(AtomicBool::new(false)));
    let store = db.open();
    let sheet = store.open_sheet(&pipeline, "shared").unwrap();
    let history = sheet.history("remote").unwrap();
    let outcomes: Vec<&str> = history.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["failed", "computed"]);
    assert_eq!(
        history[0].error.as_deref(),
        Some("node `remote` failed: connection reset")
    );
    let log: Vec<String> = sheet
        .log("remote", history[0].id)
        .unwrap()
        .lines
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(
        log,
        [
            "calling the remote step",
            "failed: node `remote` failed: connection reset"
        ]
    );
    assert!(sheet.select("remote", history[0].id).is_err());
    assert_eq!(
        *sheet.value(&remote).unwrap(),
        7,
        "the last good result is current"
    );
    let report = sheet.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&last).unwrap(), CHAIN_LEN as u64);
    assert!(
        report.computed().len() <= CHAIN_LEN + 1 - stored,
        "{stored} stored, yet {:?} ran",
        report.computed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_sheet_corrupt_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    // Create the database first so both children migrate nothing.
    drop(db.open());
    let a = spawn_child(dir.path(), &db, "concurrent", 100);
    let b = spawn_child(dir.path(), &db, "concurrent", 200);
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("done"));
    }
    assert_eq!(db.integrity_check(), "ok");
    let results = db.query_i64("SELECT COUNT(*) FROM results WHERE node = 'n23'");
    assert_eq!(results, 2, "both runs are in the history");
    let (pipeline, last) = long_chain(dir.path(), 1);
    let store = db.open();
    let sheet = store.open_sheet(&pipeline, "shared").unwrap();
    let history = sheet.history("n23").unwrap();
    let mut values: Vec<u64> = history
        .iter()
        .map(|h| h.outputs[0].as_u64().unwrap())
        .collect();
    values.sort();
    assert_eq!(values, [124, 224]);
    // Whichever process wrote last, the sheet is consistent: rerunning gives its input's answer.
    let report = sheet.run(Scope::All).await.unwrap();
    let start = *sheet.value(&Output::<u64>::new(0, 0)).unwrap();
    assert_eq!(*report.value(&last).unwrap(), start + CHAIN_LEN as u64);
}

/// Issue 12: an observer that only shows whether the workspace holding it was freed.
struct Probe;

impl daggr::ResultObserver for Probe {
    fn on_result(&self, _node: usize, _name: &str, _result: &daggr::NodeResult) {}
}

/// Resident memory in MB (Linux), for the record, after handing freed heap back to the
/// system (glibc keeps it otherwise, and RSS would not show what was freed).
fn rss_mb() -> Option<f64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only releases free memory of glibc's own heaps.
        unsafe { malloc_trim(0) };
    }
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some((pages * 4096.0 / (1024.0 * 1024.0) * 10.0).round() / 10.0)
}

#[tokio::test]
async fn dropped_sheets_free_their_workspaces() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let c = chain(dir.path());
    let store = db.open();
    let before = rss_mb();
    let mut probes = Vec::new();
    let mut kept = Vec::new();
    for i in 0..200 {
        let name = format!("s{i}");
        let sheet = store.create(&c.pipeline, &name).unwrap();
        if i % 20 == 0 {
            // Some with results (the run holds its workspace while it lasts).
            sheet.run(Scope::All).await.unwrap();
        }
        let probe = Arc::new(Probe);
        probes.push(Arc::downgrade(&probe));
        sheet.pipeline().add_observer(probe);
        kept.push(sheet);
    }
    let open = rss_mb();
    for (i, sheet) in kept.drain(..).enumerate() {
        drop(sheet);
        store.delete("chain", &format!("s{i}")).unwrap();
    }
    let after = rss_mb();
    // The workspace owns its observers: a probe is freed exactly when its workspace is
    // (and with it the sheet's own observer). Before the fix the sheet's observer held the
    // workspace, which held the observer: nothing was ever freed.
    let alive = probes.iter().filter(|p| p.upgrade().is_some()).count();
    assert_eq!(alive, 0, "{alive} of 200 dropped sheets still in memory");
    eprintln!("RELIABILITY sheets leak: 200 sheets open (every 20th run), then dropped and deleted: {alive} workspaces left; RSS {before:?} MB -> {open:?} MB open -> {after:?} MB after");
}

#[tokio::test]
async fn a_deleted_cache_directory_is_a_miss_and_the_next_run_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let cache_dir = dir.path().join("cache");
    let calls = Calls::default();
    let build = |calls: Calls| {
        let mut g = Graph::new("media").cache(daggr::Cache::open(&cache_dir).unwrap());
        let img = g.add(
            FnNode::sync("img", move || {
                calls.hit();
                Image::new(vec![42u8; 30_000], "image/x-raw")
            }),
            (),
        );
        let size = g.add(
            FnNode::sync("size", |i: Image| i.bytes().len() as u64),
            (img,),
        );
        (g.build().unwrap(), img, size)
    };
    let expected = Image::new(vec![42u8; 30_000], "image/x-raw").integrity();
    let (pipeline, img, _size) = build(calls.clone());
    let store = db.open();
    let sheet = store.create(&pipeline, "s").unwrap();
    sheet.run(Scope::All).await.unwrap();
    let report = sheet.run(Scope::All).await.unwrap();
    assert!(
        matches!(report.outcome("img"), Some(daggr::Outcome::Cached(_))),
        "while its blob is there, the current result is reused"
    );
    assert_eq!(calls.get(), 1);

    std::fs::remove_dir_all(&cache_dir).unwrap();
    let report = sheet.run(Scope::All).await.unwrap();
    assert_eq!(
        report.computed(),
        ["img"],
        "its blob is gone: the node runs again; `size` sees the same image and is reused"
    );
    assert_eq!(calls.get(), 2);
    assert!(report.is_success());
    assert_eq!(
        pipeline.cache().get_blob(&expected).unwrap().len(),
        30_000,
        "the image is back in the cache"
    );
    // A new workspace over the same memo does not take the memoized value either, once
    // its blob is gone again.
    std::fs::remove_dir_all(&cache_dir).unwrap();
    let fresh = pipeline.new_workspace();
    let report = fresh.run(Scope::All).await.unwrap();
    assert_eq!(
        report.computed(),
        ["img"],
        "`size` (no media) comes from memory"
    );
    assert_eq!(calls.get(), 3);
    fresh.cache().flush();
    drop(sheet);
    drop(store);
    drop(fresh);
    drop(pipeline);
    // Reopened elsewhere, the sheet's image reads back from the disk.
    let (pipeline, img_out, _) = build(Calls::default());
    let store = db.open();
    let sheet = store.open_sheet(&pipeline, "s").unwrap();
    assert!(sheet.skipped().is_empty(), "{:?}", sheet.skipped());
    assert_eq!(sheet.value(&img_out).unwrap().integrity(), expected);
    let _ = img;
}
