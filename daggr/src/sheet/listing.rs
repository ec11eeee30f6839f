//! Sheets read without their pipeline, for tools (`cargo daggr sheets`, `cargo daggr cache`):
//! every sheet with what it stores ([`SheetStore::inventory`]), one sheet's inputs and
//! histories ([`SheetStore::read_sheet`]), and what collecting the cache would remove
//! ([`SheetStore::gc_cache_dry_run`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::backend::NodeHistory;
use super::rows::Provenance;
use super::{HistoryEntry, SheetInfo, SheetStore};
use crate::cache::GcReport;
use crate::{Cache, Error};

/// What a sheet stores in the database.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SheetUsage {
    /// Stored inputs and overrides.
    pub inputs: usize,
    /// History entries holding a result.
    pub results: usize,
    /// History entries of failed or cancelled executions.
    pub failures: usize,
    /// Bytes of its rows' stored text: inputs, outputs kept inline, provenance, errors and
    /// logs. Outputs larger than [`INLINE_LIMIT`](super::INLINE_LIMIT) and media are in the
    /// cache, and counted there.
    pub bytes: u64,
}

/// A stored input or override of a sheet.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StoredInput {
    /// The node.
    pub node: String,
    /// Its input port.
    pub port: String,
    /// The value's encoding (media as blob references).
    pub value: serde_json::Value,
}

/// A whole sheet as stored, read without its pipeline: what `cargo daggr sheets show`
/// prints and `export` writes.
#[derive(Clone, Debug, Serialize)]
pub struct SheetRecord {
    /// Its name, pipeline and timestamps.
    pub info: SheetInfo,
    /// What it stores.
    pub usage: SheetUsage,
    /// Its stored inputs and overrides, by node and port.
    pub inputs: Vec<StoredInput>,
    /// Each node's history, newest first, by node name.
    pub history: BTreeMap<String, Vec<HistoryEntry>>,
}

impl SheetStore {
    /// Every sheet of every pipeline in the database (by pipeline, then name), with what
    /// it stores.
    pub fn inventory(&self) -> Result<Vec<(SheetInfo, SheetUsage)>, Error> {
        self.flush();
        self.backend().inventory()
    }

    /// Reads sheet `name` of pipeline `pipeline` as stored, without opening it in a
    /// workspace (so without the pipeline's code): its inputs and every node's history.
    /// An unknown sheet is an [`Error::UnknownSheet`] naming the closest one.
    pub fn read_sheet(&self, pipeline: &str, name: &str) -> Result<SheetRecord, Error> {
        let sheets = self.inventory()?;
        let Some((info, usage)) = sheets
            .iter()
            .find(|(s, _)| s.pipeline == pipeline && s.name == name)
            .cloned()
        else {
            let names = sheets
                .iter()
                .filter(|(s, _)| s.pipeline == pipeline)
                .map(|(s, _)| s.name.as_str());
            return Err(Error::UnknownSheet {
                name: name.to_string(),
                suggestion: crate::error::suggest(name, names),
            });
        };
        let backend = self.backend();
        let inputs = backend
            .inputs(info.id)?
            .into_iter()
            .map(|(node, port, text)| StoredInput {
                node,
                port,
                value: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            })
            .collect();
        let mut history = BTreeMap::new();
        for node in backend.history_summary(info.id)?.into_keys() {
            let entries = history_entries(&info.name, backend.history(info.id, &node)?);
            history.insert(node, entries);
        }
        Ok(SheetRecord {
            info,
            usage,
            inputs,
            history,
        })
    }

    /// What [`SheetStore::gc_cache`] would remove from `cache`, removing nothing.
    pub fn gc_cache_dry_run(&self, cache: &Cache) -> Result<GcReport, Error> {
        self.flush();
        let (keys, blobs) = self.backend().live_refs()?;
        cache.gc_dry_run(&keys, &blobs)
    }
}

/// A node's stored history as public entries, newest first. A damaged row is logged and
/// left out: it must not hide the rest of the history.
pub(super) fn history_entries(sheet: &str, history: NodeHistory) -> Vec<HistoryEntry> {
    let mut out = Vec::new();
    for row in history.entries {
        let row = match row {
            Ok(row) => row,
            Err(damaged) => {
                tracing::warn!(sheet, id = ?damaged.id, reason = damaged.reason, "skipping a damaged history entry");
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
                parts: None,
            }),
            selected: Some(row.id) == history.selected,
            error: row.error,
            attempts: row.attempts,
            log_lines: row.log_lines,
        });
    }
    out
}
