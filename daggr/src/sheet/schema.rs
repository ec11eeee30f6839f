//! The SQLite schema: its migrations, and opening (and migrating) the database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use super::SHEETS_DB_ENV;
use crate::Error;

/// Schema migrations, in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sheets (
    id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    viewport TEXT,
    UNIQUE (pipeline, name)
);
CREATE TABLE sheet_inputs (
    sheet_id INTEGER NOT NULL REFERENCES sheets(id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    port TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (sheet_id, node, port)
);
CREATE TABLE results (
    id INTEGER PRIMARY KEY,
    sheet_id INTEGER NOT NULL REFERENCES sheets(id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    run INTEGER NOT NULL,
    cache_key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    elapsed_ms REAL,
    finished_ms INTEGER NOT NULL,
    outputs TEXT NOT NULL,
    provenance TEXT NOT NULL
);
CREATE INDEX results_by_node ON results (sheet_id, node, id);
CREATE TABLE selections (
    sheet_id INTEGER NOT NULL REFERENCES sheets(id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    PRIMARY KEY (sheet_id, node)
);
"#,
    // 2: each result's log (a `Logs` as JSON; no row when nothing was logged), in a table of
    // its own so listing and pruning results never reads it. `lines` is its line count.
    r#"
CREATE TABLE result_logs (
    result_id INTEGER PRIMARY KEY REFERENCES results(id) ON DELETE CASCADE,
    lines INTEGER NOT NULL,
    log TEXT NOT NULL
);
"#,
    // 3: node positions set by hand in the inspector, stored like the viewport (JSON).
    r#"
ALTER TABLE sheets ADD COLUMN positions TEXT;
"#,
    // 4: failed and cancelled executions are history entries as well: `error` holds the
    // error with its cause chain (NULL for a result), their outputs are `[]` and they are
    // never selected. `attempts`: attempts made, for computed and failed entries (NULL
    // for cached ones and rows written before this migration).
    r#"
ALTER TABLE results ADD COLUMN error TEXT;
ALTER TABLE results ADD COLUMN attempts INTEGER;
"#,
    // 5: opening a sheet asks for its last run (run numbers go on after a restart); without
    // this index that is a scan of all the sheet's results (2 ms at 10 000).
    r#"
CREATE INDEX results_by_run ON results (sheet_id, run);
"#,
];

/// The default database path: `$DAGGR_SHEETS_DB`, else `sheets.db` beside the default cache
/// directory (in the project's `.daggr/`).
pub fn default_db_path() -> PathBuf {
    if let Some(path) = std::env::var_os(SHEETS_DB_ENV) {
        return PathBuf::from(path);
    }
    let cache = crate::cache::default_dir();
    cache
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(cache)
        .join("sheets.db")
}

pub(super) fn db_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Sheet {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

pub(super) fn open_connection(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path).map_err(|e| db_err(path, e))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| db_err(path, e))?;
    // WAL lets readers and one writer work at once across processes; NORMAL sync keeps
    // every commit atomic and durable against a process crash (a power loss may drop the
    // last commits, never corrupt).
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| db_err(path, e))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| db_err(path, e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| db_err(path, e))?;
    Ok(conn)
}

pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| db_err(path, e))?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| db_err(path, e))?;
    let version = version.max(0) as usize;
    if version > MIGRATIONS.len() {
        return Err(Error::Io {
            context: format!(
                "sheet database {} has schema version {version}, newer than this daggr ({})",
                path.display(),
                MIGRATIONS.len()
            ),
            source: std::io::Error::other("upgrade daggr"),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql).map_err(|e| db_err(path, e))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(|e| db_err(path, e))?;
    }
    tx.commit().map_err(|e| db_err(path, e))
}

pub(super) fn now_ms() -> i64 {
    crate::node::event::unix_ms() as i64
}
