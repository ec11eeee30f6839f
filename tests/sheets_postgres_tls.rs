//! Sheets on PostgreSQL over TLS, against real servers the harness starts
//! (`common/postgres_server.rs`): one with `ssl=on` and a certificate from a test CA, where
//! a role logs in with a password over TLS only, and one without TLS.
//!
//! - `sslmode=verify-full` with the CA: a sheet is created, run, reopened, its history
//!   read, and a batch run, over connections the server reports encrypted; the password
//!   login (SCRAM) with channel binding.
//! - `verify-full` with another CA, or for another host name: an error naming the host,
//!   and nothing written; `verify-ca` checks the CA and not the name.
//! - `require` encrypts without checking (unless `sslrootcert` names a file, as libpq);
//!   against the server without TLS, `require` and `verify-full` fail before logging in.
//! - `disable` and the default (`prefer`) work on both servers, in clear and encrypted.

#[path = "common/postgres_server.rs"]
mod postgres_server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use daggr::sheet::batch::{BatchOptions, ItemStatus};
use daggr::sheet::SheetStore;
use daggr::{constant, Cache, FnNode, Graph, Output, Pipeline, Scope};
use postgres_server::{PgServer, PASSWORD, PASSWORD_ROLE, USER};

/// `first -> middle(k) -> last`, counting node calls.
struct Chain {
    pipeline: Pipeline,
    last: Output<u64>,
    calls: Arc<AtomicUsize>,
}

fn chain(dir: &std::path::Path) -> Chain {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut g = Graph::new("chain").cache(Cache::open(dir.join("cache")).unwrap());
    let c = calls.clone();
    let first = g.add(
        FnNode::sync("first", move |x: u64| {
            c.fetch_add(1, Ordering::SeqCst);
            x + 1
        })
        .inputs(["x"]),
        (constant(9u64),),
    );
    let c = calls.clone();
    let middle = g.add(
        FnNode::sync("middle", move |x: u64, k: u64| {
            c.fetch_add(1, Ordering::SeqCst);
            x * k
        })
        .inputs(["x", "k"]),
        (first, constant(2u64)),
    );
    let c = calls.clone();
    let last = g.add(
        FnNode::sync("last", move |x: u64| {
            c.fetch_add(1, Ordering::SeqCst);
            x + 1
        }),
        (middle,),
    );
    Chain {
        pipeline: g.build().unwrap(),
        last,
        calls,
    }
}

/// The URL of database `db` on `server` as `user[:password]` at `host`, with `query`.
fn url(server: &PgServer, user: &str, host: &str, db: &str, query: &str) -> String {
    format!("postgres://{user}@{host}:{}/{db}?{query}", server.port)
}

/// The password role, with its password.
fn role() -> String {
    format!("{PASSWORD_ROLE}:{PASSWORD}")
}

/// The TLS server's CA and the other CA, as `sslrootcert` values.
fn cas(server: &PgServer) -> (String, String) {
    let tls = server.tls.as_ref().unwrap();
    (
        tls.ca.display().to_string(),
        tls.other_ca.display().to_string(),
    )
}

/// `(encrypted, in clear)`: the connections to database `db`, as the server sees them.
fn connections(server: &PgServer, db: &str) -> (i64, i64) {
    let out = server.psql(
        "postgres",
        &format!(
            "SELECT COUNT(*) FILTER (WHERE s.ssl), COUNT(*) FILTER (WHERE NOT s.ssl)
             FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.datname = '{db}'"
        ),
    );
    let (tls, clear) = out.split_once('|').unwrap();
    (tls.parse().unwrap(), clear.parse().unwrap())
}

/// Tables in database `db` (none: nothing was written).
fn tables(server: &PgServer, db: &str) -> i64 {
    server
        .psql(
            db,
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'",
        )
        .parse()
        .unwrap()
}

