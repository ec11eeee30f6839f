//! Sheets: named, persistent workspaces of a pipeline.
//!
//! A sheet holds its input values and overrides, each node's current result and its
//! whole result history with provenance and log, and view state (the selected history entry
//! per node, the canvas viewport, the node positions set by dragging cards). It lives in an SQLite database (WAL mode, busy timeout),
//! by default `.daggr/sheets.db` in the project. Values are stored in their canonical
//! encoding, in which media are references into the content-addressed cache; outputs
//! larger than [`INLINE_LIMIT`] are stored in the cache too and referenced by integrity.
//!
//! Each result keeps the log its node wrote while computing it ([`crate::NodeContext::log`]
//! and the executor's lines): at most the last [`MAX_LOG_LINES`] lines, the earlier ones
//! counted as dropped. Read a history entry's log with [`Sheet::log`]; a restored or
//! selected result carries its log in [`NodeResult::logs`].
//!
//! A node that fails or is cancelled leaves a history entry too, so a flaky step can be
//! diagnosed after a restart: its outcome is `failed` or `cancelled`, with the error
//! ([`HistoryEntry::error`]), the attempts it made and its log, but no outputs. Such an
//! entry never becomes the node's current result ([`Sheet::select`] refuses it): the last
//! good result stays current. It counts toward the history limit and is forked like any
//! other entry.
//!
//! Results are written by one background thread in batched transactions, so persisting
//! never blocks execution; [`Sheet::run`] waits for its writes before it returns, and a
//! process killed mid-run leaves the database consistent (each transaction is atomic).
//!
//! A write can fail (a full disk): then the batch is written row by row, so only the rows
//! that cannot be written are lost, and [`Sheet::run`] reports each result it could not
//! save, in the database or in the cache, in [`RunReport::unsaved`] and as an
//! [`Event::PersistFailed`](crate::Event::PersistFailed); such a run is not a success
//! ([`RunReport::is_success`]). A row whose large outputs or media could not be put into
//! the cache is not written at all: a row never refers to bytes that are not on disk.
//!
//! Opening a sheet skips what is damaged in its stored rows (a wrongly typed column, JSON
//! that does not parse, an output that no longer fits the node's ports) and keeps the
//! rest; what was skipped is logged and listed by [`Sheet::skipped`].
//!
//! ```
//! use daggr::{sheet::SheetStore, Cache, FnNode, Graph, Scope};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let mut g = Graph::new("doc").cache(Cache::open(dir.path().join("cache"))?);
//! let n = g.input("n", 3u64);
//! let sq = g.add(FnNode::sync("square", |n: u64| n * n), (n,));
//! let pipeline = g.build()?;
//! let store = SheetStore::open(dir.path().join("sheets.db"))?;
//! let sheet = store.open_or_create(&pipeline, "experiment-1")?;
//! sheet.set_input(&n, 4)?;
//! let report = sheet.run(Scope::All).await?;
//! assert_eq!(*report.value(&sq)?, 16);
//! // Reopened later (another process, after a restart), the sheet has its inputs and results.
//! let again = store.open_sheet(&pipeline, "experiment-1")?;
//! assert_eq!(*again.pipeline().value(&sq)?, 16);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::cache::{collect_blob_refs, CacheKey, GcReport};
use crate::exec::{
    NodeFailure, NodeRef, NodeResult, Outcome, PersistTarget, Pipeline, ResultObserver, RunReport,
    Scope, WeakPipeline,
};
use crate::graph::Output;
#[cfg(doc)]
use crate::node::event::MAX_LOG_LINES;
use crate::node::event::{CacheSource, Logs};
use crate::value::{ContentHash, PortValue};
use crate::{Cache, Error};

/// Environment variable that overrides the default database path.
pub const SHEETS_DB_ENV: &str = "DAGGR_SHEETS_DB";

/// Outputs whose encoding is larger than this many bytes are kept in the cache, not inline.
pub const INLINE_LIMIT: usize = 16 * 1024;

/// The default number of history entries kept per node and sheet.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

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

fn db_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Sheet {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

fn open_connection(path: &Path) -> Result<Connection, Error> {
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

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
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

fn now_ms() -> i64 {
    crate::node::event::unix_ms() as i64
}

/// One stored result, ready to insert (built on the executor's path, written by the writer).
struct ResultRow {
    sheet_id: i64,
    node: String,
    run: u64,
    key: String,
    outcome: String,
    elapsed_ms: Option<f64>,
    finished_ms: i64,
    outputs: String,
    provenance: String,
    /// The error of a failed or cancelled execution (then `outputs` is `[]`).
    error: Option<String>,
    /// Attempts made, when the node ran.
    attempts: Option<u32>,
    /// The log's line count and JSON, when something was logged.
    log: Option<(usize, String)>,
    /// Large outputs and media to put into the cache before the row is committed.
    blobs: Vec<Vec<u8>>,
    cache_dir: PathBuf,
}

enum Write {
    Result(Box<ResultRow>),
    Flush(mpsc::Sender<()>),
}

/// Where a result came from and what it was computed from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// Node kind and identity.
    pub identity: String,
    /// Code fingerprint (token hash, or remote revision).
    pub code: String,
    /// Manual version.
    pub version: Option<String>,
    /// Node parameters.
    pub params: serde_json::Value,
    /// Per input port: its name, the content hash it had, and (for constant and generated
    /// inputs) the value itself, so a past result's inputs can be restored.
    pub inputs: Vec<InputRecord>,
}

/// One input of a stored result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InputRecord {
    /// Port name.
    pub port: String,
    /// Content hash of the value.
    pub hash: ContentHash,
    /// The value's encoding, for constants and generated values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Whether the value was generated (a seed, a timestamp).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
}

/// One entry of a node's history in a sheet.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    /// Row id (select it with [`Sheet::select`]).
    pub id: i64,
    /// The run that produced it.
    pub run: u64,
    /// The cache key.
    pub key: String,
    /// `computed`, `cached:memory`, `cached:disk` or `cached:workspace` for a result;
    /// `failed` or `cancelled` for an execution that produced none (see [`HistoryEntry::error`]).
    pub outcome: String,
    /// Time the computation took, if it ran: of its successful attempt for a result, from
    /// its first attempt to the failure for a failed or cancelled entry.
    pub elapsed_ms: Option<f64>,
    /// When it was adopted, or failed (Unix ms).
    pub finished_ms: i64,
    /// Output encodings (JSON; media as blob references; large values as `{"$cached": …}`);
    /// empty for a failed or cancelled entry.
    pub outputs: Vec<serde_json::Value>,
    /// What it was computed from (for a failed entry: what it was computing from; no
    /// inputs when it failed before gathering them).
    pub provenance: Provenance,
    /// The error with its cause chain, for a failed or cancelled entry; `None` for a result.
    pub error: Option<String>,
    /// Attempts made, when the node ran (`None` for a cached result, and for results
    /// stored by a daggr that did not record them).
    pub attempts: Option<u32>,
    /// Whether it is the node's current result in this sheet.
    pub selected: bool,
    /// How many log lines it keeps (read them with [`Sheet::log`]).
    pub log_lines: usize,
}

impl HistoryEntry {
    /// Whether it records a failed or cancelled execution (which has no outputs and cannot
    /// be selected) rather than a result.
    pub fn is_failure(&self) -> bool {
        self.error.is_some()
    }
}

