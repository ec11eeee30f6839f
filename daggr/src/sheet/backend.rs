//! The seam between sheets and the database that keeps them: [`SheetBackend`] (the reads,
//! and the small writes of the sheet API) and [`RowWriter`] (the result rows the writer
//! thread batches). SQLite ([`super::sqlite`]) is the default; PostgreSQL
//! (`super::postgres`, feature `postgres`) keeps the same schema, by the same migrations.
//!
//! A backend is called from plain threads and from inside async runtimes alike, and may
//! block (the sheet API is synchronous); every method is one transaction or one statement.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::batch::backend::BatchBackend;
use super::rows::{collect_refs, ResultRow, SkippedRow, StoredResult};
use super::{HistorySummary, SheetUsage};
use crate::cache::CacheKey;
use crate::error::BoxError;
use crate::Error;

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

/// A sheet's view state, stored as JSON text in a column of `sheets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum View {
    /// The canvas viewport.
    Viewport,
    /// The node positions set by hand.
    Positions,
}

impl View {
    pub(super) fn column(self) -> &'static str {
        match self {
            View::Viewport => "viewport",
            View::Positions => "positions",
        }
    }
}

/// What opening a sheet reads, in one transaction: its stored inputs (`node`, `port`,
/// encoded value), its selected results, and its last run number. Rows that cannot be read
/// are in `skipped`.
pub(super) struct LoadedSheet {
    pub(super) inputs: Vec<(String, String, String)>,
    pub(super) selected: Vec<StoredResult>,
    pub(super) last_run: u64,
    pub(super) skipped: Vec<SkippedRow>,
}

/// A node's history: the selected entry and the entries, newest first (a row that cannot be
/// read is returned as skipped, not as an error that hides the rest).
pub(super) struct NodeHistory {
    pub(super) selected: Option<i64>,
    pub(super) entries: Vec<Result<StoredResult, SkippedRow>>,
}

/// The database of sheets, as the sheet API uses it. Ids are the database's; `now` is Unix
/// ms. An `Err` is a database failure (the caller maps "not found" itself).
/// Batches are kept in the same database, behind the same seam ([`BatchBackend`]).
pub(super) trait SheetBackend: BatchBackend + Send + Sync + 'static {
    /// A connection for the writer thread (its own: it commits while others read).
    fn writer(&self) -> Result<Box<dyn RowWriter>, Error>;

    /// The sheets of a pipeline, by name.
    fn list(&self, pipeline: &str) -> Result<Vec<SheetInfo>, Error>;
    /// Every sheet of every pipeline (by pipeline, then name) with what it stores.
    fn inventory(&self) -> Result<Vec<(SheetInfo, SheetUsage)>, Error>;
    /// A sheet's id.
    fn find(&self, pipeline: &str, name: &str) -> Result<Option<i64>, Error>;
    /// Inserts a sheet (an error if it exists); its id.
    fn insert_sheet(&self, pipeline: &str, name: &str, now: i64) -> Result<i64, Error>;
    /// The sheet's id, inserting it if missing (exactly one row when several processes do
    /// this at once).
    fn insert_or_find_sheet(&self, pipeline: &str, name: &str, now: i64) -> Result<i64, Error>;
    /// Renames a sheet; whether it existed.
    fn rename(&self, pipeline: &str, from: &str, to: &str, now: i64) -> Result<bool, Error>;
    /// Deletes a sheet with everything it holds; whether it existed.
    fn delete(&self, pipeline: &str, name: &str) -> Result<bool, Error>;
    /// Copies sheet `source` (inputs, history with logs, selections, view state) as `to`,
    /// in one transaction; the new sheet's id.
    fn fork(&self, source: i64, to: &str, now: i64) -> Result<i64, Error>;
    /// The cache keys and blob integrities any sheet refers to.
    fn live_refs(&self) -> Result<(HashSet<CacheKey>, HashSet<String>), Error>;
    /// Everything opening sheet `id` needs.
    fn load(&self, id: i64) -> Result<LoadedSheet, Error>;

    /// Stores an input or override (encoded) and touches the sheet.
    fn save_input(
        &self,
        id: i64,
        node: &str,
        port: &str,
        value: &str,
        now: i64,
    ) -> Result<(), Error>;
    /// Forgets a stored input.
    fn delete_input(&self, id: i64, node: &str, port: &str) -> Result<(), Error>;
    /// The stored inputs, by node and port: `(node, port, encoded value)`.
    fn inputs(&self, id: i64) -> Result<Vec<(String, String, String)>, Error>;

    /// A node's history (entries without their logs).
    fn history(&self, id: i64, node: &str) -> Result<NodeHistory, Error>;
    /// Per node: results, selected entry and its position, failures.
    fn history_summary(&self, id: i64) -> Result<HashMap<String, HistorySummary>, Error>;
    /// One history entry of a node, with its log.
    fn entry(&self, id: i64, node: &str, result_id: i64) -> Result<Option<StoredResult>, Error>;
    /// Makes `result_id` the node's selected entry.
    fn set_selection(&self, id: i64, node: &str, result_id: i64) -> Result<(), Error>;
    /// A history entry's log: `None` when there is no such entry, `Some(None)` when it
    /// logged nothing.
    fn log(&self, id: i64, node: &str, result_id: i64) -> Result<Option<Option<String>>, Error>;

    /// A view column of the sheet.
    fn view(&self, id: i64, view: View) -> Result<Option<String>, Error>;
    /// Sets (or clears) a view column.
    fn set_view(&self, id: i64, view: View, value: Option<&str>) -> Result<(), Error>;
}

/// The writer thread's connection: commits a batch of result rows, all or none.
pub(super) trait RowWriter: Send {
    /// Inserts `rows` in one transaction, selecting each result (a failure is never
    /// selected) and pruning the touched nodes' histories to `limit` entries (the selected
    /// one is always kept).
    fn insert_rows(&mut self, rows: &[&ResultRow], limit: usize) -> Result<(), BoxError>;
}

/// Adds a stored result's cache key and the blobs its outputs refer to.
pub(super) fn add_result_refs(
    key: &str,
    outputs: &str,
    keys: &mut HashSet<CacheKey>,
    blobs: &mut HashSet<String>,
) {
    if let Ok(hash) = blake3::Hash::from_hex(key) {
        keys.insert(CacheKey(*hash.as_bytes()));
    }
    collect_refs(outputs.as_bytes(), blobs);
}
