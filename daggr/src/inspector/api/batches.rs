//! The pipeline's batches ([`crate::sheet::batch`]), read-only: `GET /api/batches` lists
//! them with their items counted by status, `GET /api/batches/{name}` pages through one's
//! items (`?offset=&limit=&status=`). Batches are run elsewhere (`Pipeline::run_batch`,
//! `cargo daggr run --batch`, on this machine or others sharing the sheet database): the
//! page polls these routes while a batch has items left.
//!
//! Every read goes to the sheet database on a blocking thread: on PostgreSQL a query waits
//! on the network, and a batch of many items is a large read.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::super::http::{bad, path, ApiError, ApiResult};
use super::super::App;
use crate::sheet::batch::{BatchCounts, BatchItem, ItemStatus};
use crate::sheet::SheetStore;
use crate::Error;

/// Items a page of `GET /api/batches/{name}` holds unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 200;
/// The most items one page may hold.
const MAX_LIMIT: usize = 1000;

/// Runs a read of the sheet database on a blocking thread.
async fn read<T: Send + 'static>(
    store: &SheetStore,
    read: impl FnOnce(&SheetStore) -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
        .map_err(ApiError::from)
}

fn counts_json(total: usize, counts: &BatchCounts) -> serde_json::Value {
    json!({
        "total": total,
        "pending": counts.pending,
        "claimed": counts.claimed,
        "done": counts.done,
        "failed": counts.failed,
    })
}

/// The pipeline's batches by name, each with its items counted by status.
pub(super) async fn list(State(app): State<Arc<App>>) -> ApiResult {
    let pipeline = app.template.name().to_string();
    let batches = read(&app.store, move |store| {
        store
            .batches(&pipeline)?
            .iter()
            .map(|name| {
                let batch = store.open_batch(&pipeline, name)?;
                let counts = batch.counts()?;
                let mut entry = counts_json(batch.len(), &counts);
                entry["name"] = json!(name);
                Ok(entry)
            })
            .collect::<Result<Vec<_>, Error>>()
    })
    .await?;
    Ok(Json(json!({ "pipeline": app.template.name(), "batches": batches })).into_response())
}

/// The query of `GET /api/batches/{name}`.
#[derive(Deserialize)]
pub(super) struct ItemsQuery {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
    status: Option<String>,
}

fn status_of(text: &str) -> Result<ItemStatus, ApiError> {
    ItemStatus::parse(text).ok_or_else(|| {
        bad(format!(
            "unknown item status `{text}`: use pending, claimed, done or failed"
        ))
    })
}

/// One page of batch `name`'s items, in item order, those of one status with `status=`;
/// with the batch's counts (read just after the page).
pub(super) async fn items(
    State(app): State<Arc<App>>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<ItemsQuery>, QueryRejection>,
) -> ApiResult {
    let name = path(name)?;
    let Query(query) = query.map_err(|e| bad(format!("invalid query: {e}")))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(bad(format!(
            "limit must be 1 to {MAX_LIMIT} items, not {limit}"
        )));
    }
    let wanted = query.status.as_deref().map(status_of).transpose()?;
    let pipeline = app.template.name().to_string();
    let batch_name = name.clone();
    let offset = query.offset as u64;
    // One page read as such (a batch may hold many thousands of items, and an open panel
    // asks every 2 s), and the counts: two reads, so a running batch may move between them.
    let (page, total, counts): (Vec<BatchItem>, usize, BatchCounts) =
        read(&app.store, move |store| {
            let batch = store.open_batch(&pipeline, &batch_name)?;
            let page = batch.items_page(wanted, offset, limit as u64)?;
            Ok((page, batch.len(), batch.counts()?))
        })
        .await?;
    let matched = wanted.map_or(total as u64, |status| counts.of(status));
    Ok(Json(json!({
        "name": name,
        "counts": counts_json(total, &counts),
        "status": query.status,
        "matched": matched,
        "offset": query.offset,
        "limit": limit,
        "items": page,
    }))
    .into_response())
}