/// Where a node's card sits on the inspector's canvas when it was dragged there: its
/// top-left corner, in canvas coordinates (those of the computed layout).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodePosition {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
}

/// A node's history at a glance.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct HistorySummary {
    /// Results kept (the entries that can be selected).
    pub count: usize,
    /// The selected (current) entry.
    pub selected_id: Option<i64>,
    /// Its position among the results, 1 = newest.
    pub position: usize,
    /// Failed and cancelled entries kept.
    pub failed: usize,
}

/// A sheet's name and timestamps.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SheetInfo {
    /// Database id.
    pub id: i64,
    /// The pipeline it belongs to.
    pub pipeline: String,
    /// Its name.
    pub name: String,
    /// Creation time (Unix ms).
    pub created_ms: i64,
    /// Last change (Unix ms).
    pub updated_ms: i64,
}

/// A stored row that opening a sheet skipped: damaged (a wrongly typed column, JSON that
/// does not parse, media missing from the cache) or no longer fitting the pipeline (a
/// node or port that is gone, a changed output type). The rest of the sheet was opened.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SkippedRow {
    /// The table: `results` (a node's current result) or `sheet_inputs` (an input).
    pub table: &'static str,
    /// The row's id, when it could be read.
    pub id: Option<i64>,
    /// The node, when it could be read.
    pub node: Option<String>,
    /// Why it was skipped.
    pub reason: String,
}

struct Pending {
    count: Mutex<u64>,
    idle: Condvar,
}

/// A result row the writer could not commit, until the run that made it collects it.
struct RowFailure {
    sheet_id: i64,
    run: u64,
    node: String,
    error: String,
}

/// How many uncollected [`RowFailure`]s are kept (a run started outside [`Sheet::run`]
/// never collects its own): the oldest go first.
const MAX_ROW_FAILURES: usize = 10_000;

struct StoreInner {
    path: PathBuf,
    conn: Mutex<Connection>,
    writes: Mutex<Option<mpsc::Sender<Write>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    history_limit: usize,
    pending: Arc<Pending>,
    /// Result rows the writer could not commit (shared with it).
    failures: Arc<Mutex<std::collections::VecDeque<RowFailure>>>,
}

/// A database of sheets. Cheap to clone; open one per process.
#[derive(Clone)]
pub struct SheetStore(Arc<StoreInner>);

impl std::fmt::Debug for SheetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SheetStore")
            .field("path", &self.0.path)
            .finish()
    }
}

