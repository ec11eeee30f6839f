//! The batch variant of the `cargo daggr run` handshake: when [`RUN_BATCH_ENV`] is set
//! (with [`crate::RUN_ENV`]), `Graph::build` hands the pipeline it built and the request to
//! [`run_requested`], which it finds through the executor's `BATCH_HOOKS` (a layer below
//! never names this one). The pipeline runs over the batch as one worker; each update is
//! appended to the request's events file as a line of JSON as it happens, and the summary
//! is the answer.
//!
//! The request, a JSON object: `inputs` (the JSON Lines file of input sets), and optional
//! `name` (the batch's; default the file's stem), `sheets` (the database, as
//! [`SheetStore::open_url`] reads it; default [`SheetStore::open_default`]), `worker`,
//! `concurrency`, `lease_ms`, `item_timeout_ms`, `max_claims`, `retry_failed` (see
//! [`BatchOptions`]) and `events` (a file to append the updates to).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use linkme::distributed_slice;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::{read_input_sets, BatchOptions, BatchSummary};
use crate::exec::{BatchHook, BATCH_HOOKS, RUN_BATCH_ENV};
use crate::node::event::error_chain;
use crate::sheet::SheetStore;
use crate::Pipeline;

#[distributed_slice(BATCH_HOOKS)]
static BATCH: BatchHook = run_requested;

/// What `cargo daggr run --batch` asks for.
#[derive(Deserialize)]
struct Request {
    inputs: PathBuf,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    sheets: Option<String>,
    #[serde(default)]
    worker: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    lease_ms: Option<u64>,
    #[serde(default)]
    item_timeout_ms: Option<u64>,
    #[serde(default)]
    max_claims: Option<u32>,
    #[serde(default)]
    retry_failed: Option<bool>,
    #[serde(default)]
    events: Option<PathBuf>,
}

/// Runs the batch `request` describes; the answer (the summary, or the error that kept the
/// batch from running) and the exit status: 0 when every item is done, 1 when an item
/// failed (or is left to another worker), 2 when the batch could not run.
fn run_requested(pipeline: &Pipeline, request: &str) -> (Json, i32) {
    match run(pipeline, request) {
        Ok(summary) => {
            let code = if summary.is_success() { 0 } else { 1 };
            (serde_json::to_value(&summary).unwrap_or_default(), code)
        }
        Err(error) => (json!({ "pipeline": pipeline.name(), "error": error }), 2),
    }
}

fn run(pipeline: &Pipeline, request: &str) -> Result<BatchSummary, String> {
    let request: Request = serde_json::from_str(request)
        .map_err(|e| format!("{RUN_BATCH_ENV} is not a batch request: {e}"))?;
    let sets = read_input_sets(&request.inputs).map_err(|e| error_chain(&e))?;
    let name = match request.name {
        Some(name) => name,
        None => request
            .inputs
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "batch".into()),
    };
    let store = match &request.sheets {
        Some(url) => SheetStore::open_url(url),
        None => SheetStore::open_default(),
    }
    .map_err(|e| error_chain(&e))?;
    let batch = store
        .batch(pipeline, &name, &sets)
        .map_err(|e| error_chain(&e))?;
    let mut options = BatchOptions::default();
    if let Some(worker) = request.worker {
        options = options.worker(worker);
    }
    if let Some(concurrency) = request.concurrency {
        options = options.concurrency(concurrency);
    }
    if let Some(ms) = request.lease_ms {
        options = options.lease(Duration::from_millis(ms));
    }
    if let Some(ms) = request.item_timeout_ms {
        options = options.item_timeout(Duration::from_millis(ms));
    }
    if let Some(claims) = request.max_claims {
        options = options.max_claims(claims);
    }
    if let Some(retry) = request.retry_failed {
        options = options.retry_failed(retry);
    }
    if let Some(path) = &request.events {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        let file = Mutex::new(file);
        options = options.on_update(move |update| {
            // One write per line: a reader never sees half a line as a whole one.
            let line = serde_json::to_string(update).unwrap_or_default() + "\n";
            if let Err(e) = file.lock().unwrap().write_all(line.as_bytes()) {
                tracing::warn!(error = %e, "could not write a batch update");
            }
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime: {e}"))?;
    runtime
        .block_on(pipeline.run_batch(&batch, options))
        .map_err(|e| error_chain(&e))
}
