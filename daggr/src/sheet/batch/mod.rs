//! Batches: one pipeline run over many input sets, resumable, and shared by several
//! workers (processes, machines) through the sheet database.
//!
//! A batch is a named list of input sets of one pipeline, kept in the sheet database
//! ([`SheetStore::batch`]): each input set is a JSON object of named inputs, as the workflow
//! API's `POST /api/call` and `cargo daggr run` take them, and is an item with a row of its
//! own: its status (`pending`, `claimed`, `done`, `failed`), the worker that claimed it and
//! until when, its outputs (JSON) or its error.
//!
//! [`Pipeline::run_batch`] works through a batch: it claims items one at a time, runs each
//! on a fresh workspace over the pipeline's cache (at most
//! [`BatchOptions::concurrency`] at once), and writes each item's outputs or error in its
//! row. So:
//!
//! - **Resumable.** A done item is never run again: running the batch again (after a crash,
//!   a Ctrl-C, a fix) runs what is left, and the summary counts what was already done as
//!   skipped. Failed items are tried again unless [`BatchOptions::retry_failed`] is off.
//! - **Shared.** Workers that open the same batch (the same database, pipeline and name)
//!   split it: each item is claimed by one worker at a time, with a lease
//!   ([`BatchOptions::lease`]) that the worker renews while the item runs. A worker that
//!   dies leaves its claim to expire; another then claims the item again and runs it. A
//!   worker whose claim was taken over while it was away (stopped, cut off) cannot write a
//!   result: its write names its claim, which is no longer the item's. On PostgreSQL
//!   (feature `postgres`) claims use `SELECT … FOR UPDATE SKIP LOCKED` and the server's
//!   clock, so workers on several machines share a batch; on SQLite, claims are IMMEDIATE
//!   transactions on one machine's file.
//! - **Cached.** Results land in the pipeline's cache, shared when it has a shared store
//!   (`DAGGR_CACHE_URL`): an item whose inputs were computed before, here or on another
//!   machine, makes no node call. An item's row says `done` only once its results are
//!   stored.
//!
//! `cargo daggr run --batch inputs.jsonl` runs a program's pipeline over the input sets of a
//! JSON Lines file this way (see [`crate::RUN_BATCH_ENV`]).
//!
//! ```
//! use daggr::sheet::batch::BatchOptions;
//! use daggr::{sheet::SheetStore, Cache, FnNode, Graph};
//! use serde_json::json;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let mut g = Graph::new("squares").cache(Cache::open(dir.path().join("cache"))?);
//! let n = g.input("n", 0u64);
//! let square = g.add(FnNode::sync("square", |n: u64| n * n), (n,));
//! g.name_output("square", &square);
//! let pipeline = g.build()?;
//!
//! let store = SheetStore::open(dir.path().join("sheets.db"))?;
//! let inputs: Vec<_> = (1..=3u64)
//!     .map(|n| json!({ "n": n }).as_object().unwrap().clone())
//!     .collect();
//! let batch = store.batch(&pipeline, "first-three", &inputs)?;
//! let summary = pipeline.run_batch(&batch, BatchOptions::default()).await?;
//! assert!(summary.is_success());
//! assert_eq!(batch.items()?[2].outputs.as_ref().unwrap()["square"], 9);
//!
//! // Run again: nothing is left to do.
//! let again = pipeline.run_batch(&batch, BatchOptions::default()).await?;
//! assert_eq!((again.skipped, again.done_here.len()), (3, 0));
//! # Ok(()) }
//! ```

pub(super) mod backend;
mod handshake;
#[cfg(feature = "postgres")]
mod postgres;
mod run;
mod sqlite;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value as Json};

use backend::{Abandoned, BatchBackend, ItemEnd, ItemRow};
pub use run::{BatchEvent, BatchOptions, BatchSummary, BatchUpdate, ItemFailure};

use super::schema::now_ms;
use super::SheetStore;
use crate::{Error, Pipeline};

/// How long a claim lasts unless renewed, by default. A worker renews its claims every
/// third of the lease while their items run, so this is also how long an item whose worker
/// died waits before another worker takes it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Items a worker runs at once, by default.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How many times an item is claimed before it is given up when every worker that ran it
/// stopped before it finished ([`BatchOptions::max_claims`]): an input that crashes or
/// hangs its worker (out of memory, a native library's fault, a cut-off machine) must not
/// take down every worker of the batch in turn.
pub const DEFAULT_MAX_CLAIMS: u32 = 3;