impl SheetStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<SheetStore, Error> {
        Self::open_with_history_limit(path, DEFAULT_HISTORY_LIMIT)
    }

    /// Opens the default database ([`default_db_path`]).
    pub fn open_default() -> Result<SheetStore, Error> {
        Self::open(default_db_path())
    }

    /// Opens the database keeping at most `limit` history entries per node and sheet (the
    /// selected entry is always kept).
    pub fn open_with_history_limit(
        path: impl Into<PathBuf>,
        limit: usize,
    ) -> Result<SheetStore, Error> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                context: format!("creating {}", dir.display()),
                source,
            })?;
        }
        let mut conn = open_connection(&path)?;
        migrate(&mut conn, &path)?;
        let writer_conn = open_connection(&path)?;
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(Pending {
            count: Mutex::new(0),
            idle: Condvar::new(),
        });
        let failures = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        let writer = {
            let pending = pending.clone();
            let failures = failures.clone();
            let path = path.clone();
            let limit = limit.max(1);
            std::thread::Builder::new()
                .name("daggr-sheet-writer".into())
                .spawn(move || writer_loop(writer_conn, rx, pending, failures, limit, path))
                .map_err(|source| Error::Io {
                    context: "starting the sheet writer thread".into(),
                    source,
                })?
        };
        Ok(SheetStore(Arc::new(StoreInner {
            path,
            conn: Mutex::new(conn),
            writes: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            history_limit: limit.max(1),
            pending,
            failures,
        })))
    }

    /// The number of history entries kept per node and sheet.
    pub fn history_limit(&self) -> usize {
        self.0.history_limit
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        db_err(&self.0.path, e)
    }

    fn with_conn<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, Error> {
        let mut conn = self.0.conn.lock().unwrap();
        f(&mut conn).map_err(|e| self.err(e))
    }

    /// Waits until every queued result is committed.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.send(Write::Flush(tx)) {
            let _ = rx.recv();
        }
        let mut count = self.0.pending.count.lock().unwrap();
        while *count > 0 {
            count = self.0.pending.idle.wait(count).unwrap();
        }
    }

    /// Takes the result rows of `run` of sheet `sheet_id` that the writer could not commit:
    /// node and error (call after [`SheetStore::flush`]).
    fn take_failures(&self, sheet_id: i64, run: u64) -> Vec<(String, String)> {
        let mut failures = self.0.failures.lock().unwrap();
        let mut taken = Vec::new();
        failures.retain(|f| {
            let mine = f.sheet_id == sheet_id && f.run == run;
            if mine {
                taken.push((f.node.clone(), f.error.clone()));
            }
            !mine
        });
        taken
    }

    fn send(&self, write: Write) -> bool {
        match self.0.writes.lock().unwrap().as_ref() {
            Some(tx) => tx.send(write).is_ok(),
            None => false,
        }
    }

    /// The sheets of a pipeline, by name.
    pub fn list(&self, pipeline: &str) -> Result<Vec<SheetInfo>, Error> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT id, pipeline, name, created_ms, updated_ms FROM sheets WHERE pipeline = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([pipeline], |r| {
                Ok(SheetInfo {
                    id: r.get(0)?,
                    pipeline: r.get(1)?,
                    name: r.get(2)?,
                    created_ms: r.get(3)?,
                    updated_ms: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    fn find(&self, pipeline: &str, name: &str) -> Result<Option<i64>, Error> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT id FROM sheets WHERE pipeline = ?1 AND name = ?2",
                [pipeline, name],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn missing(&self, pipeline: &str, name: &str) -> Error {
        let names: Vec<String> = self
            .list(pipeline)
            .map(|l| l.into_iter().map(|s| s.name).collect())
            .unwrap_or_default();
        Error::UnknownSheet {
            name: name.to_string(),
            suggestion: crate::error::suggest(name, names.iter().map(|s| s.as_str())),
        }
    }

    /// Creates a sheet for `pipeline`; an error if one of that name exists.
    pub fn create(&self, pipeline: &Pipeline, name: &str) -> Result<Sheet, Error> {
        if self.find(pipeline.name(), name)?.is_some() {
            return Err(Error::SheetExists { name: name.into() });
        }
        let now = now_ms();
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO sheets (pipeline, name, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)",
                params![pipeline.name(), name, now],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.attach(pipeline, id, name)
    }

    /// Opens an existing sheet, loading its inputs and current results into a fresh
    /// workspace of `pipeline`.
    pub fn open_sheet(&self, pipeline: &Pipeline, name: &str) -> Result<Sheet, Error> {
        let id = self
            .find(pipeline.name(), name)?
            .ok_or_else(|| self.missing(pipeline.name(), name))?;
        self.attach(pipeline, id, name)
    }

    /// Opens the sheet, creating it if it does not exist (safe when several processes do
    /// this at once: exactly one row is created).
    pub fn open_or_create(&self, pipeline: &Pipeline, name: &str) -> Result<Sheet, Error> {
        let now = now_ms();
        let id = self.with_conn(|c| {
            c.execute(
                "INSERT INTO sheets (pipeline, name, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (pipeline, name) DO NOTHING",
                params![pipeline.name(), name, now],
            )?;
            c.query_row(
                "SELECT id FROM sheets WHERE pipeline = ?1 AND name = ?2",
                [pipeline.name(), name],
                |r| r.get(0),
            )
        })?;
        self.attach(pipeline, id, name)
    }

    /// Renames a sheet.
    pub fn rename(&self, pipeline: &str, from: &str, to: &str) -> Result<(), Error> {
        if self.find(pipeline, to)?.is_some() {
            return Err(Error::SheetExists { name: to.into() });
        }
        let changed = self.with_conn(|c| {
            c.execute(
                "UPDATE sheets SET name = ?3, updated_ms = ?4 WHERE pipeline = ?1 AND name = ?2",
                params![pipeline, from, to, now_ms()],
            )
        })?;
        if changed == 0 {
            return Err(self.missing(pipeline, from));
        }
        Ok(())
    }

    /// Deletes a sheet with its inputs and history (cache entries stay until [`SheetStore::gc_cache`]).
    pub fn delete(&self, pipeline: &str, name: &str) -> Result<(), Error> {
        self.flush();
        let changed = self.with_conn(|c| {
            c.execute(
                "DELETE FROM sheets WHERE pipeline = ?1 AND name = ?2",
                [pipeline, name],
            )
        })?;
        if changed == 0 {
            return Err(self.missing(pipeline, name));
        }
        Ok(())
    }

    /// Copies a sheet (inputs, full history, selections, viewport, node positions) under a
    /// new name and opens it.
    pub fn fork(&self, pipeline: &Pipeline, from: &str, to: &str) -> Result<Sheet, Error> {
        self.flush();
        let source = self
            .find(pipeline.name(), from)?
            .ok_or_else(|| self.missing(pipeline.name(), from))?;
        if self.find(pipeline.name(), to)?.is_some() {
            return Err(Error::SheetExists { name: to.into() });
        }
        let id = self.with_conn(|c| {
            let tx = c.transaction()?;
            let now = now_ms();
            tx.execute(
                "INSERT INTO sheets (pipeline, name, created_ms, updated_ms, viewport, positions)
                 SELECT pipeline, ?2, ?3, ?3, viewport, positions FROM sheets WHERE id = ?1",
                params![source, to, now],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO sheet_inputs (sheet_id, node, port, value)
                 SELECT ?2, node, port, value FROM sheet_inputs WHERE sheet_id = ?1",
                params![source, id],
            )?;
            // Copy history in id order, remembering old → new ids for the selections.
            tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS fork_map (old INTEGER, new INTEGER); DELETE FROM fork_map;")?;
            {
                let mut read = tx.prepare("SELECT id FROM results WHERE sheet_id = ?1 ORDER BY id")?;
                let old_ids: Vec<i64> = read.query_map([source], |r| r.get(0))?.collect::<Result<_, _>>()?;
                let mut copy = tx.prepare(
                    "INSERT INTO results (sheet_id, node, run, cache_key, outcome, elapsed_ms, finished_ms, outputs, provenance, error, attempts)
                     SELECT ?2, node, run, cache_key, outcome, elapsed_ms, finished_ms, outputs, provenance, error, attempts FROM results WHERE id = ?1",
                )?;
                let mut map = tx.prepare("INSERT INTO fork_map (old, new) VALUES (?1, ?2)")?;
                for old in old_ids {
                    copy.execute(params![old, id])?;
                    map.execute(params![old, tx.last_insert_rowid()])?;
                }
            }
            tx.execute(
                "INSERT INTO result_logs (result_id, lines, log)
                 SELECT m.new, l.lines, l.log FROM result_logs l JOIN fork_map m ON m.old = l.result_id",
                [],
            )?;
            tx.execute(
                "INSERT INTO selections (sheet_id, node, result_id)
                 SELECT ?2, s.node, m.new FROM selections s JOIN fork_map m ON m.old = s.result_id WHERE s.sheet_id = ?1",
                params![source, id],
            )?;
            tx.execute_batch("DROP TABLE fork_map;")?;
            tx.commit()?;
            Ok(id)
        })?;
        self.attach(pipeline, id, to)
    }

    /// Removes every cache entry and blob that no sheet in this database refers to.
    /// Other live users of the cache (pipelines without sheets) are not consulted.
    pub fn gc_cache(&self, cache: &Cache) -> Result<GcReport, Error> {
        self.flush();
        let (keys, blobs) = self.with_conn(|c| {
            let mut keys = HashSet::new();
            let mut blobs = HashSet::new();
            let mut stmt = c.prepare("SELECT cache_key, outputs FROM results")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                let outputs: String = row.get(1)?;
                if let Some(k) = blake3::Hash::from_hex(&key)
                    .ok()
                    .map(|h| CacheKey(*h.as_bytes()))
                {
                    keys.insert(k);
                }
                collect_refs(outputs.as_bytes(), &mut blobs);
            }
            let mut stmt = c.prepare("SELECT value FROM sheet_inputs")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let value: String = row.get(0)?;
                collect_refs(value.as_bytes(), &mut blobs);
            }
            Ok((keys, blobs))
        })?;
        cache.gc(&keys, &blobs)
    }

    fn attach(&self, pipeline: &Pipeline, id: i64, name: &str) -> Result<Sheet, Error> {
        self.flush();
        let workspace = pipeline.new_workspace();
        let cache_dir = workspace.cache().dir().to_path_buf();
        // Each row is read on its own: one damaged row (a wrongly typed column) is skipped
        // and reported, and must not keep the sheet, with all its other results, from
        // opening.
        let mut skipped = Vec::new();
        let (inputs, selected, last_run) = self.with_conn(|c| {
            let mut stmt = c.prepare("SELECT rowid, node, port, value FROM sheet_inputs WHERE sheet_id = ?1")?;
            let mut inputs = Vec::new();
            for row in stmt.query_map([id], |r| {
                let rowid: i64 = r.get(0)?;
                let read = (|| -> rusqlite::Result<(String, String, String)> {
                    Ok((r.get(1)?, r.get(2)?, r.get(3)?))
                })();
                Ok(read.map_err(|e| (rowid, e)))
            })? {
                match row? {
                    Ok(input) => inputs.push(input),
                    Err((rowid, e)) => skipped.push(SkippedRow {
                        table: "sheet_inputs",
                        id: Some(rowid),
                        node: None,
                        reason: e.to_string(),
                    }),
                }
            }
            let mut stmt = c.prepare(&format!(
                "SELECT {RESULT_COLUMNS}, l.log FROM selections s JOIN results r ON r.id = s.result_id
                 LEFT JOIN result_logs l ON l.result_id = r.id WHERE s.sheet_id = ?1"
            ))?;
            let mut selected = Vec::new();
            for row in stmt.query_map([id], StoredResult::read_row)? {
                match row? {
                    Ok(stored) => selected.push(stored),
                    Err(damaged) => skipped.push(damaged),
                }
            }
            Ok((inputs, selected, last_run(c, id)?))
        })?;
        for row in &skipped {
            tracing::warn!(sheet = name, table = row.table, id = ?row.id, node = ?row.node, reason = row.reason, "skipping a damaged row");
        }
        workspace.continue_runs_after(last_run);
        for (node, port, value) in inputs {
            if let Err(e) = restore_input(&workspace, &cache_dir, &node, &port, &value) {
                tracing::warn!(sheet = name, node, port, error = %e, "skipping a stored input that no longer fits the pipeline");
                skipped.push(SkippedRow {
                    table: "sheet_inputs",
                    id: None,
                    node: Some(node),
                    reason: crate::node::event::error_chain(&e),
                });
            }
        }
        for stored in selected {
            let node = stored.node.clone();
            if let Err(e) = stored.restore(&workspace, &cache_dir, &self.0.path) {
                tracing::warn!(sheet = name, node, error = %e, "skipping a stored result that no longer fits the pipeline");
                skipped.push(SkippedRow {
                    table: "results",
                    id: Some(stored.id),
                    node: Some(node),
                    reason: crate::node::event::error_chain(&e),
                });
            }
        }
        // The observer must not hold the workspace: the workspace holds the observer, and
        // that cycle would keep every sheet ever opened (each workspace with its event
        // channel) in memory after it is dropped.
        let observer = Arc::new(SheetObserver {
            sheet_id: id,
            store: self.clone(),
            workspace: workspace.downgrade(),
        });
        workspace.add_observer(observer);
        Ok(Sheet {
            store: self.clone(),
            id,
            name: name.to_string(),
            pipeline: workspace,
            skipped,
        })
    }
}

fn collect_refs(encoded: &[u8], into: &mut HashSet<String>) {
    collect_blob_refs(encoded, into);
    if let Ok(serde_json::Value::Array(items)) =
        serde_json::from_slice::<serde_json::Value>(encoded)
    {
        for item in items {
            if let Some(sri) = item.get("$cached").and_then(|v| v.as_str()) {
                into.insert(sri.to_string());
            }
        }
    }
}

fn restore_input(
    workspace: &Pipeline,
    cache_dir: &Path,
    node: &str,
    port: &str,
    encoded: &str,
) -> Result<(), Error> {
    let index = workspace.node_index(node)?;
    let spec = workspace
        .nodes()
        .nth(index)
        .expect("index from node_index")
        .spec();
    let ty = spec
        .inputs
        .iter()
        .find(|p| p.name == port)
        .map(|p| p.ty)
        .ok_or_else(|| Error::UnknownPort {
            node: node.into(),
            direction: "input",
            port: port.into(),
            available: spec.inputs.iter().map(|p| p.name.clone()).collect(),
            suggestion: None,
        })?;
    let value = ty
        .decode_from_disk(encoded.as_bytes(), cache_dir)
        .map_err(|source| Error::Codec {
            node: node.into(),
            port: port.into(),
            type_name: ty.name(),
            source,
        })?;
    workspace.set_constant_value(index, port, value)
}

/// The columns [`StoredResult::from_row`] reads, from `results r LEFT JOIN result_logs l`;
/// queries add a last one, the log itself (`l.log`), or `NULL` where only its size is needed.
const RESULT_COLUMNS: &str = "r.node, r.id, r.run, r.cache_key, r.outcome, r.elapsed_ms, \
     r.finished_ms, r.outputs, r.provenance, l.lines, r.error, r.attempts";

struct StoredResult {
    node: String,
    id: i64,
    run: u64,
    key: String,
    outcome: String,
    elapsed_ms: Option<f64>,
    finished_ms: i64,
    outputs: String,
    provenance: String,
    log_lines: usize,
    error: Option<String>,
    attempts: Option<u32>,
    log: Option<String>,
}

/// A stored log: its JSON, or empty when there is none (or it cannot be read: a log is
/// never worth failing a result over).
fn parse_logs(json: Option<&str>) -> Logs {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

/// The sheet's last run number. `MAX(run)` is read through the index; when a damaged row
/// holds a run that is not an integer (text sorts above every number in SQLite), only the
/// integer runs count.
fn last_run(c: &Connection, id: i64) -> rusqlite::Result<u64> {
    use rusqlite::types::Value as Sql;
    let max: Sql = c.query_row(
        "SELECT MAX(run) FROM results WHERE sheet_id = ?1",
        [id],
        |r| r.get(0),
    )?;
    let max = match max {
        Sql::Null => 0,
        Sql::Integer(run) => run,
        _ => c.query_row(
            "SELECT COALESCE(MAX(run), 0) FROM results WHERE sheet_id = ?1 AND typeof(run) = 'integer'",
            [id],
            |r| r.get(0),
        )?,
    };
    Ok(u64::try_from(max).unwrap_or(0))
}

impl StoredResult {
    /// Like [`StoredResult::from_row`], but a row whose columns cannot be read (a wrongly
    /// typed column) is returned as skipped instead of ending the whole query.
    fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredResult, SkippedRow>> {
        Ok(StoredResult::from_row(r).map_err(|e| SkippedRow {
            table: "results",
            id: r.get(1).ok(),
            node: r.get(0).ok(),
            reason: e.to_string(),
        }))
    }

    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(StoredResult {
            node: r.get(0)?,
            id: r.get(1)?,
            run: r.get::<_, i64>(2)? as u64,
            key: r.get(3)?,
            outcome: r.get(4)?,
            elapsed_ms: r.get(5)?,
            finished_ms: r.get(6)?,
            outputs: r.get(7)?,
            provenance: r.get(8)?,
            log_lines: r.get::<_, Option<i64>>(9)?.unwrap_or(0).max(0) as usize,
            error: r.get(10)?,
            attempts: r.get::<_, Option<i64>>(11)?.map(|a| a.max(0) as u32),
            log: r.get(12)?,
        })
    }

    fn restore(&self, workspace: &Pipeline, cache_dir: &Path, db: &Path) -> Result<(), Error> {
        let index = workspace.node_index(&self.node)?;
        let spec = workspace
            .nodes()
            .nth(index)
            .expect("index from node_index")
            .spec();
        let bad = |why: String| Error::Io {
            context: format!(
                "sheet database {}: result {} of node `{}`",
                db.display(),
                self.id,
                self.node
            ),
            source: std::io::Error::other(why),
        };
        let outputs: Vec<serde_json::Value> =
            serde_json::from_str(&self.outputs).map_err(|e| bad(e.to_string()))?;
        if outputs.len() != spec.outputs.len() {
            return Err(bad("its outputs no longer match the node's ports".into()));
        }
        let mut values = Vec::with_capacity(outputs.len());
        for (json, port) in outputs.iter().zip(&spec.outputs) {
            let encoded = match json.get("$cached").and_then(|v| v.as_str()) {
                Some(sri) => {
                    let sri: ssri::Integrity =
                        sri.parse().map_err(|e: ssri::Error| bad(e.to_string()))?;
                    cacache::read_hash_sync(cache_dir, &sri).map_err(|e| bad(e.to_string()))?
                }
                None => serde_json::to_vec(json).map_err(|e| bad(e.to_string()))?,
            };
            let value = port
                .ty
                .decode_from_disk(&encoded, cache_dir)
                .map_err(|source| Error::Codec {
                    node: self.node.clone(),
                    port: port.name.clone(),
                    type_name: port.ty.name(),
                    source,
                })?;
            values.push(value);
        }
        let provenance: Provenance =
            serde_json::from_str(&self.provenance).map_err(|e| bad(e.to_string()))?;
        let generated = provenance
            .inputs
            .iter()
            .filter(|i| i.generated)
            .filter_map(|i| {
                let port = spec.inputs.iter().find(|p| p.name == i.port)?;
                let encoded = serde_json::to_vec(i.value.as_ref()?).ok()?;
                Some((
                    i.port.clone(),
                    port.ty.decode_from_disk(&encoded, cache_dir).ok()?,
                ))
            })
            .collect();
        let key = blake3::Hash::from_hex(&self.key)
            .map(|h| CacheKey(*h.as_bytes()))
            .map_err(|e| bad(e.to_string()))?;
        workspace.restore_result(
            index,
            NodeResult {
                key,
                inputs: provenance.inputs.iter().map(|i| i.hash).collect(),
                generated,
                outputs: values.into(),
                outcome: outcome_from_text(&self.outcome, self.elapsed_ms, self.attempts),
                run: self.run,
                finished_unix_ms: self.finished_ms as u64,
                logs: Arc::new(parse_logs(self.log.as_deref())),
            },
        )
    }
}

fn outcome_text(outcome: &Outcome) -> (String, Option<f64>) {
    match outcome {
        Outcome::Computed { elapsed, .. } => {
            ("computed".into(), Some(elapsed.as_secs_f64() * 1000.0))
        }
        Outcome::Cached(CacheSource::Memory) => ("cached:memory".into(), None),
        Outcome::Cached(CacheSource::Disk) => ("cached:disk".into(), None),
        Outcome::Cached(CacheSource::Workspace) => ("cached:workspace".into(), None),
        Outcome::Failed(_) => ("failed".into(), None),
        Outcome::Skipped { .. } => ("skipped".into(), None),
    }
}

/// The outcome of a stored result (never a failed entry: those are not restored).
fn outcome_from_text(text: &str, elapsed_ms: Option<f64>, attempts: Option<u32>) -> Outcome {
    match text {
        "computed" => Outcome::Computed {
            elapsed: Duration::from_secs_f64(elapsed_ms.unwrap_or(0.0) / 1000.0),
            attempts: attempts.unwrap_or(1),
        },
        "cached:memory" => Outcome::Cached(CacheSource::Memory),
        "cached:disk" => Outcome::Cached(CacheSource::Disk),
        _ => Outcome::Cached(CacheSource::Workspace),
    }
}

/// Turns adopted results into rows for the writer thread.
struct SheetObserver {
    sheet_id: i64,
    store: SheetStore,
    /// Weak: the workspace holds this observer (see [`SheetStore::attach`]).
    workspace: WeakPipeline,
}

impl SheetObserver {
    fn queue(&self, row: ResultRow) {
        *self.store.0.pending.count.lock().unwrap() += 1;
        if !self.store.send(Write::Result(Box::new(row))) {
            self.store.0.pending.done();
        }
    }
}

impl ResultObserver for SheetObserver {
    fn on_result(&self, node: usize, name: &str, result: &NodeResult) {
        // A result the sheet already has (restored, or reused because its key matched) is
        // not a new history entry.
        if matches!(result.outcome, Outcome::Cached(CacheSource::Workspace)) {
            return;
        }
        // The workspace is alive while it runs (its run holds it) and so tells observers.
        let Some(workspace) = self.workspace.upgrade() else {
            return;
        };
        self.queue(result_row(self.sheet_id, &workspace, node, name, result));
    }

    fn on_failure(&self, node: usize, name: &str, failure: &NodeFailure) {
        let Some(workspace) = self.workspace.upgrade() else {
            return;
        };
        self.queue(failure_row(self.sheet_id, &workspace, node, name, failure));
    }
}

fn result_row(
    sheet_id: i64,
    workspace: &Pipeline,
    node: usize,
    name: &str,
    result: &NodeResult,
) -> ResultRow {
    let mut outputs = Vec::with_capacity(64);
    let mut blobs = Vec::new();
    outputs.push(b'[');
    for (i, value) in result.outputs.iter().enumerate() {
        if i > 0 {
            outputs.push(b',');
        }
        let encoded = value.encoded();
        if encoded.len() > INLINE_LIMIT {
            let sri = ssri::Integrity::from(encoded);
            outputs.extend_from_slice(format!("{{\"$cached\":\"{sri}\"}}").as_bytes());
            blobs.push(encoded.to_vec());
        } else {
            outputs.extend_from_slice(encoded);
        }
        // Media bytes of never-cached nodes are not in the cache yet: the sheet needs them.
        for blob in value.blobs().iter() {
            blobs.push(blob.bytes.to_vec());
        }
    }
    outputs.push(b']');
    let (outcome, elapsed_ms) = outcome_text(&result.outcome);
    let attempts = match result.outcome {
        Outcome::Computed { attempts, .. } => Some(attempts),
        _ => None,
    };
    ResultRow {
        sheet_id,
        node: name.to_string(),
        run: result.run,
        key: result.key.to_hex(),
        outcome,
        elapsed_ms,
        finished_ms: result.finished_unix_ms as i64,
        outputs: String::from_utf8(outputs).unwrap_or_default(),
        provenance: provenance_json(workspace, node, &result.inputs, &result.generated),
        error: None,
        attempts,
        log: log_column(&result.logs),
        blobs,
        cache_dir: workspace.cache().dir().to_path_buf(),
    }
}

/// A failed or cancelled execution: no outputs, so nothing for the cache either.
fn failure_row(
    sheet_id: i64,
    workspace: &Pipeline,
    node: usize,
    name: &str,
    failure: &NodeFailure,
) -> ResultRow {
    ResultRow {
        sheet_id,
        node: name.to_string(),
        run: failure.run,
        // Empty when it failed before its key was known; the cache is never asked for it.
        key: failure.key.map(|k| k.to_hex()).unwrap_or_default(),
        outcome: if failure.cancelled {
            "cancelled"
        } else {
            "failed"
        }
        .into(),
        elapsed_ms: (failure.attempts > 0).then_some(failure.elapsed.as_secs_f64() * 1000.0),
        finished_ms: failure.finished_unix_ms as i64,
        outputs: "[]".into(),
        provenance: provenance_json(workspace, node, &failure.inputs, &failure.generated),
        error: Some(failure.error.clone()),
        attempts: Some(failure.attempts),
        log: log_column(&failure.logs),
        blobs: Vec::new(),
        cache_dir: workspace.cache().dir().to_path_buf(),
    }
}

/// A log as stored in `result_logs`: its line count and JSON, or `None` when nothing was
/// logged (then no row is written).
fn log_column(logs: &Logs) -> Option<(usize, String)> {
    (!logs.is_empty()).then(|| {
        (
            logs.lines.len(),
            serde_json::to_string(logs).unwrap_or_default(),
        )
    })
}

/// The provenance of an execution of `node` from inputs with these hashes (empty when it
/// never got its inputs), as JSON.
fn provenance_json(
    workspace: &Pipeline,
    node: usize,
    hashes: &[ContentHash],
    generated: &[(String, crate::Value)],
) -> String {
    let spec = workspace
        .nodes()
        .nth(node)
        .expect("observer gets valid indices")
        .spec();
    let bindings_const = |port: usize| workspace.is_constant_input(node, port);
    let inputs = spec
        .inputs
        .iter()
        .enumerate()
        .zip(hashes)
        .map(|((i, p), hash)| {
            let generated = generated.iter().find(|(g, _)| g == &p.name);
            let value = match generated {
                Some((_, v)) => Some(v.to_json()),
                None if bindings_const(i) => workspace
                    .constant_value(node, &p.name)
                    .ok()
                    .flatten()
                    .filter(|v| v.hash() == *hash && v.encoded().len() <= INLINE_LIMIT)
                    .map(|v| v.to_json()),
                None => None,
            };
            InputRecord {
                port: p.name.clone(),
                hash: *hash,
                value,
                generated: generated.is_some(),
            }
        })
        .collect();
    let provenance = Provenance {
        identity: format!("{}:{}", spec.kind, spec.identity),
        code: spec.code_fingerprint.clone(),
        version: spec.config.version.clone(),
        params: spec.params.clone(),
        inputs,
    };
    serde_json::to_string(&provenance).unwrap_or_default()
}

impl Pending {
    fn done(&self) {
        let mut count = self.count.lock().unwrap();
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.idle.notify_all();
        }
    }
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        self.writes.lock().unwrap().take();
        if let Some(handle) = self.writer.lock().unwrap().take() {
            let _ = handle.join();
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Write>,
    pending: Arc<Pending>,
    failures: Arc<Mutex<std::collections::VecDeque<RowFailure>>>,
    limit: usize,
    path: PathBuf,
) {
    while let Ok(first) = rx.recv() {
        // Batch whatever else is queued into the same transaction.
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let mut acks = Vec::new();
        let rows: Vec<ResultRow> = batch
            .into_iter()
            .filter_map(|w| match w {
                Write::Result(row) => Some(*row),
                Write::Flush(ack) => {
                    acks.push(ack);
                    None
                }
            })
            .collect();
        let count = rows.len();
        if count > 0 {
            let failed = write_rows(&mut conn, &rows, limit);
            if !failed.is_empty() {
                let mut failures = failures.lock().unwrap();
                for (i, error) in failed {
                    let row = &rows[i];
                    tracing::warn!(db = %path.display(), node = row.node, run = row.run, error, "writing a sheet row failed");
                    // A failed execution's row is history, not a result: it is logged only.
                    if row.error.is_none() {
                        if failures.len() == MAX_ROW_FAILURES {
                            failures.pop_front();
                        }
                        failures.push_back(RowFailure {
                            sheet_id: row.sheet_id,
                            run: row.run,
                            node: row.node.clone(),
                            error,
                        });
                    }
                }
            }
        }
        for _ in 0..count {
            pending.done();
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Writes a batch of rows, returning those it could not write (by index, with the error)
/// and keeping every other one. Content first, rows second: a row whose large outputs or
/// media could not be put into the cache is not written (a row never refers to bytes that
/// are not on disk). The rows go in one transaction; if it fails (a full disk), each row
/// is tried in a transaction of its own, so one that cannot be written costs only itself.
fn write_rows(conn: &mut Connection, rows: &[ResultRow], limit: usize) -> Vec<(usize, String)> {
    let mut failed = Vec::new();
    let mut ready = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        match write_blobs(row) {
            Ok(()) => ready.push(i),
            Err(e) => failed.push((
                i,
                format!("writing its outputs to the cache: {}", chain(&e)),
            )),
        }
    }
    let batch: Vec<&ResultRow> = ready.iter().map(|&i| &rows[i]).collect();
    if !batch.is_empty() && insert_rows(conn, &batch, limit).is_err() {
        for i in ready {
            if let Err(e) = insert_rows(conn, &[&rows[i]], limit) {
                failed.push((i, format!("writing the sheet database: {}", chain(&e))));
            }
        }
    }
    failed.sort_by_key(|(i, _)| *i);
    failed
}

/// An error with its causes, `outer: inner` (a cacache I/O error's display is only its
/// context; "No space left on device" is its source).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    crate::node::event::error_chain(error)
}

/// Puts a row's large outputs and media into the cache (those not there yet).
fn write_blobs(row: &ResultRow) -> Result<(), cacache::Error> {
    for blob in &row.blobs {
        let sri = ssri::Integrity::from(blob);
        if !cacache::exists_sync(&row.cache_dir, &sri) {
            cacache::write_hash_sync(&row.cache_dir, blob)?;
        }
    }
    Ok(())
}

/// Inserts rows in one transaction (all or none), selecting each result and pruning the
/// nodes' histories to `limit`.
fn insert_rows(conn: &mut Connection, rows: &[&ResultRow], limit: usize) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO results (sheet_id, node, run, cache_key, outcome, elapsed_ms, finished_ms, outputs, provenance, error, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut select = tx.prepare_cached(
            "INSERT INTO selections (sheet_id, node, result_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (sheet_id, node) DO UPDATE SET result_id = excluded.result_id",
        )?;
        let mut prune = tx.prepare_cached(
            "DELETE FROM results WHERE sheet_id = ?1 AND node = ?2 AND id NOT IN (
                 SELECT id FROM results WHERE sheet_id = ?1 AND node = ?2 ORDER BY id DESC LIMIT ?3)
             AND id NOT IN (SELECT result_id FROM selections WHERE sheet_id = ?1 AND node = ?2)",
        )?;
        let mut insert_log = tx.prepare_cached(
            "INSERT INTO result_logs (result_id, lines, log) VALUES (?1, ?2, ?3)",
        )?;
        let mut touch = tx.prepare_cached("UPDATE sheets SET updated_ms = ?2 WHERE id = ?1")?;
        let mut touched = HashSet::new();
        for row in rows {
            insert.execute(params![
                row.sheet_id,
                row.node,
                row.run as i64,
                row.key,
                row.outcome,
                row.elapsed_ms,
                row.finished_ms,
                row.outputs,
                row.provenance,
                row.error,
                row.attempts
            ])?;
            let id = tx.last_insert_rowid();
            if let Some((lines, log)) = &row.log {
                insert_log.execute(params![id, *lines as i64, log])?;
            }
            // A failed execution has no outputs: the last good result stays current.
            if row.error.is_none() {
                select.execute(params![row.sheet_id, row.node, id])?;
            }
            touched.insert((row.sheet_id, row.node.clone()));
        }
        for (sheet_id, node) in &touched {
            prune.execute(params![sheet_id, node, limit as i64])?;
        }
        for sheet_id in touched.iter().map(|(s, _)| *s).collect::<HashSet<_>>() {
            touch.execute(params![sheet_id, now_ms()])?;
        }
    }
    tx.commit()
}

