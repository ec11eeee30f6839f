//! The workflow API, served beside the inspector's (same server, same security rules):
//! `POST /api/call` runs the pipeline on named inputs and answers its outputs as typed
//! JSON; `GET /api/openapi.json` describes it as an OpenAPI 3.1 document whose schemas come
//! from the ports' Rust types.
//!
//! A call runs on a fresh workspace of the served pipeline (nothing of one call leaks into
//! another or into a sheet) over the pipeline's cache, so a call whose inputs were seen
//! before makes no node call. `?sheet=NAME` runs it on that sheet's workspace instead: the
//! inputs are stored in the sheet and the run is in its history, as a run from the page.
//! Media go by reference: upload bytes with `POST /api/blobs` and pass the reference it
//! answers, or pass `{"url": …}` (see [`super::media_input`]); media outputs carry a `url`
//! to download them. With `Accept: text/event-stream` the answer streams the run's events
//! before the result (see [`super::call_stream`]). Who may call is
//! [`super::api_keys`]' business.
//!
//! The run goes on a task of its own (see [`super::call_run`]), cancelled when the request
//! goes: a client that closes the connection stops the run (and frees its call slot)
//! instead of leaving it to run for nobody.
//!
//! At most [`MAX_RUNNING_CALLS`] calls run at once and [`MAX_WAITING_CALLS`] wait; past
//! that a call is refused with 429 and `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::call_run::{release_sheet, CallRun};
use super::http::{bad, parse, ApiError, ApiResult, MAX_NAME_BYTES};
use super::run_slot::claim_run_slot;
use super::{App, OpenSheet};
use crate::Pipeline;

/// Calls running at once.
pub(crate) const MAX_RUNNING_CALLS: usize = 4;
/// Calls waiting for a running one to finish; more are refused with 429.
pub(crate) const MAX_WAITING_CALLS: usize = 64;

/// The call slots of a served pipeline.
pub(crate) struct CallLimits {
    /// Shared with the run tasks, which hold their permit until the run ends.
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            running: Arc::new(Semaphore::new(MAX_RUNNING_CALLS)),
            waiting: AtomicUsize::new(0),
        }
    }
}

