//! The workflow API, served beside the inspector's (same server, same security rules):
//! `POST /api/call` runs the pipeline on named inputs and answers its outputs as typed
//! JSON; `GET /api/openapi.json` describes it as an OpenAPI 3.1 document whose schemas come
//! from the ports' Rust types.
//!
//! A call runs on a fresh workspace of the served pipeline (nothing of one call leaks into
//! another or into a sheet) over the pipeline's cache, so a call whose inputs were seen
//! before makes no node call. Media go by reference: upload bytes with `POST /api/blobs`
//! and pass the reference it answers; media outputs carry a `url` to download them.
//!
//! At most [`MAX_RUNNING_CALLS`] calls run at once and [`MAX_WAITING_CALLS`] wait; past
//! that a call is refused with 429 and `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};

use super::api::{bad, encode_query, parse, ApiError, ApiResult};
use super::App;
use crate::exec::CallAnswer;

/// Calls running at once.
pub(crate) const MAX_RUNNING_CALLS: usize = 4;
/// Calls waiting for a running one to finish; more are refused with 429.
pub(crate) const MAX_WAITING_CALLS: usize = 64;

/// The call slots of a served pipeline.
pub(crate) struct CallLimits {
    running: tokio::sync::Semaphore,
    waiting: AtomicUsize,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            running: tokio::sync::Semaphore::new(MAX_RUNNING_CALLS),
            waiting: AtomicUsize::new(0),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    #[serde(default)]
    inputs: Map<String, Json_>,
}

/// `POST /api/call`.
pub(crate) async fn call(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let CallBody { inputs } = parse(body)?;
    let workspace = app.template.new_workspace();
    workspace.set_call_inputs(&inputs).map_err(bad)?;
    let limits = &app.calls;
    let permit = match limits.running.try_acquire() {
        Ok(permit) => permit,
        Err(_) => {
            if limits.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING_CALLS {
                limits.waiting.fetch_sub(1, Ordering::SeqCst);
                return Ok(too_many());
            }
            let permit = limits.running.acquire().await;
            limits.waiting.fetch_sub(1, Ordering::SeqCst);
            permit.map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "closing".into()))?
        }
    };
    let answer = workspace.call().await?;
    drop(permit);
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
        return Ok((StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response());
    }
    Ok(Json(json!({
        "outputs": outputs,
        "computed": computed,
        "cached": cached,
        "elapsed_ms": elapsed_ms,
    }))
    .into_response())
}

