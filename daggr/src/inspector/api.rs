//! The inspector's HTTP API (see `inspector/API.md`): routes and the JSON shapes, behind the
//! security layer of `guard.rs`. Every malformed request gets a 4xx JSON error (`http.rs`).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value as Json_};

mod batches;
mod explain;
mod items;

use super::guard::guard;
use super::http::{
    bad, body_of, clean_mime, encode_query, name, parse, path, to_sse, ApiError, ApiResult,
};
use super::layout::{card_height, fits_in_a_row, layout_grouped, parts_rows, port_rows, CardShape};
use super::run_slot::{claim_run_slot, ensure_idle, executing};
use super::{lock, App, OpenSheet};
use crate::exec::Outcome;
use crate::sheet::NodePosition;
use crate::{Error, Pipeline, Scope};

/// The body limit of command routes (run, select, viewport, …): their JSON is a few names.
const COMMAND_BODY_LIMIT: usize = 64 * 1024;
/// The body limit of `/inputs`: a value may be a long text or a JSON document.
const INPUT_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub(crate) fn router(app: Arc<App>) -> Router {
    // Every route has the body limit that fits it (axum's default would be 2 MB for all).
    let small = || DefaultBodyLimit::max(COMMAND_BODY_LIMIT);
    let api = Router::new()
        .route("/api/graph", get(graph))
        .route("/api/export/{format}", get(export))
        .route(
            "/api/sheets",
            get(list_sheets).post(create_sheet).layer(small()),
        )
        .route("/api/sheets/{sheet}", delete(delete_sheet).layer(small()))
        .route(
            "/api/sheets/{sheet}/rename",
            post(rename_sheet).layer(small()),
        )
        .route("/api/sheets/{sheet}/fork", post(fork_sheet).layer(small()))
        .route("/api/sheets/{sheet}/state", get(state))
        .route("/api/sheets/{sheet}/nodes/{node}/history", get(history))
        .route("/api/sheets/{sheet}/nodes/{node}/logs", get(logs))
        .route("/api/sheets/{sheet}/nodes/{node}/why", get(why))
        .route(
            "/api/sheets/{sheet}/nodes/{node}/items/{item}/run",
            post(items::run_item).layer(small()),
        )
        .route("/api/sheets/{sheet}/run", post(run).layer(small()))
        .route("/api/sheets/{sheet}/cancel", post(cancel).layer(small()))
        .route(
            "/api/sheets/{sheet}/inputs",
            post(set_input).layer(DefaultBodyLimit::max(INPUT_BODY_LIMIT)),
        )
        .route(
            "/api/sheets/{sheet}/inputs/{node}/{port}",
            delete(clear_input).layer(small()),
        )
        .route("/api/sheets/{sheet}/select", post(select).layer(small()))
        .route("/api/sheets/{sheet}/restore", post(restore).layer(small()))
        .route(
            "/api/sheets/{sheet}/viewport",
            post(viewport).layer(small()),
        )
        .route(
            "/api/sheets/{sheet}/positions",
            post(set_positions)
                .delete(clear_positions)
                .layer(DefaultBodyLimit::max(INPUT_BODY_LIMIT)),
        )
        .route("/api/sheets/{sheet}/events", get(events))
        .route("/api/batches", get(batches::list))
        .route("/api/batches/{name}", get(batches::items))
        .route(
            "/api/blobs",
            post(upload_blob).layer(DefaultBodyLimit::max(app.max_upload)),
        )
        .route("/api/blobs/{integrity}", get(get_blob))
        .route(
            "/api/call",
            post(super::workflow::call).layer(DefaultBodyLimit::max(INPUT_BODY_LIMIT)),
        )
        .route("/api/openapi.json", get(super::workflow::openapi))
        .route("/", get(index));
    Router::new()
        .merge(api)
        .route(
            "/assets/inspector.js",
            get(|| async {
                asset(
                    super::assets::INSPECTOR_JS,
                    "text/javascript; charset=utf-8",
                )
            }),
        )
        .route(
            "/assets/inspector.css",
            get(|| async { asset(super::assets::INSPECTOR_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/favicon.svg",
            get(|| async { asset(super::assets::FAVICON_SVG, "image/svg+xml") }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset(super::assets::FAVICON_SVG, "image/svg+xml") }),
        )
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError(StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
        })
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .layer(catch_panics())
        .layer(compression())
        .with_state(app)
}

/// Compresses the answers a browser waits for whole (the graph JSON of a 5 000-node graph is
/// 1.8 MB, its state 0.9 MB; the page's script): gzip, when the request accepts it.
/// Never the event streams (compression holds bytes back until a block fills, delaying
/// events; the default predicate leaves `text/event-stream` out), images, audio and video
/// (compressed already), nor stored blobs (served with `Accept-Ranges` for seeking, which a
/// compressed answer cannot honour), nor bodies too small to gain anything. At the fastest
/// level: most answers go to a browser on the same machine, where compressing is pure cost,
/// and on JSON the fastest level keeps most of the gain for a remote one.
fn compression(
) -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
    let whole =
        |_: StatusCode, _: axum::http::Version, headers: &HeaderMap, _: &axum::http::Extensions| {
            !headers.contains_key(header::ACCEPT_RANGES)
        };
    tower_http::compression::CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Fastest)
        .compress_when(
            DefaultPredicate::new()
                .and(NotForContentType::const_new("audio/"))
                .and(NotForContentType::const_new("video/"))
                .and(whole),
        )
}