/// A batch of input sets of one pipeline, kept in a sheet database. Cheap to clone.
#[derive(Clone)]
pub struct Batch {
    store: SheetStore,
    id: i64,
    pipeline: String,
    name: String,
    len: usize,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("pipeline", &self.pipeline)
            .field("name", &self.name)
            .field("items", &self.len)
            .field("store", &self.store.location())
            .finish()
    }
}

/// Where an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Not run yet (or given back).
    Pending,
    /// Claimed by a worker, which is running it (or died: see [`BatchItem::claimed_until_ms`]).
    Claimed,
    /// Done: its outputs are stored.
    Done,
    /// Failed: its error is stored.
    Failed,
}

impl ItemStatus {
    /// Its name as stored: `pending`, `claimed`, `done`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::Claimed => "claimed",
            ItemStatus::Done => "done",
            ItemStatus::Failed => "failed",
        }
    }

    /// The status named `text` (as [`ItemStatus::as_str`] gives it).
    pub fn parse(text: &str) -> Option<ItemStatus> {
        Some(match text {
            "pending" => ItemStatus::Pending,
            "claimed" => ItemStatus::Claimed,
            "done" => ItemStatus::Done,
            "failed" => ItemStatus::Failed,
            _ => return None,
        })
    }
}

/// An item of a batch, as stored.
#[derive(Clone, Debug, Serialize)]
pub struct BatchItem {
    /// Its number: its position in the batch's input sets, from 0.
    pub item: u64,
    /// Its inputs (`Null` if the stored text is not JSON).
    pub inputs: Json,
    /// Where it is.
    pub status: ItemStatus,
    /// The worker that claimed it last: the one running it, or the one that finished it.
    pub worker: Option<String>,
    /// When the current claim ends, in Unix ms of the database's clock (claimed items).
    pub claimed_until_ms: Option<i64>,
    /// How many times it was claimed (more than once when a claim expired, or when it was
    /// tried again after failing).
    pub attempts: u32,
    /// When the last claim started (Unix ms, the database's clock).
    pub started_ms: Option<i64>,
    /// When it was done or failed (Unix ms, the database's clock).
    pub finished_ms: Option<i64>,
    /// How long its last run took.
    pub elapsed_ms: Option<f64>,
    /// Its outputs by name (done items).
    pub outputs: Option<Map<String, Json>>,
    /// Why it failed (failed items).
    pub error: Option<String>,
}

/// A batch's items by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchCounts {
    /// Not run yet.
    pub pending: u64,
    /// Claimed by a worker.
    pub claimed: u64,
    /// Done.
    pub done: u64,
    /// Failed.
    pub failed: u64,
}

impl BatchCounts {
    /// How many items have `status`.
    pub fn of(&self, status: ItemStatus) -> u64 {
        match status {
            ItemStatus::Pending => self.pending,
            ItemStatus::Claimed => self.claimed,
            ItemStatus::Done => self.done,
            ItemStatus::Failed => self.failed,
        }
    }
}

impl Batch {
    /// The batch's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the pipeline it belongs to.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The database id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// How many items (input sets) it has.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no item.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The database it is kept in.
    pub fn store(&self) -> &SheetStore {
        &self.store
    }

    fn backend(&self) -> &dyn BatchBackend {
        self.store.backend()
    }

    /// Every item, in item order, as stored now.
    pub fn items(&self) -> Result<Vec<BatchItem>, Error> {
        self.backend()
            .items(self.id)?
            .into_iter()
            .map(|row| self.item_of(row))
            .collect()
    }