/// The error of opening a store on `url`.
fn open_error(url: &str) -> String {
    match SheetStore::open_url(url) {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_runs_reopens_and_keeps_history_over_tls_with_a_password() {
    let server = postgres_server::shared_tls();
    let (ca, _) = cas(server);
    let db = server.create_database_owned_by(PASSWORD_ROLE);
    let url = url(
        server,
        &role(),
        "127.0.0.1",
        &db,
        // SCRAM over TLS, bound to the server's certificate (or no login at all).
        &format!("sslmode=verify-full&sslrootcert={ca}&channel_binding=require"),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = SheetStore::open_url(&url).unwrap();
    assert!(!store.location().contains(PASSWORD), "{}", store.location());
    let c = chain(dir.path());
    let sheet = store.create(&c.pipeline, "main").unwrap();
    let report = sheet.run(Scope::All).await.unwrap();
    assert_eq!(*report.value(&c.last).unwrap(), 21);
    sheet.set_constant("middle", "k", 5u64).unwrap();
    let report = sheet.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.unsaved());
    assert_eq!(*report.value(&c.last).unwrap(), 51);
    assert_eq!(c.calls.load(Ordering::SeqCst), 5);
    // The readers' and the writer's connections, both encrypted.
    assert_eq!(connections(server, &db), (2, 0));
    drop(sheet);
    drop(store);

    // Another process: everything comes back from the database, over TLS.
    let c2 = chain(dir.path());
    let store = SheetStore::open_url(&url).unwrap();
    let sheet = store.open_sheet(&c2.pipeline, "main").unwrap();
    assert_eq!(*sheet.value(&c2.last).unwrap(), 51);
    let report = sheet.run(Scope::All).await.unwrap();
    assert!(report.computed().is_empty(), "{:?}", report.computed());
    let history = sheet.history("middle").unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].outputs, [serde_json::json!(50)]);
    assert_eq!(history[1].outputs, [serde_json::json!(20)]);
    assert_eq!(c2.calls.load(Ordering::SeqCst), 0);
    assert_eq!(connections(server, &db).1, 0, "nothing in clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_over_tls() {
    let server = postgres_server::shared_tls();
    let (ca, _) = cas(server);
    let db = server.create_database_owned_by(PASSWORD_ROLE);
    let url = url(
        server,
        &role(),
        "localhost",
        &db,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph::new("squares").cache(Cache::open(dir.path().join("cache")).unwrap());
    let n = g.input("n", 0u64);
    let square = g.add(FnNode::sync("square", |n: u64| n * n), (n,));
    g.name_output("square", &square);
    let pipeline = g.build().unwrap();
    let store = SheetStore::open_url(&url).unwrap();
    let inputs: Vec<_> = (0..6u64)
        .map(|n| serde_json::json!({ "n": n }).as_object().unwrap().clone())
        .collect();
    let batch = store.batch(&pipeline, "squares", &inputs).unwrap();
    let summary = pipeline
        .run_batch(&batch, BatchOptions::default().concurrency(2))
        .await
        .unwrap();
    assert!(summary.is_success(), "{:?}", summary.failed);
    assert_eq!(summary.done, 6);
    let items = batch.items().unwrap();
    assert!(items.iter().all(|i| i.status == ItemStatus::Done));
    let (encrypted, clear) = connections(server, &db);
    assert!(encrypted >= 1 && clear == 0, "({encrypted}, {clear})");
}

#[test]
fn verify_full_refuses_another_ca_or_another_host_name_and_writes_nothing() {
    let server = postgres_server::shared_tls();
    let (ca, other_ca) = cas(server);
    let db = server.create_database_owned_by(PASSWORD_ROLE);

    let err = open_error(&url(
        server,
        &role(),
        "127.0.0.1",
        &db,
        &format!("sslmode=verify-full&sslrootcert={other_ca}"),
    ));
    assert!(
        err.contains(&format!(
            "the certificate of 127.0.0.1 does not verify against the CA certificates in {other_ca} (sslmode=verify-full)"
        )),
        "{err}"
    );
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    eprintln!("another CA: {err}");
    assert!(!err.contains(PASSWORD), "{err}");

    // The right CA, another name: connected to 127.0.0.1 (`hostaddr`) as `db.wrong.test`.
    let wrong_host = url(
        server,
        &role(),
        "db.wrong.test",
        &db,
        &format!("hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"),
    );
    let err = open_error(&wrong_host);
    assert!(
        err.contains("the certificate of db.wrong.test does not verify")
            && err.contains("not valid for name \"db.wrong.test\""),
        "{err}"
    );
    eprintln!("another host name: {err}");
    assert_eq!(tables(server, &db), 0, "nothing was written");

    // verify-ca checks the CA, not the name.
    let err = open_error(&url(
        server,
        &role(),
        "127.0.0.1",
        &db,
        &format!("sslmode=verify-ca&sslrootcert={other_ca}"),
    ));
    assert!(err.contains("(sslmode=verify-ca)"), "{err}");
    assert_eq!(tables(server, &db), 0);
    let store = SheetStore::open_url(&wrong_host.replace("verify-full", "verify-ca")).unwrap();
    assert!(store.list("chain").unwrap().is_empty());
    assert!(tables(server, &db) > 0);
}

#[test]
fn require_encrypts_and_a_server_without_tls_is_refused_before_logging_in() {
    let server = postgres_server::shared_tls();
    let (_, other_ca) = cas(server);
    let db = server.create_database_owned_by(PASSWORD_ROLE);
    // No certificate check: encrypted all the same.
    let store =
        SheetStore::open_url(&url(server, &role(), "127.0.0.1", &db, "sslmode=require")).unwrap();
    assert!(store.list("chain").unwrap().is_empty());
    assert_eq!(connections(server, &db), (1, 0));
    drop(store);
    // With a CA file, require checks the chain (libpq's rule).
    let err = open_error(&url(
        server,
        &role(),
        "127.0.0.1",
        &db,
        &format!("sslmode=require&sslrootcert={other_ca}"),
    ));
    assert!(err.contains("(sslmode=require)"), "{err}");

    let plain = postgres_server::shared();
    let db = plain.create_database();
    for mode in ["require", "verify-full"] {
        let err = open_error(&url(
            plain,
            &format!("{USER}:{PASSWORD}"),
            "127.0.0.1",
            &db,
            &format!("sslmode={mode}"),
        ));
        assert!(err.contains("server does not support TLS"), "{mode}: {err}");
        eprintln!("{mode} without TLS: {err}");
        assert!(!err.contains(PASSWORD), "{err}");
    }
    assert_eq!(tables(plain, &db), 0, "nothing was written");
}

#[test]
fn disable_and_the_default_prefer_work_with_and_without_tls() {
    let tls = postgres_server::shared_tls();
    let plain = postgres_server::shared();
    for (server, query, encrypted) in [
        (plain, "sslmode=disable", false),
        (plain, "", false),
        (tls, "sslmode=disable", false),
        (tls, "", true),
    ] {
        let db = server.create_database();
        let store = SheetStore::open_url(&url(server, USER, "127.0.0.1", &db, query)).unwrap();
        assert!(store.list("chain").unwrap().is_empty());
        let expected = if encrypted { (1, 0) } else { (0, 1) };
        assert_eq!(connections(server, &db), expected, "{query:?}");
    }
    // The password role may not log in without TLS: the server says so.
    let db = tls.create_database_owned_by(PASSWORD_ROLE);
    let err = open_error(&url(tls, &role(), "127.0.0.1", &db, "sslmode=disable"));
    assert!(err.contains("rejects connection"), "{err}");
}