/// Turns a panicking handler into a 500 JSON error: without it the connection just drops.
/// (The shared state survives it: every lock recovers from poisoning, see [`lock`].)
fn catch_panics(
) -> tower_http::catch_panic::CatchPanicLayer<fn(Box<dyn std::any::Any + Send>) -> Response> {
    fn answer(panic: Box<dyn std::any::Any + Send>) -> Response {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        tracing::error!("inspector handler panicked: {what}");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error (the server caught a panic: {what})"),
        )
        .into_response()
    }
    tower_http::catch_panic::CatchPanicLayer::custom(answer as fn(_) -> _)
}

fn asset(body: &'static str, mime: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    let mut response = asset(super::assets::INDEX_HTML, "text/html; charset=utf-8");
    response
        .headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

/// The widget the page shows for an editable input of this (short) type name.
fn widget(ty: &str) -> &'static str {
    match ty {
        "String" | "str" => "text",
        "f32" | "f64" => "number",
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
            "integer"
        }
        "bool" => "bool",
        "Image" => "image",
        "Audio" => "audio",
        "Video" => "video",
        "File" => "file",
        _ => "json",
    }
}

/// An editable input's widget (`text`, `choice`, `range`, …) and its hint, if any.
type Widget = (&'static str, Option<Json_>);

/// The widget for constant input `port` of node `node` and what it offers: a dropdown
/// (`choice`) when the values allowed are known — from the input's hint (its own, or what the
/// node it feeds says: a Gradio app's dropdown) or from a Rust enum's unit variants —, a
/// slider (`range`) when a range is known, a text area (`textarea`) for long text, else by
/// type ([`widget`]).
fn input_widget(
    pipeline: &Pipeline,
    nodes: &[&dyn crate::node::Node],
    node: usize,
    port: usize,
    ty: &str,
) -> Widget {
    let found = nodes.get(node).copied();
    let spec = found.map(|n| n.spec().clone());
    let is_input = spec.as_ref().is_some_and(|s| s.kind == crate::INPUT_KIND);
    let mut hint = if is_input {
        pipeline.input_hint(node).unwrap_or_default()
    } else {
        crate::InputHint::default()
    };
    let port_spec = spec.as_ref().and_then(|s| s.inputs.get(port));
    // A choice's selection (a `String`) is one of its variants' names.
    if let Some(crate::composite::Composite::Choice(plan)) = found.and_then(|n| n.composite()) {
        if port_spec.is_some_and(|p| p.name == crate::composite::VARIANT_PORT) {
            hint.choices = plan.variants().map(|(name, _)| json!(name)).collect();
        }
    }
    if hint.choices.is_empty() {
        if let Some(port) = port_spec {
            hint.choices = enum_choices(&port.ty.json_schema());
        }
    }
    let widget = if !hint.choices.is_empty() {
        "choice"
    } else if hint.minimum.is_some() && hint.maximum.is_some() && widget(ty) != "json" {
        "range"
    } else if hint.multiline && widget(ty) == "text" {
        "textarea"
    } else {
        widget(ty)
    };
    let hint = (hint != crate::InputHint::default()).then(|| json!(hint));
    (widget, hint)
}

/// The values of an enum whose variants are all units (`{"oneOf": [{"const": …}, …]}`); empty
/// for any other schema.
fn enum_choices(schema: &Json_) -> Vec<Json_> {
    schema["oneOf"]
        .as_array()
        .and_then(|variants| variants.iter().map(|v| v.get("const").cloned()).collect())
        .unwrap_or_default()
}

pub(crate) fn graph_json(pipeline: &Pipeline) -> Json_ {
    let ir = pipeline.graph_ir();
    let runtime_nodes: Vec<&dyn crate::Node> = pipeline.nodes().collect();
    let index: HashMap<&str, usize> = ir
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    // Edges between known nodes, with their place in `ir.edges` (for their routes).
    let (edges, laid): (Vec<(usize, usize)>, Vec<usize>) = ir
        .edges
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            Some((
                (*index.get(e.from.as_str())?, *index.get(e.to.as_str())?),
                i,
            ))
        })
        .unzip();
    // A pipeline input's value is in its editor; numbers and booleans fit in their row.
    let has_preview = |n: &daggr_codegen::ir::NodeIr| {
        n.kind != crate::INPUT_KIND && n.outputs.iter().any(|p| !fits_in_a_row(&p.ty))
    };
    // Each constant input's widget and hint, once: a text area takes more than a row.
    let nodes: Vec<&dyn crate::node::Node> = pipeline.nodes().collect();
    let widgets: Vec<Vec<Option<Widget>>> = ir
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            n.inputs
                .iter()
                .enumerate()
                .map(|(p, port)| {
                    (port.source.as_deref() == Some("const"))
                        .then(|| input_widget(pipeline, &nodes, i, p, &port.ty))
                })
                .collect()
        })
        .collect();
    let input_rows = |i: usize| -> usize {
        widgets[i]
            .iter()
            .map(|w| port_rows(w.as_ref().map(|w| w.0)))
            .sum()
    };
    let heights: Vec<f64> = ir
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            card_height(CardShape {
                ports: input_rows(i) + n.outputs.len(),
                preview: has_preview(n),
                parts: parts_rows(&n.kind),
            })
        })
        .collect();
    // A group of inputs is one card: a row per member (its value's editor).
    let groups: Vec<(Vec<usize>, f64)> = pipeline
        .input_groups()
        .iter()
        .map(|g| {
            let rows = g.members.iter().filter(|&&m| m < ir.nodes.len());
            let shape = CardShape {
                ports: rows.map(|&m| input_rows(m).max(1)).sum(),
                ..CardShape::default()
            };
            (g.members.clone(), card_height(shape))
        })
        .collect();
    let grouped = layout_grouped(ir.nodes.len(), &edges, &heights, &groups);
    let placed = &grouped.layout;
    let (boxes, width, height) = (&placed.boxes, placed.width, placed.height);
    let groups_json: Vec<Json_> = pipeline
        .input_groups()
        .iter()
        .zip(&grouped.groups)
        .map(|(g, b)| {
            let members: Vec<&str> = g
                .members
                .iter()
                .filter_map(|&m| ir.nodes.get(m).map(|n| n.name.as_str()))
                .collect();
            json!({ "name": g.name, "members": members, "x": px(b.x), "y": px(b.y), "w": px(b.w), "h": px(b.h) })
        })
        .collect();
    let mut routes = vec![Vec::new(); ir.edges.len()];
    for (route, i) in placed.routes.iter().zip(laid) {
        routes[i] = route.clone();
    }
    let edges_json: Vec<Json_> = ir
        .edges
        .iter()
        .zip(&routes)
        .map(|(e, route)| {
            let mut j = serde_json::to_value(e).unwrap_or(Json_::Null);
            if !route.is_empty() {
                // Flat [x, y, x, y, …]: the page draws the edge through these points.
                j["route"] = route.iter().flat_map(|&(x, y)| [px(x), px(y)]).collect();
            }
            j
        })
        .collect();
    let nodes: Vec<Json_> = ir
        .nodes
        .iter()
        .zip(boxes)
        .enumerate()
        .map(|(i, (n, b))| {
            let inputs: Vec<Json_> = n
                .inputs
                .iter()
                .enumerate()
                .map(|(port_index, p)| {
                    let source = p.source.clone().unwrap_or_else(|| "edge".into());
                    let mut port = json!({ "name": p.name, "type": p.ty, "source": source });
                    if let Some(Some((widget, hint))) = widgets[i].get(port_index) {
                        port["widget"] = json!(widget);
                        if let Some(hint) = hint {
                            port["hint"] = hint.clone();
                        }
                    }
                    port
                })
                .collect();
            let mut node = json!({
                "index": i, "name": n.name, "kind": n.kind,
                "x": px(b.x), "y": px(b.y), "w": px(b.w), "h": px(b.h), "preview": has_preview(n),
                "inputs": inputs,
                "outputs": n.outputs.iter().map(|p| json!({ "name": p.name, "type": p.ty })).collect::<Vec<_>>(),
                "location": n.location,
            });
            // Fields of some kinds only: left out elsewhere (a 5 000-node graph is big).
            if n.group.is_some() {
                node["group"] = json!(n.group);
            }
            if !n.variants.is_empty() {
                node["variants"] = json!(n.variants);
            }
            if !n.mapped.is_empty() {
                node["mapped"] = json!(n.mapped);
            }
            // What a map's output holds when items fail (the page pairs values with items).
            if let Some(crate::composite::Composite::Map(plan)) =
                runtime_nodes.get(i).and_then(|n| n.composite())
            {
                node["failures"] = json!(plan.failures());
            }
            node
        })
        .collect();
    json!({
        "name": ir.name, "width": px(width), "height": px(height), "nodes": nodes, "edges": edges_json,
        "groups": groups_json,
    })
}

