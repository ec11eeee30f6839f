//! Sheets on SQLite (the default backend): the suite every backend runs
//! (`common/sheet_suite.rs`: persistence, history, provenance, fork, GC, logs and
//! failures, SIGKILL mid-run and two processes on one sheet, with real child processes on
//! a real SQLite file), and what only SQLite has (WAL mode, dynamically typed columns).

#[path = "common/postgres_server.rs"]
mod postgres_server;
#[path = "common/sheet_suite.rs"]
mod suite;

use daggr::sheet::SheetStore;
use daggr::Scope;
use suite::{chain, new_db, Backend};

/// The backend the suite runs on in this binary.
const BACKEND: Backend = Backend::Sqlite;

#[test]
fn the_database_is_in_wal_mode_and_records_its_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sheets.db");
    drop(SheetStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn open_url_reads_sqlite_urls_and_paths_and_refuses_unknown_schemes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/sheets.db");
    let store = SheetStore::open_url(&format!("sqlite://{}", path.display())).unwrap();
    assert_eq!(store.path(), path);
    assert_eq!(store.location(), path.display().to_string());
    drop(store);
    assert!(path.is_file());
    let store = SheetStore::open_url(path.to_str().unwrap()).unwrap();
    assert_eq!(store.path(), path);
    let err = SheetStore::open_url("mysql://me:secret@db.example/sheets").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unknown scheme `mysql`"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
async fn a_wrongly_typed_column_is_skipped_and_reported_and_the_rest_of_the_sheet_opens() {
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
    // Damage one result row (an integer column holding text) and one stored input (a
    // blob where text belongs), as a broken tool or a disk error would.
    let conn = rusqlite::Connection::open(dir.path().join("sheets.db")).unwrap();
    let damaged = conn
        .execute(
            "UPDATE results SET run = 'garbage' WHERE node = 'middle'",
            [],
        )
        .unwrap();
    assert_eq!(damaged, 1);
    conn.execute(
        "UPDATE sheet_inputs SET value = X'00FF' WHERE node = 'middle'",
        [],
    )
    .unwrap();
    drop(conn);

    let store = db.open();
    let sheet = store
        .open_sheet(&c.pipeline, "s")
        .expect("a damaged row does not stop the sheet from opening");
    let skipped = sheet.skipped();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let result = skipped.iter().find(|s| s.table == "results").unwrap();
    assert_eq!(result.node.as_deref(), Some("middle"));
    assert!(result.reason.contains("Invalid column type"), "{result:?}");
    assert!(skipped.iter().any(|s| s.table == "sheet_inputs"));
    // The rest is there.
    assert_eq!(*sheet.value(&c.first).unwrap(), 10);
    assert!(sheet.result("last").unwrap().is_some());
    assert!(sheet.result("middle").unwrap().is_none());
    assert!(
        sheet.history("middle").unwrap().is_empty(),
        "the damaged entry is skipped"
    );
    assert_eq!(sheet.history("first").unwrap().len(), 1);
    // And the sheet works on: runs go on numbering after the undamaged ones, the damaged
    // node is computed again (with the default k, its stored override being damaged).
    let report = sheet.run(Scope::All).await.unwrap();
    assert_eq!(report.run, 2);
    assert_eq!(*sheet.value(&c.last).unwrap(), 21);
    eprintln!(
        "RELIABILITY damaged row: 1 result row + 1 input row damaged; opened with {} skipped and reported, other results kept",
        skipped.len()
    );
}

/// A map's per-item outcomes and a choice's provenance (which variant answered, which failed
/// before it) are kept with the result: a sheet opened again has them.
#[tokio::test]
async fn a_sheet_keeps_a_maps_items_and_a_choices_variant() {
    use daggr::{each, Cache, Choice, FnNode, Graph, Map, Outcome, Parts};
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(dir.path());
    let cache_dir = dir.path().join("cache");
    let build = || {
        let mut g = Graph::new("parts").cache(Cache::open(&cache_dir).unwrap());
        let words = g.input("words", vec!["a".to_string(), "bad".into(), "c".into()]);
        let parse = FnNode::try_sync("shout", |w: String| {
            if w == "bad" {
                Err("not this one".to_string())
            } else {
                Ok(w.to_uppercase())
            }
        });
        g.add_map(Map::new(parse).collect_errors(), (each(words),));
        let text = g.input("text", "hi".to_string());
        g.choose(
            Choice::new(
                "caption",
                "down",
                FnNode::try_sync("down", |_: String| Err::<String, _>("down".to_string())),
            )
            .or("up", FnNode::sync("up", |t: String| t.to_uppercase()))
            .fallback(),
            (text,),
        );
        g.build().unwrap()
    };
    let store = db.open();
    let sheet = store.create(&build(), "s").unwrap();
    sheet.run(Scope::All).await.unwrap();
    drop(sheet);
    store.flush();

    let store = db.open();
    let sheet = store.open_sheet(&build(), "s").unwrap();
    let map = sheet.result("shout").unwrap().expect("the map's result");
    let Some(Parts::Items(items)) = map.parts.as_deref() else {
        panic!("the items are kept: {:?}", map.parts);
    };
    assert_eq!(items.len(), 3);
    assert!(matches!(items[0].outcome, Outcome::Computed { .. }));
    let Outcome::Failed(error) = &items[1].outcome else {
        panic!("item 1 failed");
    };
    assert!(error.to_string().contains("not this one"), "{error}");
    let choice = sheet
        .result("caption")
        .unwrap()
        .expect("the choice's result");
    let Some(Parts::Variant { used, failed }) = choice.parts.as_deref() else {
        panic!("the variant is kept: {:?}", choice.parts);
    };
    assert_eq!(used, "up");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "down");
    let history = sheet.history("caption").unwrap();
    assert!(history[0].provenance.parts.is_some());
}
