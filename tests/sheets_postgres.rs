//! Sheets on PostgreSQL: the suite every backend runs (`common/sheet_suite.rs`: history,
//! provenance, fork, GC, logs and failures, SIGKILL mid-run, two processes on one sheet),
//! each test on a database of its own on a real PostgreSQL server that the harness starts
//! (`common/postgres_server.rs`: a throw-away cluster on a loopback port, installed by
//! `scripts/setup/postgres.sh`), and what only a server has: the same schema as SQLite's,
//! a password kept out of messages, connections the server closed opened again.

#[path = "common/postgres_server.rs"]
mod postgres_server;
#[path = "common/sheet_suite.rs"]
mod suite;

use std::collections::BTreeSet;

use daggr::sheet::SheetStore;
use daggr::Scope;
use suite::{chain, new_db, Backend, Db};

/// The backend the suite runs on in this binary.
const BACKEND: Backend = Backend::Postgres;

/// `(table, column)` and index names of a database's sheet schema.
type Schema = (BTreeSet<(String, String)>, BTreeSet<String>);

fn sqlite_schema(path: &std::path::Path) -> Schema {
    let conn = rusqlite::Connection::open(path).unwrap();
    let columns = conn
        .prepare(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let indexes = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (columns, indexes)
}

fn postgres_schema(name: &str) -> Schema {
    let server = postgres_server::shared();
    let columns = server
        .psql(
            name,
            "SELECT table_name || '|' || column_name FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'daggr_sheets_schema'",
        )
        .lines()
        .map(|l| {
            let (t, c) = l.split_once('|').unwrap();
            (t.to_string(), c.to_string())
        })
        .collect();
    // Named indexes (not those PostgreSQL makes for keys and unique constraints).
    let indexes = server
        .psql(
            name,
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'
             AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'",
        )
        .lines()
        .map(str::to_string)
        .collect();
    (columns, indexes)
}

#[test]
fn the_schema_is_sqlites_table_for_table_and_column_for_column() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Db::new(Backend::Sqlite, dir.path());
    drop(sqlite.open());
    let pg = new_db(dir.path());
    drop(pg.open());
    let name = pg.url.rsplit('/').next().unwrap();
    let (sqlite_columns, sqlite_indexes) = sqlite_schema(&dir.path().join("sheets.db"));
    let (pg_columns, pg_indexes) = postgres_schema(name);
    assert_eq!(pg_columns, sqlite_columns);
    assert_eq!(pg_indexes, sqlite_indexes);
    assert_eq!(pg.schema_version(), sqlite.schema_version());
}

#[tokio::test]
async fn the_password_stays_out_of_messages_and_the_store_says_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    // Trust authentication: the password is not checked, only carried.
    let url = db.url.replacen("postgres@", "postgres:hunter2@", 1);
    let store = SheetStore::open_url(&url).unwrap();
    assert!(store
        .location()
        .starts_with("postgres://postgres@127.0.0.1:"));
    assert!(!store.location().contains("hunter2"));
    assert!(!format!("{store:?}").contains("hunter2"));
    let c = chain(dir.path());
    let sheet = store.create(&c.pipeline, "s").unwrap();
    sheet.run(Scope::All).await.unwrap();
    let err = store.create(&c.pipeline, "s").unwrap_err();
    assert_eq!(err.to_string(), "a sheet named `s` already exists");

    // A database that does not exist: an error naming the server, not the password.
    let missing = url.rsplit_once('/').unwrap().0.to_string() + "/no_such_database";
    let err = SheetStore::open_url(&missing).unwrap_err().to_string();
    assert!(err.contains("no_such_database"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closed_are_opened_again_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let store = db.open();
    let c = chain(dir.path());
    let sheet = store.create(&c.pipeline, "s").unwrap();
    sheet.run(Scope::All).await.unwrap();
    // An administrator (or a failover) ends every connection of the store.
    let terminate = format!(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    );
    let ended: i64 = postgres_server::shared()
        .psql("postgres", &terminate)
        .parse()
        .unwrap();
    assert_eq!(ended, 2, "the readers' and the writer's connections");
    // Reads and writes go on, on new connections.
    assert_eq!(store.list("chain").unwrap().len(), 1);
    sheet.set_constant("middle", "k", 5u64).unwrap();
    let report = sheet.run(Scope::All).await.unwrap();
    assert!(report.is_success(), "{:?}", report.unsaved());
    assert_eq!(*report.value(&c.last).unwrap(), 51);
    assert_eq!(sheet.history("middle").unwrap().len(), 2);
    drop(sheet);
    let again = store.open_sheet(&c.pipeline, "s").unwrap();
    assert_eq!(*again.value(&c.last).unwrap(), 51);
}
