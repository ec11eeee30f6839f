//! [`SheetStore`]: the database of sheets; listing, creating, opening, renaming, forking
//! and deleting sheets, and collecting the cache entries no sheet refers to.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::rows::{
    collect_refs, failure_row, last_run, restore_input, result_row, ResultRow, SkippedRow,
    StoredResult, RESULT_COLUMNS,
};
use super::schema::{db_err, default_db_path, migrate, now_ms, open_connection};
use super::writer::{writer_loop, Pending, RowFailure, Write};
use super::{Sheet, DEFAULT_HISTORY_LIMIT};
use crate::cache::{CacheKey, GcReport};
use crate::exec::{NodeFailure, NodeResult, Outcome, Pipeline, ResultObserver, WeakPipeline};
use crate::node::event::CacheSource;
use crate::{Cache, Error};

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

pub(super) struct StoreInner {
    pub(super) path: PathBuf,
    pub(super) conn: Mutex<Connection>,
    pub(super) writes: Mutex<Option<mpsc::Sender<Write>>>,
    pub(super) writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub(super) history_limit: usize,
    pub(super) pending: Arc<Pending>,
    /// Result rows the writer could not commit (shared with it).
    pub(super) failures: Arc<Mutex<std::collections::VecDeque<RowFailure>>>,
}

/// A database of sheets. Cheap to clone; open one per process.
#[derive(Clone)]
pub struct SheetStore(pub(super) Arc<StoreInner>);

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

    pub(super) fn with_conn<R>(
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
    pub(super) fn take_failures(&self, sheet_id: i64, run: u64) -> Vec<(String, String)> {
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

    pub(super) fn send(&self, write: Write) -> bool {
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

impl Drop for StoreInner {
    fn drop(&mut self) {
        self.writes.lock().unwrap().take();
        if let Some(handle) = self.writer.lock().unwrap().take() {
            let _ = handle.join();
        }
    }
}

/// Turns adopted results into rows for the writer thread.
pub(super) struct SheetObserver {
    pub(super) sheet_id: i64,
    pub(super) store: SheetStore,
    /// Weak: the workspace holds this observer (see [`SheetStore::attach`]).
    pub(super) workspace: WeakPipeline,
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
