//! Sheets: named, persistent workspaces of a pipeline.
//!
//! A sheet holds its input values and overrides, each node's current result and its
//! whole result history with provenance and log, and view state (the selected history entry
//! per node, the canvas viewport, the node positions set by dragging cards). It lives in an SQLite database (WAL mode, busy timeout),
//! by default `.daggr/sheets.db` in the project. Values are stored in their canonical
//! encoding, in which media are references into the content-addressed cache; outputs
//! larger than [`INLINE_LIMIT`] are stored in the cache too and referenced by integrity.
//!
//! With the `postgres` feature, sheets can live in PostgreSQL instead, with the same schema
//! (the same migrations, in its dialect) and the same behaviour, so that a team or a
//! cluster shares them: set [`SHEETS_URL_ENV`] (`DAGGR_SHEETS_URL=postgres://user@host/db`)
//! for [`SheetStore::open_default`] (and so the inspector), or call
//! [`SheetStore::open_url`]; a pipeline's code does not change. The database must exist;
//! its tables are created on first open. Several processes may use one sheet at once on
//! either backend: each batch of results is one transaction, and writers take turns.
//!
//! The same database keeps [batches](batch): a pipeline run over many input sets, one row
//! per input set, resumable and shared by workers on several machines.
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

mod backend;
pub mod batch;
mod headless;
mod listing;
mod location;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_tls;
mod rows;
mod schema;
mod sqlite;
mod store;
mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::exec::{NodeRef, NodeResult, PersistTarget, Pipeline, RunReport, Scope};
use crate::graph::Output;
use crate::node::event::Logs;
#[cfg(doc)]
use crate::node::event::MAX_LOG_LINES;
use crate::value::PortValue;
use crate::Error;

pub use backend::SheetInfo;
use backend::View;
pub use listing::{SheetRecord, SheetUsage, StoredInput};
use rows::{parse_logs, restore_input};
pub use rows::{HistoryEntry, InputRecord, ItemRecord, PartsRecord, Provenance, SkippedRow};
pub use schema::default_db_path;
use schema::now_ms;
pub use store::SheetStore;

/// Environment variable that overrides the default database path.
pub const SHEETS_DB_ENV: &str = "DAGGR_SHEETS_DB";

/// Environment variable naming the database [`SheetStore::open_default`] opens, as a URL
/// for [`SheetStore::open_url`] (`postgres://user@host/db`, `sqlite://path`); when set,
/// it wins over [`SHEETS_DB_ENV`].
pub const SHEETS_URL_ENV: &str = "DAGGR_SHEETS_URL";

/// Outputs whose encoding is larger than this many bytes are kept in the cache, not inline.
pub const INLINE_LIMIT: usize = 16 * 1024;

/// The default number of history entries kept per node and sheet.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

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

/// A sheet: a named, persistent workspace of one pipeline.
pub struct Sheet {
    pub(super) store: SheetStore,
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) pipeline: Pipeline,
    /// What opening it skipped.
    pub(super) skipped: Vec<SkippedRow>,
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
        self.store
            .backend()
            .save_input(self.id, node, port, &encoded, now_ms())
    }

    /// Puts a constant input (a pipeline input or an override) back to the value the graph
    /// was built with, and forgets the sheet's stored value.
    pub fn reset_constant(&self, node: &str, port: &str) -> Result<(), Error> {
        self.pipeline.reset_constant(node, port)?;
        self.store.backend().delete_input(self.id, node, port)
    }

    /// The stored inputs and overrides: `(node, port, encoded value)`.
    pub fn stored_inputs(&self) -> Result<Vec<(String, String, serde_json::Value)>, Error> {
        let rows = self.store.backend().inputs(self.id)?;
        Ok(rows
            .into_iter()
            .map(|(node, port, text)| {
                let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
                (node, port, value)
            })
            .collect())
    }

    /// A node's history in this sheet, newest first: its results and its failed and
    /// cancelled runs ([`HistoryEntry::is_failure`]).
    pub fn history(&self, node: &str) -> Result<Vec<HistoryEntry>, Error> {
        self.pipeline.node_index(node)?;
        self.store.flush();
        let history = self.store.backend().history(self.id, node)?;
        Ok(listing::history_entries(&self.name, history))
    }

    /// Per node: the number of results kept, the selected entry's id and its position among
    /// the results (1 = newest), and the number of failed and cancelled entries kept. One
    /// query for the whole sheet.
    pub fn history_summary(
        &self,
    ) -> Result<std::collections::HashMap<String, HistorySummary>, Error> {
        self.store.backend().history_summary(self.id)
    }

    /// Makes history entry `result_id` the node's current result; downstream nodes then
    /// see its value (and become stale if it differs from what they were computed from).
    /// A failed or cancelled entry has no outputs: selecting it is an
    /// [`Error::NotSelectable`], and the current result stays.
    pub fn select(&self, node: &str, result_id: i64) -> Result<(), Error> {
        self.store.flush();
        let stored = self.store.backend().entry(self.id, node, result_id)?;
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
        stored.restore(&self.pipeline, &cache_dir, self.store.location())?;
        self.store.backend().set_selection(self.id, node, result_id)
    }

    /// The log of history entry `result_id` of `node`, a result or a failed execution
    /// (empty when nothing was logged, or when the result came from the cache).
    pub fn log(&self, node: &str, result_id: i64) -> Result<Logs, Error> {
        self.pipeline.node_index(node)?;
        self.store.flush();
        let row = self.store.backend().log(self.id, node, result_id)?;
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
        let text = self.store.backend().view(self.id, View::Viewport)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Stores the canvas viewport.
    pub fn set_viewport(&self, viewport: &serde_json::Value) -> Result<(), Error> {
        self.store
            .backend()
            .set_view(self.id, View::Viewport, Some(&viewport.to_string()))
    }

    /// The node positions set by hand in the inspector, by node name; nodes not listed (and
    /// nodes the pipeline no longer has) keep the computed layout.
    pub fn node_positions(&self) -> Result<BTreeMap<String, NodePosition>, Error> {
        let text = self.store.backend().view(self.id, View::Positions)?;
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
        self.store
            .backend()
            .set_view(self.id, View::Positions, text.as_deref())
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