/// A canvas coordinate for the page: a whole number as an integer (`344`, not `344.0`; the
/// layout places on whole pixels), anything else as it is.
fn px(v: f64) -> Json_ {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

async fn graph(State(app): State<Arc<App>>) -> Response {
    // The graph never changes while the server runs (positions dragged by hand are in the
    // sheet's state): written once, then every page load gets the same bytes (writing a
    // 5 000-node graph's 1.5 MB took 20-50 ms a request).
    let body = app.graph_body.get_or_init(|| {
        // A `Value` always serializes (its map keys are strings).
        Bytes::from(serde_json::to_vec(&app.graph).unwrap_or_default())
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

async fn export(
    State(app): State<Arc<App>>,
    format: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let ir = app.template.graph_ir();
    let (body, mime) = match path(format)?.as_str() {
        "mermaid" => (ir.to_mermaid(), "text/plain; charset=utf-8"),
        "dot" => (ir.to_dot(), "text/vnd.graphviz; charset=utf-8"),
        "json" => (ir.to_json(), "application/json"),
        other => {
            return Err(bad(format!(
                "unknown export format `{other}`: use mermaid, dot or json"
            )))
        }
    };
    Ok(([(header::CONTENT_TYPE, mime)], body).into_response())
}

async fn list_sheets(State(app): State<Arc<App>>) -> ApiResult {
    let sheets: Vec<Json_> = app
        .store
        .list(app.template.name())?
        .into_iter()
        .map(|s| json!({ "name": s.name, "created_ms": s.created_ms, "updated_ms": s.updated_ms }))
        .collect();
    Ok(Json(json!({ "sheets": sheets, "default": app.default_sheet })).into_response())
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

#[derive(Deserialize)]
struct ToBody {
    to: String,
}

fn valid_sheet_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(|c| c.is_control()) {
        return Err(bad("a sheet name must be 1 to 200 printable characters"));
    }
    Ok(())
}

async fn create_sheet(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let NameBody { name } = parse(body)?;
    valid_sheet_name(&name)?;
    let sheet = app.store.create(&app.template, &name)?;
    app.adopt(sheet);
    Ok((StatusCode::CREATED, Json(json!({ "name": name }))).into_response())
}

async fn rename_sheet(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let sheet = path(sheet)?;
    let ToBody { to } = parse(body)?;
    valid_sheet_name(&to)?;
    let open = app.sheet(&sheet)?;
    ensure_idle(&open).await?;
    app.store.rename(app.template.name(), &sheet, &to)?;
    lock(&app.sheets).remove(&sheet);
    open.live
        .push("state_changed", json!({ "reason": "sheet" }));
    Ok(Json(json!({ "name": to })).into_response())
}

async fn fork_sheet(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let sheet = path(sheet)?;
    let ToBody { to } = parse(body)?;
    valid_sheet_name(&to)?;
    let forked = app.store.fork(&app.template, &sheet, &to)?;
    app.adopt(forked);
    Ok((StatusCode::CREATED, Json(json!({ "name": to }))).into_response())
}

async fn delete_sheet(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let sheet = path(sheet)?;
    let open = lock(&app.sheets).get(&sheet).cloned();
    if let Some(open) = open {
        ensure_idle(&open).await?;
    }
    // The page always shows a sheet: like its own button, the API keeps the last one.
    let sheets = app.store.list(app.template.name())?;
    if sheets.len() == 1 && sheets[0].name == sheet {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("`{sheet}` is the last sheet: create another one before deleting it"),
        ));
    }
    app.store.delete(app.template.name(), &sheet)?;
    if let Some(open) = lock(&app.sheets).remove(&sheet) {
        open.live
            .push("state_changed", json!({ "reason": "sheet" }));
    }
    Ok(Json(json!({ "deleted": sheet })).into_response())
}

/// `/api/blobs/{integrity}?mime=…` for every media reference found in `value`.
fn media_of(value: &Json_, into: &mut Vec<Json_>) {
    match value {
        Json_::Object(map) => {
            if let (
                Some(Json_::String(kind)),
                Some(Json_::String(mime)),
                Some(Json_::String(blob)),
            ) = (map.get("kind"), map.get("mime"), map.get("blob"))
            {
                into.push(json!({
                    "kind": kind, "mime": mime, "name": map.get("name"),
                    "url": format!("/api/blobs/{}?mime={}", encode_query(blob), encode_query(mime)),
                }));
                return;
            }
            map.values().for_each(|v| media_of(v, into));
        }
        Json_::Array(items) => items.iter().for_each(|v| media_of(v, into)),
        _ => {}
    }
}

/// `GET …/state`. Written straight to JSON from these structs: built as `json!` maps, the
/// nodes of a 5 000-node graph took about 100 ms to answer; fields with nothing to say are
/// left out.
#[derive(serde::Serialize)]
struct StateJson<'a> {
    sheet: &'a str,
    default_sheet: &'a str,
    running: bool,
    last_event_id: u64,
    viewport: Option<Json_>,
    positions: BTreeMap<String, NodePosition>,
    nodes: Vec<NodeStateJson<'a>>,
    timeline: Vec<super::live::Bar>,
}

/// One node's part of the state (see `inspector/API.md`).
#[derive(serde::Serialize)]
struct NodeStateJson<'a> {
    name: &'a str,
    status: &'static str,
    stale: bool,
    /// A stale result: which input made it stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    stale_because: Option<String>,
    elapsed_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<Json_>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped_because: Option<String>,
    log_lines: usize,
    history: crate::sheet::HistorySummary,
    inputs: Vec<InputStateJson<'a>>,
    outputs: Vec<OutputStateJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<Json_>,
}