    /// The items of `status` (every item with `None`), in item order, from the `offset`th
    /// of them, at most `limit`: one page, read as such from the database.
    pub fn items_page(
        &self,
        status: Option<ItemStatus>,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<BatchItem>, Error> {
        let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
        self.backend()
            .items_page(
                self.id,
                status.map(ItemStatus::as_str),
                clamp(offset),
                Some(clamp(limit)),
            )?
            .into_iter()
            .map(|row| self.item_of(row))
            .collect()
    }

    fn item_of(&self, row: ItemRow) -> Result<BatchItem, Error> {
        let status = ItemStatus::parse(&row.status).ok_or_else(|| Error::Batch {
            batch: self.name.clone(),
            message: format!("item {} has an unknown status `{}`", row.item, row.status),
        })?;
        Ok(BatchItem {
            item: row.item.max(0) as u64,
            inputs: serde_json::from_str(&row.inputs).unwrap_or(Json::Null),
            status,
            worker: row.claimed_by,
            claimed_until_ms: row.claimed_until,
            attempts: row.attempts.clamp(0, u32::MAX as i64) as u32,
            started_ms: row.started_ms,
            finished_ms: row.finished_ms,
            elapsed_ms: row.elapsed_ms,
            outputs: row.outputs.and_then(|o| serde_json::from_str(&o).ok()),
            error: row.error,
        })
    }

    /// The items by status.
    pub fn counts(&self) -> Result<BatchCounts, Error> {
        let state = self.backend().batch_state(self.id)?;
        Ok(BatchCounts {
            pending: state.pending,
            claimed: state.claims.len() as u64,
            done: state.done,
            failed: state.failed,
        })
    }

    /// Makes the failed items pending again, to be tried by the next run; how many there
    /// were. ([`Pipeline::run_batch`] does this first, unless told not to.)
    pub fn retry_failed(&self) -> Result<u64, Error> {
        self.backend().retry_failed(self.id)
    }

    /// Claims the first free item (pending, or claimed by a worker whose lease ended) for
    /// `worker` until `lease` from now: what [`Pipeline::run_batch`] does before each item,
    /// for a loop of one's own. `None` when no item is free. An item whose lease ended
    /// after [`DEFAULT_MAX_CLAIMS`] claims is failed instead of claimed again
    /// ([`BatchOptions::max_claims`]).
    pub fn claim(&self, worker: &str, lease: Duration) -> Result<Option<BatchClaim>, Error> {
        Ok(self.claim_at_most(worker, lease, DEFAULT_MAX_CLAIMS)?.0)
    }

    /// [`Batch::claim`] with a limit of `max_claims` claims per item; also the items it
    /// gave up on the way.
    pub(super) fn claim_at_most(
        &self,
        worker: &str,
        lease: Duration,
        max_claims: u32,
    ) -> Result<(Option<BatchClaim>, Vec<Abandoned>), Error> {
        let claimed = self.backend().claim(
            self.id,
            worker,
            lease_ms(lease),
            i64::from(max_claims.max(1)),
        )?;
        let claim = claimed.row.map(|row| BatchClaim {
            batch: self.clone(),
            item: row.item,
            inputs: serde_json::from_str(&row.inputs).unwrap_or(Json::Null),
            attempt: row.attempt,
            worker: worker.to_string(),
            reclaimed_from: row.previous,
        });
        Ok((claim, claimed.abandoned))
    }
}

fn lease_ms(lease: Duration) -> i64 {
    lease.as_millis().clamp(1, i64::MAX as u128) as i64
}

/// An item claimed by a worker ([`Batch::claim`]). Its claim is exact: once the lease has
/// ended and another worker claimed the item, nothing done through this claim is written.
#[derive(Clone, Debug)]
pub struct BatchClaim {
    batch: Batch,
    item: i64,
    inputs: Json,
    attempt: i64,
    worker: String,
    reclaimed_from: Option<String>,
}

impl BatchClaim {
    /// The item's number.
    pub fn item(&self) -> u64 {
        self.item.max(0) as u64
    }

    /// Its inputs: a JSON object of named inputs (`Null` if the stored text is not JSON).
    pub fn inputs(&self) -> &Json {
        &self.inputs
    }

    /// Which claim of the item this is (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt.clamp(0, u32::MAX as i64) as u32
    }

    /// The worker that holds it.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The worker whose claim had expired, when this claim took the item over from it.
    pub fn reclaimed_from(&self) -> Option<&str> {
        self.reclaimed_from.as_deref()
    }

    /// Extends the claim to `lease` from now; false when it is no longer this worker's (it
    /// expired and another worker claimed the item).
    pub fn renew(&self, lease: Duration) -> Result<bool, Error> {
        self.batch.backend().renew(
            self.batch.id,
            self.item,
            &self.worker,
            self.attempt,
            lease_ms(lease),
        )
    }

    /// Marks the item done with these outputs; false, and nothing written, when the claim is
    /// no longer this worker's. A claim whose lease ended but that no other worker took is
    /// still this worker's.
    pub fn finish(&self, outputs: &Map<String, Json>, elapsed: Duration) -> Result<bool, Error> {
        self.end(ItemEnd {
            status: "done",
            outputs: Some(Json::Object(outputs.clone()).to_string()),
            error: None,
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
        })
    }

    /// Marks the item failed with this error; false, and nothing written, when the claim is
    /// no longer this worker's.
    pub fn fail(&self, error: &str, elapsed: Duration) -> Result<bool, Error> {
        self.end(ItemEnd {
            status: "failed",
            outputs: None,
            error: Some(error.to_string()),
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
        })
    }

    fn end(&self, end: ItemEnd) -> Result<bool, Error> {
        self.batch
            .backend()
            .finish(self.batch.id, self.item, &self.worker, self.attempt, &end)
    }
}

