//! Encoding and decoding the stored rows: a run's results and failures as rows to write,
//! stored results read back (a damaged row is skipped, not fatal), inputs restored into a
//! workspace, and the public records they become (history entries, provenance).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::Sheet;
use super::INLINE_LIMIT;
use crate::cache::{collect_blob_refs, CacheKey};
use crate::exec::{ItemOutcome, NodeFailure, NodeResult, Outcome, Parts, Pipeline};
use crate::node::event::{CacheSource, Logs};
use crate::value::ContentHash;
use crate::Error;

/// One stored result, ready to insert (built on the executor's path, written by the writer).
pub(super) struct ResultRow {
    pub(super) sheet_id: i64,
    pub(super) node: String,
    pub(super) run: u64,
    pub(super) key: String,
    pub(super) outcome: String,
    pub(super) elapsed_ms: Option<f64>,
    pub(super) finished_ms: i64,
    pub(super) outputs: String,
    pub(super) provenance: String,
    /// The error of a failed or cancelled execution (then `outputs` is `[]`).
    pub(super) error: Option<String>,
    /// Attempts made, when the node ran.
    pub(super) attempts: Option<u32>,
    /// The log's line count and JSON, when something was logged.
    pub(super) log: Option<(usize, String)>,
    /// Large outputs and media to put into the cache before the row is committed.
    pub(super) blobs: Vec<Vec<u8>>,
    pub(super) cache_dir: PathBuf,
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
    /// For a map or a choice: what each item did, or which variant produced the result
    /// ([`NodeResult::parts`](crate::NodeResult::parts)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<PartsRecord>,
}

/// What a map's items or a choice's variants did, as a sheet keeps it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum PartsRecord {
    /// A map's items, in item order.
    Items(Vec<ItemRecord>),
    /// The variant that produced the result, and the variants (with their errors) that
    /// failed before it.
    Variant {
        /// The variant used.
        used: String,
        /// The variants that failed first.
        failed: Vec<(String, String)>,
    },
}

/// One item of a map, as a sheet keeps it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ItemRecord {
    /// The item's cache key, as hex.
    pub key: String,
    /// How it ended, in the words of a result's outcome (`computed`, `cached:disk`, …, or
    /// `failed`).
    pub outcome: String,
    /// Its error with the cause chain, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PartsRecord {
    fn of(parts: &Parts) -> PartsRecord {
        match parts {
            Parts::Items(items) => PartsRecord::Items(
                items
                    .iter()
                    .map(|item| ItemRecord {
                        key: item.key.to_hex(),
                        outcome: outcome_text(&item.outcome).0,
                        error: match &item.outcome {
                            Outcome::Failed(e) => Some(crate::event::error_chain(&**e)),
                            _ => None,
                        },
                    })
                    .collect(),
            ),
            Parts::Variant { used, failed } => PartsRecord::Variant {
                used: used.clone(),
                failed: failed.clone(),
            },
        }
    }

    /// The parts again, for a result restored from the sheet (`node` names the failed
    /// items' errors). `None` when a key is not readable.
    fn parts(&self, node: &str) -> Option<Parts> {
        Some(match self {
            PartsRecord::Items(items) => Parts::Items(
                items
                    .iter()
                    .map(|item| {
                        let key = blake3::Hash::from_hex(&item.key).ok()?;
                        let outcome = match &item.error {
                            Some(error) => Outcome::Failed(Arc::new(Error::Failed {
                                node: node.to_string(),
                                message: error.clone(),
                            })),
                            None => outcome_from_text(&item.outcome, None, None),
                        };
                        Some(ItemOutcome {
                            key: CacheKey(*key.as_bytes()),
                            outcome,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?,
            ),
            PartsRecord::Variant { used, failed } => Parts::Variant {
                used: used.clone(),
                failed: failed.clone(),
            },
        })
    }
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
    /// `computed`, `cached:memory`, `cached:disk`, `cached:shared` or `cached:workspace` for a result;
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

pub(super) fn collect_refs(encoded: &[u8], into: &mut HashSet<String>) {
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

pub(super) fn restore_input(
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

/// The columns a backend reads into a [`StoredResult`], from `results r LEFT JOIN result_logs l`;
/// queries add a last one, the log itself (`l.log`), or `NULL` where only its size is needed.
pub(super) const RESULT_COLUMNS: &str =
    "r.node, r.id, r.run, r.cache_key, r.outcome, r.elapsed_ms, \
     r.finished_ms, r.outputs, r.provenance, l.lines, r.error, r.attempts";

pub(super) struct StoredResult {
    pub(super) node: String,
    pub(super) id: i64,
    pub(super) run: u64,
    pub(super) key: String,
    pub(super) outcome: String,
    pub(super) elapsed_ms: Option<f64>,
    pub(super) finished_ms: i64,
    pub(super) outputs: String,
    pub(super) provenance: String,
    pub(super) log_lines: usize,
    pub(super) error: Option<String>,
    pub(super) attempts: Option<u32>,
    pub(super) log: Option<String>,
}

/// A stored log: its JSON, or empty when there is none (or it cannot be read: a log is
/// never worth failing a result over).
pub(super) fn parse_logs(json: Option<&str>) -> Logs {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

impl StoredResult {
    pub(super) fn restore(
        &self,
        workspace: &Pipeline,
        cache_dir: &Path,
        db: &str,
    ) -> Result<(), Error> {
        let index = workspace.node_index(&self.node)?;
        let spec = workspace
            .nodes()
            .nth(index)
            .expect("index from node_index")
            .spec();
        let bad = |why: String| Error::Io {
            context: format!(
                "sheet database {}: result {} of node `{}`",
                db, self.id, self.node
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
                parts: provenance
                    .parts
                    .as_ref()
                    .and_then(|p| p.parts(&self.node))
                    .map(Arc::new),
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
        Outcome::Cached(CacheSource::Shared) => ("cached:shared".into(), None),
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
        "cached:shared" => Outcome::Cached(CacheSource::Shared),
        _ => Outcome::Cached(CacheSource::Workspace),
    }
}

pub(super) fn result_row(
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
        provenance: provenance_json(
            workspace,
            node,
            &result.inputs,
            &result.generated,
            result.parts.as_deref(),
        ),
        error: None,
        attempts,
        log: log_column(&result.logs),
        blobs,
        cache_dir: workspace.cache().dir().to_path_buf(),
    }
}

/// A failed or cancelled execution: no outputs, so nothing for the cache either.
pub(super) fn failure_row(
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
        provenance: provenance_json(workspace, node, &failure.inputs, &failure.generated, None),
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
    parts: Option<&Parts>,
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
        parts: parts.map(PartsRecord::of),
    };
    serde_json::to_string(&provenance).unwrap_or_default()
}
