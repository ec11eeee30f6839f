//! One item of a map computed again from its card:
//! `POST /api/sheets/{sheet}/nodes/{node}/items/{item}/run` runs [`Scope::Item`] on the
//! sheet, so the item bypasses its cache entry (its new result replaces it), the map's
//! other items are cache hits, the map's output is gathered again and the sheet's history
//! records the run. Like every state-changing route it passes the guard (token, same
//! origin) first; a run in progress is a 409, an unknown sheet or node a 404, an item that
//! is not one of the map's a 404 naming how many it has, a node that is no map a 400.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::super::http::{bad, path, ApiError, ApiResult};
use super::super::run_slot::claim_run_slot;
use super::super::{lock, App};
use crate::composite::Composite;
use crate::node::event::error_chain;
use crate::Scope;

/// Starts a run of item `item` of map `node` on the sheet; answers 202 with its number.
pub(super) async fn run_item(
    State(app): State<Arc<App>>,
    p: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult {
    let (sheet, node, item) = path(p)?;
    let open = app.sheet(&sheet)?;
    let pipeline = open.sheet.pipeline();
    let index = pipeline.node_index(&node)?;
    let is_map = matches!(
        pipeline.nodes().nth(index).and_then(|n| n.composite()),
        Some(Composite::Map(_))
    );
    if !is_map {
        return Err(bad(format!(
            "node `{node}` has no items to run: it is not a map"
        )));
    }
    let item: usize = item.parse().map_err(|_| {
        bad(format!(
            "`{item}` is not an item of map `{node}`: items are numbered from 0"
        ))
    })?;
    pipeline
        .check_item(index, item)
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, error_chain(&e)))?;
    let token = CancellationToken::new();
    let run = claim_run_slot(&open, &token).await?;
    let task_open = open.clone();
    let scope = Scope::item(node.as_str(), item);
    tokio::spawn(async move {
        if let Err(e) = task_open.sheet.run_with_cancel(scope, token).await {
            task_open
                .live
                .push("run_error", json!({ "error": error_chain(&e) }));
        }
        lock(&task_open.run).take();
        task_open.run_done.notify_waiters();
        task_open
            .live
            .push("state_changed", json!({ "reason": "run" }));
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "run": run, "node": node, "item": item })),
    )
        .into_response())
}
