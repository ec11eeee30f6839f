//! [`SheetStore`]: the database of sheets; listing, creating, opening, renaming, forking
//! and deleting sheets, and collecting the cache entries no sheet refers to.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

use super::backend::{SheetBackend, SheetInfo};
use super::location::{target, Target};
use super::rows::{failure_row, restore_input, result_row, ResultRow, SkippedRow};
use super::schema::{default_db_path, now_ms};
use super::sqlite::SqliteBackend;
use super::writer::{writer_loop, Pending, RowFailure, Write};
use super::{Sheet, DEFAULT_HISTORY_LIMIT, SHEETS_URL_ENV};
use crate::cache::GcReport;
use crate::exec::{NodeFailure, NodeResult, Outcome, Pipeline, ResultObserver, WeakPipeline};
use crate::node::event::CacheSource;
use crate::{Cache, Error};

pub(super) struct StoreInner {
    /// The SQLite file, or (PostgreSQL) the URL without its password.
    pub(super) path: PathBuf,
    /// The same, as text: what messages name.
    pub(super) location: String,
    pub(super) backend: Box<dyn SheetBackend>,
    pub(super) writes: Mutex<Option<mpsc::Sender<Write>>>,
    pub(super) writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub(super) history_limit: usize,
    pub(super) pending: Arc<Pending>,
    /// Result rows the writer could not commit (shared with it).
    pub(super) failures: Arc<Mutex<std::collections::VecDeque<RowFailure>>>,
}

/// A database of sheets. Cheap to clone; open one per process.
///
/// SQLite (a file, [`SheetStore::open`]) by default; PostgreSQL with the `postgres`
/// feature ([`SheetStore::open_url`] with a `postgres://` URL, or [`SHEETS_URL_ENV`] for
/// [`SheetStore::open_default`]), with the same schema and the same behaviour, so a
/// pipeline's code does not change between a laptop and a cluster.
#[derive(Clone)]
pub struct SheetStore(pub(super) Arc<StoreInner>);

impl std::fmt::Debug for SheetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SheetStore")
            .field("location", &self.0.location)
            .finish()
    }
}

impl SheetStore {
    /// Opens (creating and migrating if needed) the SQLite database at `path`.
    pub fn open(path: impl Into<PathBuf>) -> Result<SheetStore, Error> {
        Self::open_with_history_limit(path, DEFAULT_HISTORY_LIMIT)
    }

    /// Opens the default database: the one [`SHEETS_URL_ENV`] (`DAGGR_SHEETS_URL`) names
    /// if it is set ([`SheetStore::open_url`]), else the SQLite file at
    /// [`default_db_path`]. So the same code keeps its sheets in the project on a laptop
    /// and in a team's PostgreSQL where the variable is set.
    pub fn open_default() -> Result<SheetStore, Error> {
        match std::env::var(SHEETS_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Self::open_url(url.trim()),
            _ => Self::open(default_db_path()),
        }
    }

    /// Opens the database at `url`, creating and migrating its schema if needed:
    ///
    /// - `postgres://user[:password]@host[:port]/database[?options]` (or `postgresql://`):
    ///   PostgreSQL, with the `postgres` feature. The database must exist; the tables are
    ///   created in it (in the connection's `search_path`). TLS as libpq reads the URL's
    ///   `sslmode` (`prefer` by default; `require`, `verify-ca`, `verify-full`) and
    ///   `sslrootcert=PATH` (see SCALING.md).
    /// - `sqlite://PATH` (`sqlite:///absolute/path.db`, `sqlite://relative.db`) or a plain
    ///   path: an SQLite file, as [`SheetStore::open`].
    pub fn open_url(url: &str) -> Result<SheetStore, Error> {
        Self::open_url_with_history_limit(url, DEFAULT_HISTORY_LIMIT)
    }

    /// [`SheetStore::open_url`], keeping at most `limit` history entries per node and sheet.
    pub fn open_url_with_history_limit(url: &str, limit: usize) -> Result<SheetStore, Error> {
        match target(url)? {
            Target::Sqlite(path) => Self::open_with_history_limit(path, limit),
            Target::Postgres(url) => {
                #[cfg(feature = "postgres")]
                {
                    let backend = super::postgres::PgBackend::open(&url)?;
                    let location = backend.location().to_string();
                    Self::start(PathBuf::from(&location), location, Box::new(backend), limit)
                }
                #[cfg(not(feature = "postgres"))]
                {
                    let _ = url;
                    Err(Error::FeatureDisabled {
                        feature: "postgres",
                        what: "sheets on PostgreSQL (SheetStore::open_url, DAGGR_SHEETS_URL)",
                    })
                }
            }
        }
    }