fn too_many() -> Response {
    let body = json!({
        "error": format!("too many calls: {MAX_RUNNING_CALLS} are running and {MAX_WAITING_CALLS} waiting; retry later"),
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
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

/// `GET /api/openapi.json`.
pub(crate) async fn openapi(State(app): State<Arc<App>>) -> Response {
    // Built once: tracing every port type's schema is not work to repeat per request, and
    // the served pipeline's ports and defaults do not change.
    Json(app.openapi.get_or_init(|| document(&app))).into_response()
}

fn document(app: &App) -> Json_ {
    let pipeline = &app.template;
    let mut input_props = Map::new();
    for input in pipeline.call_inputs() {
        let mut schema = input.ty.json_schema();
        // The value an input left out keeps.
        let default = pipeline
            .constant_value(input.node, &input.port)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice::<Json_>(v.encoded()).ok());
        if let (Some(default), Json_::Object(map)) = (default, &mut schema) {
            map.insert("default".into(), default);
        }
        input_props.insert(input.name, schema);
    }
    let mut output_props = Map::new();
    let outputs = pipeline.call_outputs();
    for output in &outputs {
        output_props.insert(output.at.name.clone(), output.ty.json_schema());
    }
    let output_names: Vec<&str> = outputs.iter().map(|o| o.at.name.as_str()).collect();
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let json_of = |schema: Json_| json!({ "application/json": { "schema": schema } });
    let name = app.template.name();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("{name} (daggr workflow API)"),
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runs the pipeline on named inputs and answers its outputs. Results are cached by content: a call whose inputs were seen before runs no node again. Media go by reference: upload the bytes with POST /api/blobs and pass the object it answers.",
        },
        "paths": {
            "/api/call": { "post": {
                "operationId": "call",
                "summary": format!("Run `{name}`"),
                "requestBody": { "required": true, "content": json_of(json!({ "$ref": "#/components/schemas/CallRequest" })) },
                "responses": {
                    "200": { "description": "The outputs", "content": json_of(json!({ "$ref": "#/components/schemas/CallResponse" })) },
                    "400": { "description": "An unknown input, or a value of the wrong type", "content": json_of(error.clone()) },
                    "429": {
                        "description": "Too many calls at once",
                        "headers": { "Retry-After": { "description": "Seconds to wait", "schema": { "type": "integer" } } },
                        "content": json_of(error.clone()),
                    },
                    "500": { "description": "A node failed", "content": json_of(json!({ "$ref": "#/components/schemas/NodeFailure" })) },
                },
            }},
            "/api/blobs": { "post": {
                "operationId": "uploadBlob",
                "summary": "Store bytes for a media input",
                "parameters": [{ "name": "x-daggr-filename", "in": "header", "required": false, "schema": { "type": "string" } }],
                "requestBody": { "required": true, "content": { "*/*": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } },
                "responses": {
                    "201": { "description": "A media reference to pass as an input", "content": json_of(json!({ "$ref": "#/components/schemas/MediaRef" })) },
                    "400": { "description": "An empty upload", "content": json_of(error.clone()) },
                    "413": { "description": "Too large", "content": json_of(error.clone()) },
                },
            }},
            "/api/blobs/{integrity}": { "get": {
                "operationId": "getBlob",
                "summary": "Download media bytes (the `url` of a media output)",
                "parameters": [
                    { "name": "integrity", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "mime", "in": "query", "required": false, "schema": { "type": "string" } },
                ],
                "responses": {
                    "200": { "description": "The bytes", "content": { "*/*": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } },
                    "404": { "description": "Not stored", "content": json_of(error.clone()) },
                },
            }},
        },
        "components": { "schemas": {
            "CallRequest": {
                "type": "object",
                "properties": { "inputs": {
                    "type": "object",
                    "description": "Input values by name; an input left out keeps its default",
                    "properties": input_props,
                    "additionalProperties": false,
                }},
                "additionalProperties": false,
            },
            "CallResponse": {
                "type": "object",
                "required": ["outputs", "computed", "cached"],
                "properties": {
                    "outputs": { "type": "object", "properties": output_props.clone(), "required": output_names },
                    "computed": { "type": "array", "items": { "type": "string" }, "description": "The nodes that ran" },
                    "cached": { "type": "array", "items": { "type": "string" }, "description": "The nodes served from the cache" },
                    "elapsed_ms": { "type": "number" },
                },
            },
            "NodeFailure": {
                "type": "object",
                "required": ["error", "failed", "missing_outputs"],
                "properties": {
                    "error": { "type": "string" },
                    "failed": { "type": "array", "items": {
                        "type": "object", "required": ["node", "error"],
                        "properties": { "node": { "type": "string" }, "error": { "type": "string", "description": "The error with its causes" } },
                    }},
                    "missing_outputs": { "type": "array", "items": { "type": "string" }, "description": "The outputs that could not be computed" },
                    "outputs": { "type": "object", "properties": output_props, "description": "The outputs that were computed" },
                    "computed": { "type": "array", "items": { "type": "string" } },
                    "cached": { "type": "array", "items": { "type": "string" } },
                },
            },
            "MediaRef": {
                "type": "object",
                "required": ["kind", "mime", "size", "blob"],
                "properties": {
                    "kind": { "type": "string" }, "mime": { "type": "string" }, "name": { "type": "string" },
                    "size": { "type": "integer", "minimum": 0 }, "blob": { "type": "string" },
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": { "error": { "type": "string" } },
            },
        }},
    })
}