/// A place in the waiting line, given back however the wait ends (a client that leaves
/// while waiting must not keep its place counted forever).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CallLimits {
    /// A running slot, after waiting in line if all are taken; the 429 answer when the line
    /// is full.
    async fn acquire(&self) -> Result<OwnedSemaphorePermit, Response> {
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = Waiting(&self.waiting);
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING_CALLS {
            return Err(too_many());
        }
        let permit = self.running.clone().acquire_owned().await;
        drop(waiting);
        permit.map_err(|_| {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "closing".into()).into_response()
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    #[serde(default)]
    inputs: Map<String, Json_>,
}

/// The query of `POST /api/call` (other parameters, such as the inspector's `token`, are
/// not the call's business).
#[derive(Deserialize)]
pub(crate) struct CallQuery {
    /// Run on this sheet's workspace instead of a fresh one.
    sheet: Option<String>,
}

/// `POST /api/call`.
pub(crate) async fn call(
    State(app): State<Arc<App>>,
    query: Result<Query<CallQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let CallBody { mut inputs } = parse(body)?;
    let CallQuery { sheet } = query
        .map(|Query(q)| q)
        .map_err(|e| bad(format!("invalid query: {e}")))?;
    let sheet = match &sheet {
        Some(name) if name.len() > MAX_NAME_BYTES => {
            return Err(bad(format!(
                "the sheet name is longer than {MAX_NAME_BYTES} bytes"
            )))
        }
        // An unknown sheet is a 404 naming it, with the closest name.
        Some(name) => Some(app.sheet(name)?),
        None => None,
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    super::media_input::resolve(&app, host, &mut inputs).await?;
    // Checked on a fresh workspace first, so bad inputs touch no sheet and take no slot.
    let workspace = app.template.new_workspace();
    workspace.set_call_inputs(&inputs).map_err(bad)?;
    let permit = match app.calls.acquire().await {
        Ok(permit) => permit,
        Err(too_many) => return Ok(too_many),
    };
    let stream = super::call_stream::wanted(&headers);
    let token = CancellationToken::new();
    let run = match sheet {
        None => CallRun::start(workspace, None, token, permit, stream),
        Some(open) => {
            set_sheet_inputs(&open, &token, &workspace, &inputs).await?;
            let pipeline = open.sheet.pipeline().clone();
            CallRun::start(pipeline, Some(open), token, permit, stream)
        }
    };
    if stream {
        return Ok(super::call_stream::respond(run));
    }
    let (status, body) = run.finish().await;
    Ok((status, Json(body)).into_response())
}

/// Takes the sheet's run slot for the run `token` cancels (409 while a run executes on it,
/// as for the page's Run; the page's Cancel then stops the call) and stores the call's
/// inputs in the sheet, taken from `checked` where they were decoded. The slot is the
/// run's from here: [`release_sheet`] gives it back.
async fn set_sheet_inputs(
    open: &Arc<OpenSheet>,
    token: &CancellationToken,
    checked: &Pipeline,
    inputs: &Map<String, Json_>,
) -> Result<(), ApiError> {
    claim_run_slot(open, token).await?;
    let stored = open.sheet.store_call_inputs(checked, inputs);
    if let Err(e) = stored {
        release_sheet(open);
        return Err(e.into());
    }
    if !inputs.is_empty() {
        open.live
            .push("state_changed", json!({ "reason": "input" }));
    }
    Ok(())
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
        if super::media_input::media_kind(&input.ty).is_some() {
            // Or by URL: a data: URL (an upload inside the call), a blob of this server, or
            // an http(s) URL the server fetches.
            schema = json!({ "anyOf": [schema, { "$ref": "#/components/schemas/MediaUrl" }] });
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
    // A call needs a key whenever one is configured; the blob routes only when the
    // inspector's token guards the server (see api_keys). `{}` is "no credential".
    let bearer = json!({ "bearerAuth": [] });
    let call_security = if super::api_keys::calls_need_key(app) {
        json!([bearer])
    } else {
        json!([bearer, {}])
    };
    let blob_security = if app.token.is_some() {
        json!([bearer])
    } else {
        json!([bearer, {}])
    };
    let unauthorized = json!({
        "description": "No valid key: `Authorization: Bearer <key>` is required",
        "headers": { "WWW-Authenticate": { "schema": { "type": "string" } } },
        "content": json_of(error.clone()),
    });
    // OpenAPI has no schema for an event stream: a string, described.
    let events = json!({ "schema": {
        "type": "string",
        "description": "With `Accept: text/event-stream`: the run's events as server-sent events, named `run_started`, `node_started`, `node_progress`, `node_partial`, `node_log`, `node_cached`, `node_finished`, `node_failed`, `node_skipped`, `persist_failed` and `run_finished` (data: JSON with the `node` name), then `result` (data: a CallResponse) or `error` (data: the body the JSON form answers with a 4xx/5xx status: a NodeFailure or an Error). Closing the connection cancels the run.",
    }});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("{name} (daggr workflow API)"),
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Runs the pipeline on named inputs and answers its outputs. Results are cached by content: a call whose inputs were seen before runs no node again. Media inputs go by reference (upload the bytes with POST /api/blobs and pass the object it answers) or by URL ({\"url\": \"data:image/png;base64,...\"} uploads them inside the call; a /api/blobs/... URL of this server or an http(s) URL is read by the server). With `?sheet=NAME` the call runs on that sheet (its inputs are stored there and the run is in its history). With `Accept: text/event-stream` the answer streams the run's events, then the result.",
        },
        "paths": {
            "/api/call": { "post": {
                "operationId": "call",
                "summary": format!("Run `{name}`"),
                "security": call_security,
                "parameters": [{
                    "name": "sheet", "in": "query", "required": false,
                    "description": "Run on this sheet's workspace (its inputs are stored in the sheet, the run is in its history) instead of a fresh one",
                    "schema": { "type": "string" },
                }],
                "requestBody": { "required": true, "content": json_of(json!({ "$ref": "#/components/schemas/CallRequest" })) },
                "responses": {
                    "200": {
                        "description": "The outputs (or, with `Accept: text/event-stream`, the run's events and then the outputs)",
                        "content": {
                            "application/json": { "schema": { "$ref": "#/components/schemas/CallResponse" } },
                            "text/event-stream": events,
                        },
                    },
                    "400": { "description": "An unknown input, a value of the wrong type, or a media URL that could not be read", "content": json_of(error.clone()) },
                    "401": unauthorized.clone(),
                    "404": { "description": "No sheet of that name (with the closest one)", "content": json_of(error.clone()) },
                    "409": { "description": "A run is in progress on that sheet", "content": json_of(error.clone()) },
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
                "security": blob_security.clone(),
                "summary": "Store bytes for a media input",
                "parameters": [{ "name": "x-daggr-filename", "in": "header", "required": false, "schema": { "type": "string" } }],
                "requestBody": { "required": true, "content": { "*/*": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } },
                "responses": {
                    "201": { "description": "A media reference to pass as an input", "content": json_of(json!({ "$ref": "#/components/schemas/MediaRef" })) },
                    "400": { "description": "An empty upload", "content": json_of(error.clone()) },
                    "401": unauthorized.clone(),
                    "413": { "description": "Too large", "content": json_of(error.clone()) },
                },
            }},
            "/api/blobs/{integrity}": { "get": {
                "operationId": "getBlob",
                "security": blob_security,
                "summary": "Download media bytes (the `url` of a media output)",
                "parameters": [
                    { "name": "integrity", "in": "path", "required": true, "schema": { "type": "string" } },
                    { "name": "mime", "in": "query", "required": false, "schema": { "type": "string" } },
                ],
                "responses": {
                    "200": { "description": "The bytes", "content": { "*/*": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } },
                    "401": unauthorized,
                    "404": { "description": "Not stored", "content": json_of(error.clone()) },
                },
            }},
        },
        "components": {
        "securitySchemes": { "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (LaunchOptions::api_keys or $DAGGR_API_KEYS, comma-separated) or the inspector's token",
        }},
        "schemas": {
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
            "MediaUrl": {
                "type": "object",
                "description": "A media input by URL",
                "required": ["url"],
                "properties": {
                    "url": { "type": "string", "description": format!("`data:<mime>;base64,<bytes>` (an upload inside the call, within the request's body limit), this server's `/api/blobs/<integrity>?mime=…` (an earlier output's `url`), or an http(s) URL the server fetches (within {} s and the upload limit)", super::media_input::FETCH_TIMEOUT.as_secs()) },
                    "mime": { "type": "string", "description": "The MIME type, when the URL does not tell it" },
                    "name": { "type": "string", "description": "A file name" },
                },
                "additionalProperties": false,
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