/// A sheet: a named, persistent workspace of one pipeline.
pub struct Sheet {
    store: SheetStore,
    id: i64,
    name: String,
    pipeline: Pipeline,
    /// What opening it skipped.
    skipped: Vec<SkippedRow>,
}

impl std::fmt::Debug for Sheet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sheet")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish()
    }
}

impl Sheet {
    /// The sheet's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The sheet's workspace: its current inputs and results, its event stream.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The stored rows that opening this sheet skipped, because they were damaged or no
    /// longer fit the pipeline (each was also logged as a warning); empty when everything
    /// was restored. A node whose current result was skipped has none (or, for a skipped
    /// input, the graph's default), and its next run computes it again.
    pub fn skipped(&self) -> &[SkippedRow] {
        &self.skipped
    }

    /// Runs `scope` in the sheet's workspace and waits until its results are stored.
    ///
    /// A result that could not be stored (a full disk) does not make this an error: the
    /// report lists it in [`RunReport::unsaved`] (with [`PersistTarget::Sheet`] when the
    /// sheet has no history entry for it, [`PersistTarget::Cache`] when the cache has no
    /// entry), each is sent as an [`Event::PersistFailed`](crate::Event::PersistFailed),
    /// and [`RunReport::is_success`] is false. Every result not listed was committed.
    pub async fn run(&self, scope: Scope) -> Result<RunReport, Error> {
        self.run_with_cancel(scope, tokio_util::sync::CancellationToken::new())
            .await
    }