    /// Opens the SQLite database at `path` keeping at most `limit` history entries per
    /// node and sheet (the selected entry is always kept).
    pub fn open_with_history_limit(
        path: impl Into<PathBuf>,
        limit: usize,
    ) -> Result<SheetStore, Error> {
        let path = path.into();
        let backend = SqliteBackend::open(&path)?;
        let location = path.display().to_string();
        Self::start(path, location, Box::new(backend), limit)
    }

    /// Starts the writer thread on the backend's writer connection.
    fn start(
        path: PathBuf,
        location: String,
        backend: Box<dyn SheetBackend>,
        limit: usize,
    ) -> Result<SheetStore, Error> {
        let writer_conn = backend.writer()?;
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(Pending {
            count: Mutex::new(0),
            idle: Condvar::new(),
        });
        let failures = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        let writer = {
            let pending = pending.clone();
            let failures = failures.clone();
            let location = location.clone();
            let limit = limit.max(1);
            std::thread::Builder::new()
                .name("daggr-sheet-writer".into())
                .spawn(move || writer_loop(writer_conn, rx, pending, failures, limit, location))
                .map_err(|source| Error::Io {
                    context: "starting the sheet writer thread".into(),
                    source,
                })?
        };
        Ok(SheetStore(Arc::new(StoreInner {
            path,
            location,
            backend,
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

    /// The database path; for PostgreSQL, its URL without the password (as a path).
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Where the sheets are: the SQLite file's path, or the PostgreSQL URL without its
    /// password.
    pub fn location(&self) -> &str {
        &self.0.location
    }

    pub(super) fn backend(&self) -> &dyn SheetBackend {
        self.0.backend.as_ref()
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
        self.backend().list(pipeline)
    }

    fn find(&self, pipeline: &str, name: &str) -> Result<Option<i64>, Error> {
        self.backend().find(pipeline, name)
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
        let id = self
            .backend()
            .insert_sheet(pipeline.name(), name, now_ms())?;
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
        let id = self
            .backend()
            .insert_or_find_sheet(pipeline.name(), name, now_ms())?;
        self.attach(pipeline, id, name)
    }

    /// Renames a sheet.
    pub fn rename(&self, pipeline: &str, from: &str, to: &str) -> Result<(), Error> {
        if self.find(pipeline, to)?.is_some() {
            return Err(Error::SheetExists { name: to.into() });
        }
        if !self.backend().rename(pipeline, from, to, now_ms())? {
            return Err(self.missing(pipeline, from));
        }
        Ok(())
    }

    /// Deletes a sheet with its inputs and history (cache entries stay until [`SheetStore::gc_cache`]).
    pub fn delete(&self, pipeline: &str, name: &str) -> Result<(), Error> {
        self.flush();
        if !self.backend().delete(pipeline, name)? {
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
        let id = self.backend().fork(source, to, now_ms())?;
        self.attach(pipeline, id, to)
    }

    /// Removes every cache entry and blob that no sheet in this database refers to.
    /// Other live users of the cache (pipelines without sheets) are not consulted.
    pub fn gc_cache(&self, cache: &Cache) -> Result<GcReport, Error> {
        self.flush();
        let (keys, mut blobs) = self.backend().live_refs()?;
        // Batch items' inputs and outputs may name blobs too.
        self.backend().migrate_batches()?;
        self.backend().batch_blobs(&mut blobs)?;
        cache.gc(&keys, &blobs)
    }

    fn attach(&self, pipeline: &Pipeline, id: i64, name: &str) -> Result<Sheet, Error> {
        self.flush();
        let workspace = pipeline.new_workspace();
        let cache_dir = workspace.cache().dir().to_path_buf();
        let loaded = self.backend().load(id)?;
        let mut skipped = loaded.skipped;
        for row in &skipped {
            tracing::warn!(sheet = name, table = row.table, id = ?row.id, node = ?row.node, reason = row.reason, "skipping a damaged row");
        }
        workspace.continue_runs_after(loaded.last_run);
        for (node, port, value) in loaded.inputs {
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
        for stored in loaded.selected {
            let node = stored.node.clone();
            if let Err(e) = stored.restore(&workspace, &cache_dir, &self.0.location) {
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