impl SheetStore {
    /// Creates batch `name` of `pipeline` with these input sets (item `i` is `inputs[i]`),
    /// or opens it when it exists, so that every worker given the same list opens the same
    /// batch (at once, too: exactly one copy is created). An existing batch must hold the
    /// same input sets: a different list is an error (name the batch otherwise, or
    /// [`SheetStore::delete_batch`] it). The inputs are checked against the pipeline when
    /// each item runs: an unknown name or a wrong type fails that item only.
    pub fn batch(
        &self,
        pipeline: &Pipeline,
        name: &str,
        inputs: &[Map<String, Json>],
    ) -> Result<Batch, Error> {
        check_name(name)?;
        let backend = self.backend();
        backend.migrate_batches()?;
        let texts: Vec<String> = inputs
            .iter()
            .map(|i| Json::Object(i.clone()).to_string())
            .collect();
        let (id, stored) = backend.create_batch(pipeline.name(), name, &texts, now_ms())?;
        let mismatch = |message: String| {
            Error::Batch {
            batch: name.to_string(),
            message: format!(
                "{message}; it was created with other input sets: give it another name, or delete it first"
            ),
        }
        };
        if stored.len() != inputs.len() {
            return Err(mismatch(format!(
                "it has {} items, and {} input sets are given",
                stored.len(),
                inputs.len()
            )));
        }
        for (item, (given, stored)) in inputs.iter().zip(&stored).enumerate() {
            let same = serde_json::from_str::<Json>(stored)
                .is_ok_and(|s| s.as_object().is_some_and(|s| s == given));
            if !same {
                return Err(mismatch(format!(
                    "item {item} is stored as {stored}, and given as {}",
                    Json::Object(given.clone())
                )));
            }
        }
        Ok(Batch {
            store: self.clone(),
            id,
            pipeline: pipeline.name().to_string(),
            name: name.to_string(),
            len: stored.len(),
        })
    }

    /// Opens an existing batch of the pipeline named `pipeline`.
    pub fn open_batch(&self, pipeline: &str, name: &str) -> Result<Batch, Error> {
        let backend = self.backend();
        backend.migrate_batches()?;
        let Some((id, len)) = backend.find_batch(pipeline, name)? else {
            let names = backend.batch_names(pipeline).unwrap_or_default();
            return Err(Error::UnknownBatch {
                name: name.to_string(),
                suggestion: crate::error::suggest(name, names.iter().map(String::as_str)),
            });
        };
        Ok(Batch {
            store: self.clone(),
            id,
            pipeline: pipeline.to_string(),
            name: name.to_string(),
            len: len as usize,
        })
    }

    /// The batches of the pipeline named `pipeline`, by name.
    pub fn batches(&self, pipeline: &str) -> Result<Vec<String>, Error> {
        self.backend().migrate_batches()?;
        self.backend().batch_names(pipeline)
    }

    /// Deletes a batch with its items and their outputs (the cache's entries stay until
    /// [`SheetStore::gc_cache`]).
    pub fn delete_batch(&self, pipeline: &str, name: &str) -> Result<(), Error> {
        self.backend().migrate_batches()?;
        if !self.backend().delete_batch(pipeline, name)? {
            return Err(self.open_batch(pipeline, name).err().unwrap_or_else(|| {
                Error::UnknownBatch {
                    name: name.to_string(),
                    suggestion: None,
                }
            }));
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() {
        return Err(Error::Batch {
            batch: name.to_string(),
            message: "a batch needs a name".into(),
        });
    }
    Ok(())
}

/// Reads input sets from a JSON Lines file: one JSON object of named inputs per line
/// (blank lines are skipped). An error names the line that is not one.
pub fn read_input_sets(path: &Path) -> Result<Vec<Map<String, Json>>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        context: format!("reading the input sets in {}", path.display()),
        source,
    })?;
    let mut sets = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| Error::Io {
            context: format!("reading the input sets in {}", path.display()),
            source: std::io::Error::other(format!(
                "line {}: {why} (each line is a JSON object of named inputs, like {{\"n\": 3}})",
                number + 1
            )),
        };
        match serde_json::from_str::<Json>(line) {
            Ok(Json::Object(set)) => sets.push(set),
            Ok(other) => return Err(bad(format!("`{}` is not a JSON object", preview(&other)))),
            Err(e) => return Err(bad(format!("not JSON: {e}"))),
        }
    }
    Ok(sets)
}

/// A value's JSON, cut short for a message.
fn preview(value: &Json) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}