    /// Like [`Sheet::run`], stopping when `cancel` fires.
    pub async fn run_with_cancel(
        &self,
        scope: Scope,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<RunReport, Error> {
        let mut report = self.pipeline.run_with_cancel(scope, cancel).await?;
        let store = self.store.clone();
        let cache = self.pipeline.cache().clone();
        let (sheet_id, run) = (self.id, report.run);
        let failed_rows = tokio::task::spawn_blocking(move || {
            // Large outputs referenced by rows must be in the cache too.
            cache.flush();
            store.flush();
            store.take_failures(sheet_id, run)
        })
        .await
        .map_err(|e| Error::Io {
            context: "waiting for the sheet writer".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        // What the run computed but could not keep is part of its outcome, not only a log.
        self.pipeline.report_cache_failures(&mut report);
        for (node, error) in failed_rows {
            if let Ok(n) = self.pipeline.node_index(&node) {
                self.pipeline
                    .report_unsaved(&mut report, n, PersistTarget::Sheet, error);
            }
        }
        Ok(report)
    }

    /// Sets a pipeline input and stores it in the sheet. Its downstream cone becomes stale.
    pub fn set_input<T: PortValue>(&self, input: &Output<T>, value: T) -> Result<(), Error> {
        self.pipeline.set_input(input, value)?;
        let name = self.pipeline.node_name(input.node).to_string();
        self.save_constant(&name, "value")
    }

    /// Sets a constant input of any node (an override) and stores it in the sheet.
    pub fn set_constant<T: PortValue>(
        &self,
        node: &str,
        port: &str,
        value: T,
    ) -> Result<(), Error> {
        self.pipeline.set_constant(node, port, value)?;
        self.save_constant(node, port)
    }

    /// Sets a constant input from an erased value (checked against the port's type) and
    /// stores it in the sheet.
    pub fn set_constant_value(
        &self,
        node: &str,
        port: &str,
        value: crate::Value,
    ) -> Result<(), Error> {
        self.pipeline.set_constant_value(node, port, value)?;
        self.save_constant(node, port)
    }

    fn save_constant(&self, node: &str, port: &str) -> Result<(), Error> {
        let value = self
            .pipeline
            .constant_value(node, port)?
            .expect("a constant was just set");
        for blob in value.blobs().iter() {
            self.pipeline.cache().put_blob(&blob.bytes)?;
        }
        let encoded = String::from_utf8_lossy(value.encoded()).into_owned();
        self.store.with_conn(|c| {
            c.execute(
                "INSERT INTO sheet_inputs (sheet_id, node, port, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sheet_id, node, port) DO UPDATE SET value = excluded.value",
                params![self.id, node, port, encoded],
            )?;
            c.execute(
                "UPDATE sheets SET updated_ms = ?2 WHERE id = ?1",
                params![self.id, now_ms()],
            )?;
            Ok(())
        })
    }

    /// Puts a constant input (a pipeline input or an override) back to the value the graph
    /// was built with, and forgets the sheet's stored value.
    pub fn reset_constant(&self, node: &str, port: &str) -> Result<(), Error> {
        self.pipeline.reset_constant(node, port)?;
        self.store.with_conn(|c| {
            c.execute(
                "DELETE FROM sheet_inputs WHERE sheet_id = ?1 AND node = ?2 AND port = ?3",
                params![self.id, node, port],
            )
        })?;
        Ok(())
    }

    /// The stored inputs and overrides: `(node, port, encoded value)`.
    pub fn stored_inputs(&self) -> Result<Vec<(String, String, serde_json::Value)>, Error> {
        self.store.with_conn(|c| {
            let mut stmt =
                c.prepare("SELECT node, port, value FROM sheet_inputs WHERE sheet_id = ?1 ORDER BY node, port")?;
            let rows = stmt.query_map([self.id], |r| {
                let text: String = r.get(2)?;
                Ok((r.get(0)?, r.get(1)?, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)))
            })?;
            rows.collect()
        })
    }

    /// A node's history in this sheet, newest first: its results and its failed and
    /// cancelled runs ([`HistoryEntry::is_failure`]).
    pub fn history(&self, node: &str) -> Result<Vec<HistoryEntry>, Error> {
        self.pipeline.node_index(node)?;
        self.store.flush();
        self.store.with_conn(|c| {
            let selected: Option<i64> = c
                .query_row(
                    "SELECT result_id FROM selections WHERE sheet_id = ?1 AND node = ?2",
                    params![self.id, node],
                    |r| r.get(0),
                )
                .optional()?;
            // The logs themselves stay in the database: only their line counts are listed.
            let mut stmt = c.prepare(&format!(
                "SELECT {RESULT_COLUMNS}, NULL FROM results r LEFT JOIN result_logs l ON l.result_id = r.id
                 WHERE r.sheet_id = ?1 AND r.node = ?2 ORDER BY r.id DESC"
            ))?;
            let rows = stmt.query_map(params![self.id, node], StoredResult::read_row)?;
            let mut out = Vec::new();
            for row in rows {
                let row = match row? {
                    Ok(row) => row,
                    Err(damaged) => {
                        // One damaged entry must not hide the rest of the history.
                        tracing::warn!(sheet = self.name, id = ?damaged.id, reason = damaged.reason, "skipping a damaged history entry");
                        continue;
                    }
                };
                out.push(HistoryEntry {
                    id: row.id,
                    run: row.run,
                    key: row.key,
                    outcome: row.outcome,
                    elapsed_ms: row.elapsed_ms,
                    finished_ms: row.finished_ms,
                    outputs: serde_json::from_str(&row.outputs).unwrap_or_default(),
                    provenance: serde_json::from_str(&row.provenance).unwrap_or(Provenance {
                        identity: String::new(),
                        code: String::new(),
                        version: None,
                        params: serde_json::Value::Null,
                        inputs: Vec::new(),
                    }),
                    selected: Some(row.id) == selected,
                    error: row.error,
                    attempts: row.attempts,
                    log_lines: row.log_lines,
                });
            }
            Ok(out)
        })
    }

    /// Per node: the number of results kept, the selected entry's id and its position among
    /// the results (1 = newest), and the number of failed and cancelled entries kept. One
    /// query for the whole sheet.
    pub fn history_summary(
        &self,
    ) -> Result<std::collections::HashMap<String, HistorySummary>, Error> {
        self.store.with_conn(|c| {
            // A failed entry (`error` set) is no result: counted apart, never a position.
            let mut stmt = c.prepare(
                "SELECT r.node, SUM(r.error IS NULL), s.result_id,
                        SUM(r.error IS NULL AND r.id >= COALESCE(s.result_id, 0)),
                        SUM(r.error IS NOT NULL)
                 FROM results r LEFT JOIN selections s ON s.sheet_id = r.sheet_id AND s.node = r.node
                 WHERE r.sheet_id = ?1 GROUP BY r.node",
            )?;
            let rows = stmt.query_map([self.id], |r| {
                let count: i64 = r.get(1)?;
                let position: i64 = r.get(3)?;
                let failed: i64 = r.get(4)?;
                Ok((
                    r.get::<_, String>(0)?,
                    HistorySummary {
                        count: count as usize,
                        selected_id: r.get(2)?,
                        position: position as usize,
                        failed: failed as usize,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    /// Makes history entry `result_id` the node's current result; downstream nodes then
    /// see its value (and become stale if it differs from what they were computed from).
    /// A failed or cancelled entry has no outputs: selecting it is an
    /// [`Error::NotSelectable`], and the current result stays.
    pub fn select(&self, node: &str, result_id: i64) -> Result<(), Error> {
        self.store.flush();
        let stored = self.store.with_conn(|c| {
            c.query_row(
                &format!(
                    "SELECT {RESULT_COLUMNS}, l.log FROM results r LEFT JOIN result_logs l ON l.result_id = r.id
                     WHERE r.sheet_id = ?1 AND r.node = ?2 AND r.id = ?3"
                ),
                params![self.id, node, result_id],
                StoredResult::from_row,
            )
            .optional()
        })?;
        let stored = stored.ok_or_else(|| Error::NoResult {
            node: format!("{node} (history entry {result_id})"),
        })?;
        if stored.error.is_some() {
            return Err(Error::NotSelectable {
                node: node.to_string(),
                entry: result_id,
                outcome: stored.outcome,
                run: stored.run,
            });
        }
        let cache_dir = self.pipeline.cache().dir().to_path_buf();
        stored.restore(&self.pipeline, &cache_dir, self.store.path())?;
        self.store.with_conn(|c| {
            c.execute(
                "INSERT INTO selections (sheet_id, node, result_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sheet_id, node) DO UPDATE SET result_id = excluded.result_id",
                params![self.id, node, result_id],
            )
        })?;
        Ok(())
    }

    /// The log of history entry `result_id` of `node`, a result or a failed execution
    /// (empty when nothing was logged, or when the result came from the cache).
    pub fn log(&self, node: &str, result_id: i64) -> Result<Logs, Error> {
        self.pipeline.node_index(node)?;
        self.store.flush();
        let row: Option<Option<String>> = self.store.with_conn(|c| {
            c.query_row(
                "SELECT l.log FROM results r LEFT JOIN result_logs l ON l.result_id = r.id
                 WHERE r.sheet_id = ?1 AND r.node = ?2 AND r.id = ?3",
                params![self.id, node, result_id],
                |r| r.get(0),
            )
            .optional()
        })?;
        let log = row.ok_or_else(|| Error::NoResult {
            node: format!("{node} (history entry {result_id})"),
        })?;
        Ok(parse_logs(log.as_deref()))
    }

    /// Restores the constant inputs a history entry was computed from (the inspector's
    /// "restore the inputs of a past result").
    pub fn restore_inputs_of(&self, node: &str, result_id: i64) -> Result<(), Error> {
        let entry = self
            .history(node)?
            .into_iter()
            .find(|e| e.id == result_id)
            .ok_or_else(|| Error::NoResult {
                node: format!("{node} (history entry {result_id})"),
            })?;
        let cache_dir = self.pipeline.cache().dir().to_path_buf();
        for input in entry.provenance.inputs.iter().filter(|i| !i.generated) {
            if let Some(value) = &input.value {
                let encoded = serde_json::to_string(value).unwrap_or_default();
                restore_input(&self.pipeline, &cache_dir, node, &input.port, &encoded)?;
                self.save_constant(node, &input.port)?;
            }
        }
        Ok(())
    }

    /// The canvas viewport (any JSON the inspector stores).
    pub fn viewport(&self) -> Result<Option<serde_json::Value>, Error> {
        let text: Option<String> = self.store.with_conn(|c| {
            c.query_row(
                "SELECT viewport FROM sheets WHERE id = ?1",
                [self.id],
                |r| r.get(0),
            )
        })?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Stores the canvas viewport.
    pub fn set_viewport(&self, viewport: &serde_json::Value) -> Result<(), Error> {
        self.store.with_conn(|c| {
            c.execute(
                "UPDATE sheets SET viewport = ?2 WHERE id = ?1",
                params![self.id, viewport.to_string()],
            )
        })?;
        Ok(())
    }

    /// The node positions set by hand in the inspector, by node name; nodes not listed (and
    /// nodes the pipeline no longer has) keep the computed layout.
    pub fn node_positions(&self) -> Result<BTreeMap<String, NodePosition>, Error> {
        let text: Option<String> = self.store.with_conn(|c| {
            c.query_row(
                "SELECT positions FROM sheets WHERE id = ?1",
                [self.id],
                |r| r.get(0),
            )
        })?;
        let mut positions: BTreeMap<String, NodePosition> = text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        positions.retain(|node, _| self.pipeline.node_index(node).is_ok());
        Ok(positions)
    }

    /// Stores the node positions set by hand, replacing the previous ones; an empty map
    /// puts every node back on the computed layout. Every node must be in the pipeline, and
    /// positions that are not finite are not kept.
    pub fn set_node_positions(
        &self,
        positions: &BTreeMap<String, NodePosition>,
    ) -> Result<(), Error> {
        for node in positions.keys() {
            self.pipeline.node_index(node)?;
        }
        let kept: BTreeMap<&String, &NodePosition> = positions
            .iter()
            .filter(|(_, p)| p.x.is_finite() && p.y.is_finite())
            .collect();
        let text = (!kept.is_empty())
            .then(|| serde_json::to_string(&kept).expect("finite numbers serialize"));
        self.store.with_conn(|c| {
            c.execute(
                "UPDATE sheets SET positions = ?2 WHERE id = ?1",
                params![self.id, text],
            )
        })?;
        Ok(())
    }

    /// Names of the nodes whose current value is stale or missing.
    pub fn stale_nodes(&self) -> Vec<String> {
        self.pipeline.stale_nodes()
    }

    /// The node's current result in this sheet.
    pub fn result(&self, node: impl Into<NodeRef>) -> Result<Option<NodeResult>, Error> {
        self.pipeline.result(node)
    }

    /// The current value of an output (an error if stale).
    pub fn value<T: PortValue>(&self, out: &Output<T>) -> Result<Arc<T>, Error> {
        self.pipeline.value(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sheet_id: i64, node: &str, cache_dir: &Path) -> ResultRow {
        ResultRow {
            sheet_id,
            node: node.into(),
            run: 1,
            key: "00".into(),
            outcome: "computed".into(),
            elapsed_ms: Some(1.0),
            finished_ms: 1,
            outputs: "[]".into(),
            provenance: "{}".into(),
            error: None,
            attempts: Some(1),
            log: None,
            blobs: vec![vec![1, 2, 3]],
            cache_dir: cache_dir.to_path_buf(),
        }
    }

    #[test]
    fn a_row_whose_bytes_cannot_be_written_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sheets.db");
        let mut conn = open_connection(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        conn.execute(
            "INSERT INTO sheets (pipeline, name, created_ms, updated_ms) VALUES ('p', 's', 0, 0)",
            [],
        )
        .unwrap();
        let id = conn.last_insert_rowid();
        let good = dir.path().join("cache");
        // A file where the content directory goes: this row's blob cannot be written.
        let broken = dir.path().join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("content-v2"), b"").unwrap();
        let rows = [
            row(id, "a", &good),
            row(id, "b", &broken),
            row(id, "c", &good),
        ];
        let failed = write_rows(&mut conn, &rows, 10);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, 1);
        assert!(failed[0].1.starts_with("writing its outputs to the cache"));
        let kept: Vec<String> = conn
            .prepare("SELECT node FROM results ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kept, ["a", "c"], "the rest of the batch is written");
    }
}