#[derive(serde::Serialize)]
struct InputStateJson<'a> {
    port: &'a str,
    value: Json_,
    overridden: bool,
}

#[derive(serde::Serialize)]
struct OutputStateJson<'a> {
    port: &'a str,
    #[serde(rename = "type")]
    ty: String,
    value: Json_,
    media: Vec<Json_>,
}

fn state_json<'a>(app: &'a App, open: &'a OpenSheet) -> Result<StateJson<'a>, Error> {
    let pipeline = open.sheet.pipeline();
    let stale: std::collections::HashSet<String> = pipeline.stale_nodes().into_iter().collect();
    let summary = open.sheet.history_summary()?;
    // Which input made each stale result stale (a changed constant's value before comes
    // from the sheet's record of the current result).
    let mut stale_because = explain::stale_reasons(pipeline, &stale, &mut |node| {
        let history = open.sheet.history(node).ok()?;
        history
            .into_iter()
            .find(|e| e.selected)
            .map(|e| e.provenance)
    });
    let mut nodes = Vec::with_capacity(stale.len());
    for (i, node) in pipeline.nodes().enumerate() {
        let spec = node.spec();
        let name = spec.name.as_str();
        let live = open.live.node(name);
        let result = pipeline.result(i)?;
        let is_stale = stale.contains(name);
        let status = if live.running {
            "running"
        } else if live.error.is_some() {
            "failed"
        } else if live.skipped_because.is_some() {
            "skipped"
        } else if result.is_none() {
            "pending"
        } else if is_stale {
            "stale"
        } else {
            match result.as_ref().map(|r| &r.outcome) {
                Some(Outcome::Cached(_)) => "cached",
                _ => "done",
            }
        };
        let inputs: Vec<InputStateJson> = spec
            .inputs
            .iter()
            .enumerate()
            .filter(|(p, _)| pipeline.is_constant_input(i, *p))
            .map(|(p, port)| InputStateJson {
                port: &port.name,
                value: pipeline
                    .constant_value(i, &port.name)
                    .ok()
                    .flatten()
                    .map(|v| v.to_json())
                    .unwrap_or(Json_::Null),
                overridden: pipeline.is_overridden(i, p),
            })
            .collect();
        let outputs: Vec<OutputStateJson> = match &result {
            Some(r) => spec
                .outputs
                .iter()
                .zip(r.outputs.iter())
                .map(|(port, v)| {
                    let value = v.to_json();
                    let mut media = Vec::new();
                    media_of(&value, &mut media);
                    OutputStateJson {
                        port: &port.name,
                        ty: daggr_codegen::ir::short_type_name(port.ty.name()),
                        value,
                        media,
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        let elapsed_ms = live
            .elapsed_ms
            .or(match result.as_ref().map(|r| &r.outcome) {
                Some(Outcome::Computed { elapsed, .. }) => Some(elapsed.as_secs_f64() * 1000.0),
                _ => None,
            });
        let history = summary.get(name).copied().unwrap_or_default();
        let log_lines = if shows_live_log(&live) {
            live.log_lines
        } else {
            result.as_ref().map_or(0, |r| r.logs.lines.len())
        };
        nodes.push(NodeStateJson {
            name,
            status,
            stale: is_stale,
            stale_because: (status == "stale")
                .then(|| stale_because.remove(&i))
                .flatten(),
            elapsed_ms,
            error: live.error,
            progress: live.progress,
            skipped_because: live.skipped_because,
            log_lines,
            history,
            inputs,
            outputs,
            parts: result
                .as_ref()
                .and_then(|r| r.parts.as_deref())
                .map(parts_json),
        });
    }
    Ok(StateJson {
        sheet: open.sheet.name(),
        default_sheet: &app.default_sheet,
        running: executing(open),
        last_event_id: open.live.last_id(),
        viewport: open.sheet.viewport()?,
        positions: open.sheet.node_positions()?,
        nodes,
        timeline: open.live.timeline(),
    })
}

/// What a map's items or a choice's variants did, for the page: per item its outcome
/// (`computed`, `memory`, `disk`, `shared`, `failed`) and error; for a choice the variant
/// that produced the result and those that failed before it.
fn parts_json(parts: &crate::Parts) -> Json_ {
    match parts {
        crate::Parts::Items(items) => json!({
            "items": items.iter().map(|item| {
                let (outcome, error) = match &item.outcome {
                    Outcome::Computed { .. } => ("computed", None),
                    Outcome::Cached(source) => (match source {
                        crate::CacheSource::Memory => "memory",
                        crate::CacheSource::Disk => "disk",
                        crate::CacheSource::Shared => "shared",
                        _ => "cached",
                    }, None),
                    Outcome::Failed(e) => ("failed", Some(crate::event::error_chain(&**e))),
                    _ => ("skipped", None),
                };
                json!({ "outcome": outcome, "error": error, "key": item.key.to_hex() })
            }).collect::<Vec<_>>(),
        }),
        crate::Parts::Variant { used, failed } => json!({
            "variant": used,
            "failed": failed.iter().map(|(v, e)| json!({ "variant": v, "error": e })).collect::<Vec<_>>(),
        }),
    }
}

async fn state(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let open = app.sheet(&path(sheet)?)?;
    Ok(Json(state_json(&app, &open)?).into_response())
}

async fn history(
    State(app): State<Arc<App>>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let (sheet, node) = path(p)?;
    let open = app.sheet(&sheet)?;
    let wiring = explain::wiring(&app.graph);
    // Wired inputs show the upstream node and, when its history still has it, the value.
    let mut upstream = |name: &str| open.sheet.history(name);
    let mut seen = HashMap::new();
    let entries: Vec<Json_> = open
        .sheet
        .history(&node)?
        .into_iter()
        .map(|e| {
            let mut media = Vec::new();
            for o in &e.outputs {
                media_of(o, &mut media);
            }
            let inputs = explain::entry_inputs(&node, &e, &wiring, &mut upstream, &mut seen);
            json!({
                "id": e.id, "run": e.run, "outcome": e.outcome, "elapsed_ms": e.elapsed_ms,
                "finished_ms": e.finished_ms, "selected": e.selected, "outputs": e.outputs, "media": media,
                "log_lines": e.log_lines, "error": e.error, "attempts": e.attempts,
                "inputs": inputs,
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries })).into_response())
}

/// Why the node's current result was computed or reused (see `explain`).
async fn why(
    State(app): State<Arc<App>>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let (sheet, node) = path(p)?;
    let open = app.sheet(&sheet)?;
    let pipeline = open.sheet.pipeline();
    let live = match pipeline
        .result(pipeline.node_index(&node)?)?
        .map(|r| r.outcome)
    {
        Some(Outcome::Cached(source)) => Some(format!("cached:{source:?}").to_lowercase()),
        _ => None,
    };
    let history = open.sheet.history(&node)?;
    let wiring = explain::wiring(&app.graph);
    let cache = pipeline.cache().clone();
    let answer = tokio::task::spawn_blocking(move || {
        explain::explain(&cache, &node, &history, &wiring, live.as_deref())
    })
    .await
    .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(answer).into_response())
}

/// Whether the page shows a node's live log rather than its current result's: while it
/// runs, and after it failed (a failure is no result: the current one is the last good one,
/// with its own log; the failure's log is kept under its history entry).
fn shows_live_log(live: &super::live::NodeLive) -> bool {
    live.running || live.error.is_some()
}

#[derive(Deserialize)]
struct LogQuery {
    entry: Option<i64>,
}

/// A node's log: of history entry `?entry=ID`, or else the one the page shows now (see
/// [`shows_live_log`]), with the id of the newest event so live `node_log` events after it
/// can be appended without duplicates.
async fn logs(
    State(app): State<Arc<App>>,
    p: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult {
    let (sheet, node) = path(p)?;
    let LogQuery { entry } = query
        .map(|Query(q)| q)
        .map_err(|e| bad(format!("invalid query: {e}")))?;
    let open = app.sheet(&sheet)?;
    let index = open.sheet.pipeline().node_index(&node)?;
    let (source, logs, last_event_id) = match entry {
        Some(id) => ("entry", open.sheet.log(&node, id)?, open.live.last_id()),
        None => {
            let live = open.live.node(&node);
            let (live_logs, last_event_id) = open.live.node_log(&node);
            match live_logs.filter(|_| shows_live_log(&live)) {
                Some(logs) => ("live", logs, last_event_id),
                None => {
                    let logs = open.sheet.pipeline().result(index)?.map(|r| r.logs);
                    let logs = logs.map(|l| (*l).clone()).unwrap_or_default();
                    ("result", logs, last_event_id)
                }
            }
        }
    };
    Ok(Json(json!({
        "source": source, "entry": entry, "lines": logs.lines, "dropped": logs.dropped,
        "last_event_id": last_event_id,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct RunBody {
    scope: String,
    #[serde(default)]
    node: Option<String>,
}

async fn run(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let open = app.sheet(&path(sheet)?)?;
    let RunBody { scope, node } = parse(body)?;
    name("scope", &scope)?;
    if let Some(node) = &node {
        name("node name", node)?;
    }
    let needs_node = |node: Option<String>| -> Result<String, ApiError> {
        let node = node.ok_or_else(|| bad(format!("scope `{scope}` needs a `node`")))?;
        open.sheet.pipeline().node_index(&node)?;
        Ok(node)
    };
    let scope = match scope.as_str() {
        "all" => Scope::All,
        "to" => Scope::to(needs_node(node)?),
        "only" => Scope::only(needs_node(node)?),
        "from" => Scope::from(needs_node(node)?),
        other => {
            return Err(bad(format!(
                "unknown scope `{other}`: use all, to, only or from"
            )))
        }
    };
    let token = tokio_util::sync::CancellationToken::new();
    let run_number = claim_run_slot(&open, &token).await?;
    let task_open = open.clone();
    tokio::spawn(async move {
        if let Err(e) = task_open.sheet.run_with_cancel(scope, token).await {
            task_open.live.push(
                "run_error",
                json!({ "error": crate::node::event::error_chain(&e) }),
            );
        }
        lock(&task_open.run).take();
        task_open.run_done.notify_waiters();
        task_open
            .live
            .push("state_changed", json!({ "reason": "run" }));
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "run": run_number }))).into_response())
}

async fn cancel(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let open = app.sheet(&path(sheet)?)?;
    let cancelled = match lock(&open.run).as_ref() {
        Some(token) => {
            token.cancel();
            true
        }
        None => false,
    };
    Ok(Json(json!({ "cancelled": cancelled })).into_response())
}

#[derive(Deserialize)]
struct InputBody {
    node: String,
    port: String,
    value: Json_,
}

async fn set_input(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let open = app.sheet(&path(sheet)?)?;
    let InputBody { node, port, value } = parse(body)?;
    name("node name", &node)?;
    name("port name", &port)?;
    let pipeline = open.sheet.pipeline();
    let index = pipeline.node_index(&node)?;
    let spec = pipeline.nodes().nth(index).expect("valid index").spec();
    let (port_index, port_spec) = spec
        .inputs
        .iter()
        .enumerate()
        .find(|(_, p)| p.name == port)
        .ok_or_else(|| bad(format!("node `{node}` has no input port `{port}`")))?;
    if !pipeline.is_constant_input(index, port_index) {
        return Err(bad(format!(
            "input `{node}.{port}` is wired from another node and cannot be set"
        )));
    }
    let encoded = serde_json::to_vec(&value).map_err(|e| bad(e.to_string()))?;
    let decoded = port_spec
        .ty
        .decode_outside_from_disk(&encoded, pipeline.cache().dir())
        .map_err(|e| {
            bad(format!(
                "input `{node}.{port}` takes a `{}`: {e}",
                daggr_codegen::ir::short_type_name(port_spec.ty.name())
            ))
        })?;
    open.sheet.set_constant_value(&node, &port, decoded)?;
    open.live
        .push("state_changed", json!({ "reason": "input", "node": node }));
    Ok(Json(json!({ "ok": true })).into_response())
}

async fn clear_input(
    State(app): State<Arc<App>>,
    p: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult {
    let (sheet, node, port) = path(p)?;
    let open = app.sheet(&sheet)?;
    open.sheet.reset_constant(&node, &port)?;
    open.live
        .push("state_changed", json!({ "reason": "input", "node": node }));
    Ok(Json(json!({ "ok": true })).into_response())
}

#[derive(Deserialize)]
struct EntryBody {
    node: String,
    id: i64,
}

async fn select(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let open = app.sheet(&path(sheet)?)?;
    let EntryBody { node, id } = parse(body)?;
    name("node name", &node)?;
    ensure_idle(&open).await?;
    open.sheet.select(&node, id)?;
    open.live
        .push("state_changed", json!({ "reason": "select", "node": node }));
    Ok(Json(json!({ "ok": true })).into_response())
}

async fn restore(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let open = app.sheet(&path(sheet)?)?;
    let EntryBody { node, id } = parse(body)?;
    name("node name", &node)?;
    ensure_idle(&open).await?;
    open.sheet.restore_inputs_of(&node, id)?;
    open.live.push(
        "state_changed",
        json!({ "reason": "restore", "node": node }),
    );
    Ok(Json(json!({ "ok": true })).into_response())
}

#[derive(Deserialize)]
struct Viewport {
    x: f64,
    y: f64,
    zoom: f64,
}

async fn viewport(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let open = app.sheet(&path(sheet)?)?;
    let v: Viewport = parse(body)?;
    // A view the page cannot show (a pan of 1e308, a zoom of 1e-300) would open it blank.
    if !(v.x.abs() <= MAX_COORDINATE && v.y.abs() <= MAX_COORDINATE) {
        return Err(bad(format!(
            "the viewport's x and y must be finite numbers within ±{MAX_COORDINATE}"
        )));
    }
    if !(ZOOM_RANGE.contains(&v.zoom)) {
        return Err(bad(format!(
            "the zoom must be positive, within {} to {}",
            ZOOM_RANGE.start(),
            ZOOM_RANGE.end()
        )));
    }
    open.sheet
        .set_viewport(&json!({ "x": v.x, "y": v.y, "zoom": v.zoom }))?;
    Ok(Json(json!({ "ok": true })).into_response())
}

/// Positions beyond this are refused: no canvas is that large, and they would break the
/// page's bounds.
const MAX_COORDINATE: f64 = 1e6;
/// Zooms the server stores (the page itself keeps to 0.04 to 3).
const ZOOM_RANGE: std::ops::RangeInclusive<f64> = 0.01..=100.0;

async fn set_positions(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let open = app.sheet(&path(sheet)?)?;
    let positions: BTreeMap<String, NodePosition> = parse(body)?;
    for (node, p) in &positions {
        name("node name", node)?;
        if open.sheet.pipeline().node_index(node).is_err() {
            return Err(bad(format!("no node named `{node}` in this pipeline")));
        }
        if !(p.x.abs() <= MAX_COORDINATE && p.y.abs() <= MAX_COORDINATE) {
            return Err(bad(format!(
                "the position of `{node}` must be finite numbers within ±{MAX_COORDINATE}"
            )));
        }
    }
    open.sheet.set_node_positions(&positions)?;
    Ok(Json(json!({ "ok": true })).into_response())
}

async fn clear_positions(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let open = app.sheet(&path(sheet)?)?;
    open.sheet.set_node_positions(&BTreeMap::new())?;
    Ok(Json(json!({ "ok": true })).into_response())
}

async fn events(
    State(app): State<Arc<App>>,
    sheet: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let open = app.sheet(&path(sheet)?)?;
    let query = query.map(|Query(q)| q).map_err(|e| bad(e.to_string()))?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.get("last_event_id").map(String::as_str))
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| bad("Last-Event-ID must be a number"))
        })
        .transpose()?;
    // Subscribe before reading the backlog so nothing falls in between.
    let receiver = open.live.subscribe();
    let backlog = match last_id {
        None => Vec::new(),
        Some(id) => match open.live.since(id) {
            Some(events) => events,
            None => vec![super::live::LiveEvent {
                id: open.live.last_id(),
                name: "resync",
                data: json!({}),
            }],
        },
    };
    let replayed_to = backlog.last().map(|e| e.id).or(last_id).unwrap_or(0);
    let shutdown = app.shutdown.clone();
    struct Stream {
        backlog: std::vec::IntoIter<super::live::LiveEvent>,
        receiver: tokio::sync::broadcast::Receiver<super::live::LiveEvent>,
        replayed_to: u64,
        shutdown: tokio_util::sync::CancellationToken,
        open: Arc<OpenSheet>,
    }
    let stream = futures::stream::unfold(
        Stream {
            backlog: backlog.into_iter(),
            receiver,
            replayed_to,
            shutdown,
            open,
        },
        |mut s| async move {
            if let Some(e) = s.backlog.next() {
                return Some((Ok::<_, Infallible>(to_sse(&e)), s));
            }
            loop {
                let next = tokio::select! {
                    _ = s.shutdown.cancelled() => return None,
                    next = s.receiver.recv() => next,
                };
                match next {
                    Ok(e) if e.id <= s.replayed_to => continue,
                    Ok(e) => return Some((Ok(to_sse(&e)), s)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let id = s.open.live.last_id();
                        s.replayed_to = id;
                        let resync = super::live::LiveEvent {
                            id,
                            name: "resync",
                            data: json!({}),
                        };
                        return Some((Ok(to_sse(&resync)), s));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn kind_of(mime: &str) -> &'static str {
    match mime.split('/').next().unwrap_or("") {
        "image" => "image",
        "audio" => "audio",
        "video" => "video",
        _ => "file",
    }
}

async fn upload_blob(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_of(body)?;
    if body.is_empty() {
        return Err(bad("empty upload"));
    }
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(clean_mime)
        .unwrap_or("application/octet-stream")
        .to_string();
    let name = headers
        .get("x-daggr-filename")
        .and_then(|v| v.to_str().ok())
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control() && *c != '/' && *c != '\\')
                .take(200)
                .collect::<String>()
        });
    let cache = app.template.cache().clone();
    let size = body.len();
    let blob = tokio::task::spawn_blocking(move || cache.put_blob(&body))
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))??;
    let mut reference = json!({ "kind": kind_of(&mime), "mime": mime, "size": size, "blob": blob });
    if let Some(name) = name {
        reference["name"] = json!(name);
    }
    Ok((StatusCode::CREATED, Json(reference)).into_response())
}

/// Parses a single `bytes=` range against a length: `(start, end_inclusive)`.
fn parse_range(header: &str, len: usize) -> Option<Result<(usize, usize), ()>> {
    let spec = header.strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return Some(Err(()));
    }
    let (a, b) = spec.split_once('-')?;
    let range = match (a.trim(), b.trim()) {
        ("", suffix) => suffix
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map(|n| (len.saturating_sub(n), len - 1)),
        (start, "") => start
            .parse::<usize>()
            .ok()
            .filter(|s| *s < len)
            .map(|s| (s, len - 1)),
        (start, end) => match (start.parse::<usize>(), end.parse::<usize>()) {
            (Ok(s), Ok(e)) if s <= e && s < len => Some((s, e.min(len - 1))),
            _ => None,
        },
    };
    Some(range.ok_or(()))
}

async fn get_blob(
    State(app): State<Arc<App>>,
    integrity: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult {
    let integrity = path(integrity)?;
    let query = query.map(|Query(q)| q).map_err(|e| bad(e.to_string()))?;
    if crate::cache::parse_integrity(&integrity).is_none() {
        return Err(bad(
            "blobs are addressed by their integrity hash (sha256-…)",
        ));
    }
    let cache = app.template.cache().clone();
    let bytes = tokio::task::spawn_blocking(move || cache.get_blob(&integrity))
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
        .map_err(|_| ApiError(StatusCode::NOT_FOUND, "no such blob".into()))?;
    let mime = query
        .get("mime")
        .and_then(|m| clean_mime(m))
        .unwrap_or("application/octet-stream")
        .to_string();
    let inline = matches!(kind_of(&mime), "image" | "audio" | "video")
        || mime == "text/plain"
        || mime == "application/json";
    let mut response_headers = vec![
        (header::CONTENT_TYPE, mime),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (
            header::CACHE_CONTROL,
            "public, max-age=31536000, immutable".to_string(),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        // Stored bytes never run as a page of this origin.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox".to_string(),
        ),
    ];
    if !inline {
        response_headers.push((header::CONTENT_DISPOSITION, "attachment".to_string()));
    }
    let len = bytes.len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, body) = match range.and_then(|r| parse_range(r, len)) {
        None => (StatusCode::OK, bytes),
        Some(Ok((start, end))) => {
            response_headers.push((header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")));
            (StatusCode::PARTIAL_CONTENT, bytes[start..=end].to_vec())
        }
        Some(Err(())) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                Json(json!({ "error": "unsatisfiable range" })),
            )
                .into_response())
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in response_headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=5-1", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,3-4", 100), Some(Err(())));
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    /// A panicking handler answers 500 in JSON, and the server goes on serving.
    #[tokio::test]
    async fn a_panic_in_a_handler_is_a_500() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    "unreachable"
                }),
            )
            .route("/fine", get(|| async { "fine" }))
            .layer(catch_panics());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        for (path, wanted) in [("/boom", "500"), ("/fine", "200"), ("/boom", "500")] {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {wanted}")),
                "{answer}"
            );
            if wanted == "500" {
                assert!(answer.contains(r#""error":"internal error"#), "{answer}");
                assert!(answer.contains("boom"), "{answer}");
            }
        }
    }

    #[test]
    fn widgets_by_type() {
        assert_eq!(widget("String"), "text");
        assert_eq!(widget("u32"), "integer");
        assert_eq!(widget("Image"), "image");
        assert_eq!(widget("Vec<String>"), "json");
    }
}
