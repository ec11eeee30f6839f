//! A workflow call's run (see `workflow.rs`): on a task of its own, cancelled when the
//! request goes, and its answer as the JSON form sends it. The streaming form
//! (`call_stream.rs`) reads the same run's events and ends with the same answer.

use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{json, Value as Json_};
use tokio::sync::{broadcast, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::http::{encode_query, ApiError};
use super::{lock, OpenSheet};
use crate::exec::CallAnswer;
use crate::node::event::Event;
use crate::{Pipeline, Scope};

/// Gives the sheet's run slot back and tells the page, as the inspector's own runs do.
pub(super) fn release_sheet(open: &OpenSheet) {
    lock(&open.run).take();
    open.run_done.notify_waiters();
    open.live.push("state_changed", json!({ "reason": "run" }));
}

/// What a call's run ends with: its answer, or why there is none.
pub(super) type CallOutcome = Result<CallAnswer, ApiError>;

/// A call's run, started on a task of its own.
pub(super) struct CallRun {
    /// The workspace's events, for the streaming form (subscribed before the run starts,
    /// so none is missed; `None` otherwise, so a plain call pays for no event copies).
    pub(super) events: Option<broadcast::Receiver<Event>>,
    /// The run.
    pub(super) task: JoinHandle<CallOutcome>,
    /// Cancels the run when the request (or its response stream) is dropped.
    pub(super) cancel: DropGuard,
}

impl CallRun {
    /// Runs every node of `workspace` (a sheet's, when `sheet` is given: its slot is then
    /// already taken for `token`, and released when the run ends) until `token` fires.
    /// `permit` is held until the run ends.
    pub(super) fn start(
        workspace: Pipeline,
        sheet: Option<Arc<OpenSheet>>,
        token: CancellationToken,
        permit: OwnedSemaphorePermit,
        stream: bool,
    ) -> CallRun {
        let events = stream.then(|| workspace.subscribe());
        let run_token = token.clone();
        let task = tokio::spawn(async move {
            let _permit = permit;
            let started = Instant::now();
            let report = match &sheet {
                Some(open) => open.sheet.run_with_cancel(Scope::All, run_token).await,
                None => workspace.run_with_cancel(Scope::All, run_token).await,
            };
            let answer = report.and_then(|report| workspace.answer(&report));
            if let Some(open) = &sheet {
                release_sheet(open);
            }
            let mut answer = answer?;
            if sheet.is_none() {
                // A sheet's run waited for its writes already.
                store_output_blobs(&workspace).await;
            }
            answer.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            Ok(answer)
        });
        CallRun {
            events,
            task,
            cancel: token.drop_guard(),
        }
    }

    /// Waits for the run; its answer as the JSON form sends it.
    pub(super) async fn finish(self) -> (StatusCode, Json_) {
        let CallRun { task, cancel, .. } = self;
        let outcome = joined(task.await);
        drop(cancel);
        answer_body(outcome)
    }
}

/// Puts the media bytes of the call's outputs on disk now, if they are not there yet: their
/// `url` is the blob route, which reads the disk, and a client downloads them as soon as
/// it has the answer, while a result just computed is still on its way there (the cache
/// writes drain behind the run). A result from the cache costs a `stat` per blob.
async fn store_output_blobs(workspace: &Pipeline) {
    let cache = workspace.cache();
    let mut missing = Vec::new();
    for out in workspace.call_outputs() {
        let Ok(Some(result)) = workspace.result(out.at.node) else {
            continue;
        };
        for blob in result.outputs[out.at.port].blobs().iter() {
            if !cacache::exists_sync(cache.dir(), &blob.integrity) {
                missing.push(blob.bytes.clone());
            }
        }
    }
    if missing.is_empty() {
        return;
    }
    let cache = cache.clone();
    let stored = tokio::task::spawn_blocking(move || {
        missing
            .iter()
            .try_for_each(|bytes| cache.put_blob(bytes).map(drop))
    })
    .await;
    match stored {
        Ok(Ok(())) => {}
        // The answer still goes: the outputs are right, only their download may fail.
        Ok(Err(e)) => tracing::warn!(
            error = %crate::node::event::error_chain(&e),
            "a media output of a workflow call could not be stored"
        ),
        Err(e) => tracing::warn!(error = %e, "storing a workflow call's media outputs"),
    }
}

/// A run task's outcome, a panic included.
pub(super) fn joined(result: Result<CallOutcome, tokio::task::JoinError>) -> CallOutcome {
    result.unwrap_or_else(|e| {
        Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the run ended abnormally: {e}"),
        ))
    })
}

/// The status and body of a call's answer: 200 with the outputs, 500 naming the failed
/// node, or the error that stopped the call.
pub(super) fn answer_body(outcome: CallOutcome) -> (StatusCode, Json_) {
    let answer = match outcome {
        Ok(answer) => answer,
        Err(ApiError(status, error)) => return (status, json!({ "error": error })),
    };
    let CallAnswer {
        mut outputs,
        missing_outputs,
        computed,
        cached,
        failed,
        elapsed_ms,
        ..
    } = answer;
    outputs.values_mut().for_each(add_urls);
    if let Some(first) = failed.first() {
        let body = json!({
            "error": format!("node `{}` failed", first.node),
            "failed": failed,
            "missing_outputs": missing_outputs,
            "outputs": outputs,
            "computed": computed,
            "cached": cached,
        });
        return (StatusCode::INTERNAL_SERVER_ERROR, body);
    }
    let body = json!({
        "outputs": outputs,
        "computed": computed,
        "cached": cached,
        "elapsed_ms": elapsed_ms,
    });
    (StatusCode::OK, body)
}

/// Adds `url` (the blob route) to every media reference in `value`.
fn add_urls(value: &mut Json_) {
    match value {
        Json_::Object(map) => {
            let blob = map.get("blob").and_then(Json_::as_str).map(str::to_string);
            let mime = map.get("mime").and_then(Json_::as_str).map(str::to_string);
            if let (Some(blob), Some(mime)) = (blob, mime) {
                map.insert(
                    "url".into(),
                    json!(format!(
                        "/api/blobs/{}?mime={}",
                        encode_query(&blob),
                        encode_query(&mime)
                    )),
                );
                return;
            }
            map.values_mut().for_each(add_urls);
        }
        Json_::Array(items) => items.iter_mut().for_each(add_urls),
        _ => {}
    }
}
