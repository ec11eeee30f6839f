//! The HTTP side of a Gradio app: `/config`, `{prefix}/info`, calls through
//! `{prefix}/call/{api}` or the queue protocol, uploads, downloads and cancellation.
//!
//! Every request that fails to connect, or answers 5xx or 429, is retried with backoff
//! (honouring `Retry-After`) before the job is accepted. A job that was accepted is never
//! resubmitted by the client: when its stream breaks the call fails (the node's own
//! [`crate::RetryPolicy`] decides whether to run it again) and the remote job is cancelled.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value as Json};
use tokio_util::sync::CancellationToken;

use super::sse::apply_diff;
use crate::kinds::hf::{is_hf_host, HfToken};
use crate::kinds::http::client::{self as http_client, Redirects};
use crate::kinds::http::retry::{retry_after, sleep_unless, RetryOn, RetryPolicy};
use crate::kinds::http::sse::SseParser;
use crate::Error;
// Reading `/info`, error bodies and token hosts is shared with `cargo daggr codegen
// gradio` (`daggr_codegen::gradio_info`); the types are re-exported as `daggr::gradio::…`.
use crate::kinds::hf::hub::is_space_host;
use crate::kinds::http::server_message;
use daggr_codegen::gradio_info::{parse_info, EndpointInfo};

/// Which route a call goes through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Protocol {
    /// `/call/{api}` on Gradio ≥ 6.13 (its `error` events carry the message), the queue
    /// protocol on older servers that speak `sse_v3` (where `/call` loses error text).
    #[default]
    Auto,
    /// Always `POST {prefix}/call/{api}` + `GET {prefix}/call/{api}/{event_id}`.
    Call,
    /// Always `POST {prefix}/queue/join` + `GET {prefix}/queue/data` (`sse_v3`).
    Queue,
}

/// How patient a client is.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Retries of a request that failed to connect or answered 5xx/429 (default 3).
    pub retries: u32,
    /// The first retry's delay, doubled for each further one (default 500 ms).
    pub backoff: Duration,
    /// The longest silence tolerated on an event stream (default 60 s; Gradio sends a
    /// heartbeat every 15 s, so this must stay well above that).
    pub read_timeout: Duration,
    /// Timeout of one plain request: config, info, upload, download (default 300 s).
    pub request_timeout: Duration,
    /// The route calls take.
    pub protocol: Protocol,
    /// An HTTP client of the caller's own (a proxy, a custom CA), used for every request
    /// except those whose secret a redirect could carry off another host: requests that
    /// carry the HF token to a Hugging Face host, and the login. Those go through a client
    /// daggr builds, which checks each redirect. `None` (default): daggr's own for all.
    pub http_client: Option<reqwest::Client>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            retries: 3,
            backoff: Duration::from_millis(500),
            read_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(300),
            protocol: Protocol::Auto,
            http_client: None,
        }
    }
}

/// What a running call reports before its result.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Update {
    /// Queue position, start, Gradio progress bars, retries: a fraction when known.
    Progress(Option<f32>, String),
    /// A generator's latest (full) outputs, one JSON value per output component.
    Partial(Vec<Json>),
}

/// A username and password for an app launched with Gradio's own login
/// (`launch(auth=(user, password))`). `Debug` shows the username only; the password is
/// sent only in the form of `POST {app}/login`, never logged, never in an error.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    username: String,
    password: String,
}

impl Login {
    /// The credentials the app was launched with.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Login {
        Login {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// `text` with the password blanked out, for a message built from what the server
    /// answered to the login (a server may echo the form it got).
    fn redact(&self, text: &str) -> String {
        if self.password.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.password, "<redacted>")
        }
    }
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Clone, Debug)]
struct Dependency {
    fn_index: u64,
    api_name: Option<String>,
    generator: bool,
}

/// A connection to one Gradio app: what `/config` and `/info` said, and the HTTP client.
/// Cheap to clone.
#[derive(Clone)]
pub struct GradioClient {
    inner: Arc<Inner>,
}

struct Inner {
    node: String,
    service: String,
    base: String,
    prefix: String,
    version: String,
    protocol_name: String,
    max_file_size: Option<u64>,
    dependencies: Vec<Dependency>,
    endpoints: BTreeMap<String, EndpointInfo>,
    /// The caller's client, else the same as `guarded`.
    http: reqwest::Client,
    /// daggr's own, whose redirects never take the token off Hugging Face.
    guarded: reqwest::Client,
    token: Option<HfToken>,
    login: Option<Login>,
    /// The `Cookie` header of the current login session (`name=value; …`), sent only to
    /// this app's origin.
    cookies: Mutex<Option<String>>,
    options: ClientOptions,
    uploads: Mutex<HashMap<String, Json>>,
}

/// A short random id for a queue session.
fn session_hash() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..11)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// The longest wait between two tries of a request, computed or asked for.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Adds the token to a request when (and only when) it goes to a Hugging Face host.
pub(crate) fn authorize(
    request: reqwest::RequestBuilder,
    url: &str,
    token: Option<&HfToken>,
) -> reqwest::RequestBuilder {
    match token {
        Some(t) if is_hf_host(url) => {
            if is_space_host(url) {
                // As gradio_client does: the HF proxy reads it, the Space's code does not.
                request.header("x-hf-authorization", format!("Bearer {}", t.expose()))
            } else {
                request.bearer_auth(t.expose())
            }
        }
        _ => request,
    }
}

/// Whether two URLs have the same scheme, host and port (where a session cookie may go).
fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

/// The `Cookie` header for the cookies a response sets (`name=value` of each; their
/// attributes are this client's business: they go to the app's origin only, for as long
/// as the client lives). `None` when it sets none.
fn cookie_header(response: &reqwest::Response) -> Option<String> {
    let pairs: Vec<&str> = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|pair| pair.contains('='))
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("; "))
}

/// What a server path keeps unencoded in the `file=` route: unreserved characters and `/`.
const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a server path for the `file=` route (keeps `/`).
fn encode_path(path: &str) -> String {
    percent_encoding::utf8_percent_encode(path, PATH).to_string()
}

fn parse_version(v: &str) -> (u64, u64) {
    let mut parts = v
        .split(['.', '-', 'b', 'r'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

impl GradioClient {
    /// Connects to the app at `base`: logs in with `login` if given (`POST {base}/login`),
    /// then reads `/config` and `{prefix}/info`. `node` and `service` name the caller and
    /// the app in errors (`"Space owner/name"`); the token goes only to Hugging Face
    /// hosts, the login's session cookies only to the app's own origin.
    pub async fn connect(
        base: &str,
        node: &str,
        service: &str,
        token: Option<HfToken>,
        login: Option<Login>,
        options: ClientOptions,
    ) -> Result<GradioClient, Error> {
        let guarded =
            http_client::build(Redirects::KeepTokenOnHf, None).map_err(|e| Error::Remote {
                node: node.to_string(),
                service: service.to_string(),
                endpoint: "/config".into(),
                status: None,
                message: e.to_string(),
            })?;
        let http = options
            .http_client
            .clone()
            .unwrap_or_else(|| guarded.clone());
        let mut inner = Inner {
            node: node.to_string(),
            service: service.to_string(),
            base: base.trim_end_matches('/').to_string(),
            prefix: String::new(),
            version: String::new(),
            protocol_name: String::new(),
            max_file_size: None,
            dependencies: Vec::new(),
            endpoints: BTreeMap::new(),
            http,
            guarded,
            token,
            login,
            cookies: Mutex::new(None),
            options,
            uploads: Mutex::new(HashMap::new()),
        };
        let never = CancellationToken::new();
        // An app with a login answers 401 on every route, /config included, until then.
        inner.log_in(&never).await?;
        let config_url = format!("{}/config", inner.base);
        let response = inner
            .send("/config", &never, &mut |_| {}, &config_url, |http, u| {
                http.get(u).timeout(inner.options.request_timeout)
            })
            .await?;
        let config: Json = inner.json_body("/config", response).await?;
        inner.prefix = config
            .get("api_prefix")
            .and_then(Json::as_str)
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        inner.version = config
            .get("version")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        inner.protocol_name = config
            .get("protocol")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        inner.max_file_size = config.get("max_file_size").and_then(Json::as_u64);
        inner.dependencies = config
            .get("dependencies")
            .and_then(Json::as_array)
            .map(|deps| {
                deps.iter()
                    .enumerate()
                    .map(|(i, d)| Dependency {
                        fn_index: d.get("id").and_then(Json::as_u64).unwrap_or(i as u64),
                        api_name: d
                            .get("api_name")
                            .and_then(Json::as_str)
                            .map(|s| s.trim_start_matches('/').to_string()),
                        generator: d.pointer("/types/generator").and_then(Json::as_bool)
                            == Some(true),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let info_url = format!("{}{}/info", inner.base, inner.prefix);
        let response = inner
            .send("/info", &never, &mut |_| {}, &info_url, |http, u| {
                http.get(u)
                    .query(&[("serialize", "False")])
                    .timeout(inner.options.request_timeout)
            })
            .await;
        // An app may hide its API description; calls then go by position.
        if let Ok(response) = response {
            if let Ok(info) = inner.json_body("/info", response).await {
                inner.endpoints = parse_info(&info).unwrap_or_default();
            }
        }
        Ok(GradioClient {
            inner: Arc::new(inner),
        })
    }

    /// The app's base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The API prefix: `/gradio_api` on Gradio 5 and 6, empty on 4.
    pub fn api_prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The Gradio version the app reports.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The documented endpoints (`/info`), by API name with its leading slash.
    pub fn endpoints(&self) -> &BTreeMap<String, EndpointInfo> {
        &self.inner.endpoints
    }

    /// Whether the app has an endpoint `api` (`/name`), documented or not.
    pub fn has_endpoint(&self, api: &str) -> bool {
        self.inner.endpoints.contains_key(api) || self.inner.dependency(api).is_some()
    }

    /// Whether `api` is a generator (it streams partial outputs).
    pub fn is_generator(&self, api: &str) -> bool {
        self.inner.dependency(api).is_some_and(|d| d.generator)
    }

    /// The API names the app declares (`/name`).
    pub fn api_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.endpoints.keys().cloned().collect();
        for d in &self.inner.dependencies {
            if let Some(n) = &d.api_name {
                let n = format!("/{n}");
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        names
    }

    /// The route calls will take for this server.
    pub fn effective_protocol(&self) -> Protocol {
        let i = &self.inner;
        match i.options.protocol {
            Protocol::Auto => {
                let (major, minor) = parse_version(&i.version);
                if (major, minor) >= (6, 13) || i.protocol_name != "sse_v3" {
                    Protocol::Call
                } else {
                    Protocol::Queue
                }
            }
            p => p,
        }
    }

    /// Calls `api` (`/name`) with one JSON value per parameter, in order; returns one
    /// JSON value per output. Progress and partial outputs go to `on_update`; when
    /// `cancel` fires, the remote job is cancelled and the call ends with
    /// [`Error::Cancelled`].
    pub async fn predict(
        &self,
        api: &str,
        data: Vec<Json>,
        cancel: &CancellationToken,
        on_update: &mut (dyn FnMut(Update) + Send),
    ) -> Result<Vec<Json>, Error> {
        let dep = self.inner.dependency(api).cloned();
        match self.effective_protocol() {
            Protocol::Queue => {
                let Some(dep) = dep else {
                    return Err(self.inner.remote(
                        api,
                        None,
                        "the app's /config lists no such endpoint, which the queue protocol needs",
                    ));
                };
                self.call_queue(api, &dep, data, cancel, on_update).await
            }
            _ => {
                self.call_simple(api, dep.as_ref(), data, cancel, on_update)
                    .await
            }
        }
    }

    async fn call_simple(
        &self,
        api: &str,
        dep: Option<&Dependency>,
        data: Vec<Json>,
        cancel: &CancellationToken,
        on_update: &mut (dyn FnMut(Update) + Send),
    ) -> Result<Vec<Json>, Error> {
        let i = &self.inner;
        let name = api.trim_start_matches('/');
        let url = format!("{}{}/call/{name}", i.base, i.prefix);
        let body = json!({ "data": data });
        let response = i
            .send(api, cancel, on_update, &url, |http, u| {
                http.post(u).json(&body).timeout(i.options.request_timeout)
            })
            .await?;
        let accepted: Json = i.json_body(api, response).await?;
        let Some(event_id) = accepted.get("event_id").and_then(Json::as_str) else {
            return Err(i.remote(api, None, format!("no event_id in {accepted}")));
        };
        let mut guard = CancelGuard {
            client: self.clone(),
            fn_index: dep.map(|d| d.fn_index),
            session: event_id.to_string(),
            event_id: event_id.to_string(),
            armed: true,
        };
        on_update(Update::Progress(None, "queued".into()));
        let stream_url = format!("{url}/{event_id}");
        let response = i
            .send(api, cancel, on_update, &stream_url, |http, u| http.get(u))
            .await?;
        let response = i.ok(api, response).await?;
        let mut stream = response.bytes_stream();
        let mut parser = SseParser::new();
        loop {
            let chunk = i
                .next_chunk(&mut stream, cancel, &mut guard, api, parser.has_partial())
                .await?;
            for event in parser.push(&chunk) {
                let data: Json = serde_json::from_str(&event.data).unwrap_or(Json::Null);
                match event.event.as_deref() {
                    Some("generating") => {
                        if let Json::Array(values) = data {
                            on_update(Update::Partial(values));
                        }
                    }
                    Some("complete") => {
                        guard.armed = false;
                        return match data {
                            Json::Array(values) => Ok(values),
                            Json::Null => Err(i.remote(
                                api,
                                None,
                                "the job was cancelled on the server before it finished",
                            )),
                            other => Err(i.remote(api, None, format!("unexpected result {other}"))),
                        };
                    }
                    Some("error") => {
                        guard.armed = false;
                        let message = match &data {
                            Json::Object(o) => match o.get("error") {
                                Some(Json::String(s)) => unquote(s),
                                _ => "the app raised an error and did not show its message (it runs with show_error=False)".into(),
                            },
                            Json::String(s) => s.clone(),
                            _ => format!(
                                "the app raised an error; Gradio {} sends no message on /call (Gradio ≥ 6.13 does; the queue protocol does on any version)",
                                i.version
                            ),
                        };
                        return Err(i.remote(api, None, message));
                    }
                    _ => {} // heartbeat
                }
            }
        }
    }

    async fn call_queue(
        &self,
        api: &str,
        dep: &Dependency,
        data: Vec<Json>,
        cancel: &CancellationToken,
        on_update: &mut (dyn FnMut(Update) + Send),
    ) -> Result<Vec<Json>, Error> {
        let i = &self.inner;
        let session = session_hash();
        let join_url = format!("{}{}/queue/join", i.base, i.prefix);
        let body = json!({
            "data": data,
            "fn_index": dep.fn_index,
            "session_hash": session,
            "event_data": null,
            "trigger_id": null,
        });
        let response = i
            .send(api, cancel, on_update, &join_url, |http, u| {
                http.post(u)
                    .header("x-gradio-user", "api")
                    .json(&body)
                    .timeout(i.options.request_timeout)
            })
            .await?;
        let accepted: Json = i.json_body(api, response).await?;
        let Some(event_id) = accepted.get("event_id").and_then(Json::as_str) else {
            return Err(i.remote(api, None, format!("no event_id in {accepted}")));
        };
        let mut guard = CancelGuard {
            client: self.clone(),
            fn_index: Some(dep.fn_index),
            session: session.clone(),
            event_id: event_id.to_string(),
            armed: true,
        };
        let data_url = format!("{}{}/queue/data", i.base, i.prefix);
        let response = i
            .send(api, cancel, on_update, &data_url, |http, u| {
                http.get(u).query(&[("session_hash", &session)])
            })
            .await?;
        let response = i.ok(api, response).await?;
        let mut stream = response.bytes_stream();
        let mut parser = SseParser::new();
        let mut current: Option<Vec<Json>> = None;
        loop {
            let chunk = i
                .next_chunk(&mut stream, cancel, &mut guard, api, parser.has_partial())
                .await?;
            for event in parser.push(&chunk) {
                let Ok(msg) = serde_json::from_str::<Json>(&event.data) else {
                    continue;
                };
                if let Some(id) = msg.get("event_id").and_then(Json::as_str) {
                    if id != event_id {
                        continue;
                    }
                }
                match msg.get("msg").and_then(Json::as_str).unwrap_or("") {
                    "estimation" => {
                        let rank = msg.get("rank").and_then(Json::as_u64).unwrap_or(0);
                        let size = msg.get("queue_size").and_then(Json::as_u64).unwrap_or(0);
                        on_update(Update::Progress(
                            None,
                            format!("queued: position {} of {size}", rank + 1),
                        ));
                    }
                    "process_starts" => on_update(Update::Progress(None, "running".into())),
                    "progress" => {
                        if let Some(p) = msg
                            .get("progress_data")
                            .and_then(Json::as_array)
                            .and_then(|a| a.last())
                        {
                            let fraction = p.get("progress").and_then(Json::as_f64).or_else(|| {
                                let index = p.get("index").and_then(Json::as_f64)?;
                                let length = p.get("length").and_then(Json::as_f64)?;
                                (length > 0.0).then(|| index / length)
                            });
                            let desc = p.get("desc").and_then(Json::as_str).unwrap_or("progress");
                            on_update(Update::Progress(
                                fraction.map(|f| f as f32),
                                desc.to_string(),
                            ));
                        }
                    }
                    "log" => {
                        if let Some(log) = msg.get("log").and_then(Json::as_str) {
                            on_update(Update::Progress(None, log.to_string()));
                        }
                    }
                    "process_generating" => {
                        let output = msg.get("output").cloned().unwrap_or(Json::Null);
                        if msg.get("success").and_then(Json::as_bool) == Some(false) {
                            guard.armed = false;
                            return Err(i.remote(api, None, queue_error(&output)));
                        }
                        let Some(values) = output.get("data").and_then(Json::as_array) else {
                            continue;
                        };
                        let next = match current.take() {
                            // The first update carries values, later ones diffs.
                            None => values.clone(),
                            Some(previous) => previous
                                .into_iter()
                                .zip(values)
                                .map(|(old, diff)| apply_diff(old, diff))
                                .collect::<Result<Vec<_>, _>>()
                                .map_err(|e| i.remote(api, None, format!("bad update: {e}")))?,
                        };
                        on_update(Update::Partial(next.clone()));
                        current = Some(next);
                    }
                    "process_completed" => {
                        guard.armed = false;
                        let output = msg.get("output").cloned().unwrap_or(Json::Null);
                        if msg.get("success").and_then(Json::as_bool) == Some(true) {
                            return match output.get("data") {
                                Some(Json::Array(values)) => Ok(values.clone()),
                                _ => Err(i.remote(
                                    api,
                                    None,
                                    "the job was cancelled on the server before it finished",
                                )),
                            };
                        }
                        return Err(i.remote(api, None, queue_error(&output)));
                    }
                    "unexpected_error" => {
                        guard.armed = false;
                        let m = msg
                            .get("message")
                            .and_then(Json::as_str)
                            .unwrap_or("unexpected server error");
                        return Err(i.remote(api, None, m.to_string()));
                    }
                    "queue_full" => {
                        guard.armed = false;
                        return Err(i.remote(api, Some(503), "the app's queue is full"));
                    }
                    "close_stream" => return Err(i.ended(api, false)),
                    _ => {} // heartbeat, process_streaming, …
                }
            }
        }
    }

    /// Uploads a file (`POST {prefix}/upload`) and returns its FileData object. The same
    /// content (by `integrity`) is uploaded once per connection.
    pub async fn upload(
        &self,
        bytes: &[u8],
        name: &str,
        mime: &str,
        integrity: &str,
        cancel: &CancellationToken,
    ) -> Result<Json, Error> {
        let i = &self.inner;
        if let Some(fd) = i.uploads.lock().unwrap().get(integrity) {
            return Ok(fd.clone());
        }
        if let Some(max) = i.max_file_size {
            if bytes.len() as u64 > max {
                return Err(i.remote(
                    "/upload",
                    None,
                    format!(
                        "`{name}` is {} bytes; the app accepts at most {max}",
                        bytes.len()
                    ),
                ));
            }
        }
        let url = format!("{}{}/upload", i.base, i.prefix);
        let response = i
            .send("/upload", cancel, &mut |_| {}, &url, |http, u| {
                let part = reqwest::multipart::Part::bytes(bytes.to_vec())
                    .file_name(name.to_string())
                    .mime_str(mime)
                    .unwrap_or_else(|_| {
                        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string())
                    });
                http.post(u)
                    .multipart(reqwest::multipart::Form::new().part("files", part))
                    .timeout(i.options.request_timeout)
            })
            .await?;
        let paths: Json = i.json_body("/upload", response).await?;
        let Some(path) = paths.get(0).and_then(Json::as_str) else {
            return Err(i.remote("/upload", None, format!("unexpected answer {paths}")));
        };
        let fd = json!({
            "path": path,
            "orig_name": name,
            "size": bytes.len(),
            "mime_type": mime,
            "meta": { "_type": "gradio.FileData" },
        });
        i.uploads
            .lock()
            .unwrap()
            .insert(integrity.to_string(), fd.clone());
        Ok(fd)
    }

    /// Downloads a file output (a FileData object): its bytes, MIME type (when the
    /// server or the object said) and file name.
    pub async fn download(
        &self,
        file: &Json,
        cancel: &CancellationToken,
    ) -> Result<(Vec<u8>, Option<String>, Option<String>), Error> {
        let i = &self.inner;
        let path = file.get("path").and_then(Json::as_str);
        let url_field = file.get("url").and_then(Json::as_str);
        let is_stream = file.get("is_stream").and_then(Json::as_bool) == Some(true);
        let url = match (path, url_field) {
            (Some(p), _) if !is_stream && !p.starts_with("http") => {
                format!("{}{}/file={}", i.base, i.prefix, encode_path(p))
            }
            (_, Some(u)) => u.to_string(),
            (Some(p), None) => p.to_string(),
            (None, None) => {
                return Err(i.remote(
                    "/file",
                    None,
                    format!("a file output without path or url: {file}"),
                ))
            }
        };
        // Gradio 6 can serve a file output while it is still being written: the body then
        // ends early (an error, or fewer bytes than FileData's `size`). Such a read is tried
        // again as a failed request is (the client's one retry policy), before it is an
        // error.
        let expected_size = file.get("size").and_then(Json::as_u64);
        let policy = i.retry_policy();
        let mut attempt = 0u32;
        let (bytes, header_mime) = loop {
            attempt += 1;
            let last = attempt > policy.retries;
            let response = i
                .send("/file", cancel, &mut |_| {}, &url, |http, u| {
                    http.get(u).timeout(i.options.request_timeout)
                })
                .await?;
            let response = i.ok("/file", response).await?;
            let header_mime = response
                .headers()
                .get("content-type")
                .and_then(|h| h.to_str().ok())
                .map(|m| m.split(';').next().unwrap_or(m).trim().to_string())
                .filter(|m| m != "application/octet-stream");
            let read = tokio::select! {
                b = response.bytes() => b,
                _ = cancel.cancelled() => return Err(Error::Cancelled { node: i.node.clone() }),
            };
            match read {
                Ok(b) if last || expected_size.is_none_or(|n| n == b.len() as u64) => {
                    break (b, header_mime)
                }
                Err(e) if last => {
                    return Err(i.broken("/file", &crate::node::event::error_chain(&e)))
                }
                _ => {
                    if !sleep_unless(policy.backoff(attempt), cancel.cancelled()).await {
                        return Err(Error::Cancelled {
                            node: i.node.clone(),
                        });
                    }
                }
            }
        };
        let mime = header_mime.or_else(|| {
            file.get("mime_type")
                .and_then(Json::as_str)
                .map(str::to_string)
        });
        let name = file
            .get("orig_name")
            .and_then(Json::as_str)
            .map(str::to_string)
            .or_else(|| path.and_then(|p| p.rsplit('/').next()).map(str::to_string));
        Ok((bytes.to_vec(), mime, name))
    }

    /// Asks the server to cancel a job (best effort).
    async fn cancel(&self, fn_index: Option<u64>, session: &str, event_id: &str) {
        let i = &self.inner;
        let url = format!("{}{}/cancel", i.base, i.prefix);
        let body = json!({ "fn_index": fn_index, "session_hash": session, "event_id": event_id });
        let request = i.authorize(
            i.client_for(&url)
                .post(&url)
                .json(&body)
                .timeout(Duration::from_secs(5)),
            &url,
        );
        match request.send().await {
            Ok(r) => {
                tracing::debug!(node = %i.node, status = %r.status(), "cancelled the remote job")
            }
            Err(e) => {
                tracing::debug!(node = %i.node, error = %e, "could not cancel the remote job")
            }
        }
    }

    /// Connects to `target` as a `GradioNode` does, for a caller holding a Space id rather
    /// than a URL (`cargo daggr codegen gradio`): a Space is resolved through `hub`
    /// (`$HF_ENDPOINT` by default, see [`super::space::default_hub`]), waiting up to
    /// `space_wait` while it builds; then [`GradioClient::connect`], without a login.
    /// Errors name the app as [`super::space::Target::describe`] does; a Space the Hub
    /// does not know or reports dead is an [`Error::Remote`] whose endpoint is
    /// `/api/spaces/{id}`. The token goes only to Hugging Face hosts.
    pub async fn connect_target(
        target: &super::space::Target,
        hub: &str,
        node: &str,
        token: Option<HfToken>,
        options: ClientOptions,
        space_wait: Duration,
    ) -> Result<GradioClient, Error> {
        let service = target.describe();
        let url = match target {
            super::space::Target::Url(url) => url.clone(),
            super::space::Target::Space(id) => {
                let hub = hub.trim_end_matches('/');
                // The caller's client if given (the token goes in `Authorization` there,
                // which reqwest drops off-host), else daggr's shared one.
                let http = match &options.http_client {
                    Some(c) => c.clone(),
                    None => http_client::shared().map_err(|e| Error::Remote {
                        node: node.to_string(),
                        service: service.clone(),
                        endpoint: format!("/api/spaces/{id}"),
                        status: None,
                        message: e.to_string(),
                    })?,
                };
                super::space::resolve(&http, hub, id, token.as_ref(), space_wait)
                    .await
                    .map_err(|(status, message)| Error::Remote {
                        node: node.to_string(),
                        service: service.clone(),
                        endpoint: format!("/api/spaces/{id}"),
                        status,
                        message,
                    })?
                    .url
            }
        };
        GradioClient::connect(&url, node, &service, token, None, options).await
    }
}

impl Inner {
    fn dependency(&self, api: &str) -> Option<&Dependency> {
        let name = api.trim_start_matches('/');
        self.dependencies
            .iter()
            .find(|d| d.api_name.as_deref() == Some(name))
    }

    fn remote(&self, endpoint: &str, status: Option<u16>, message: impl Into<String>) -> Error {
        Error::Remote {
            node: self.node.clone(),
            service: self.service.clone(),
            endpoint: endpoint.to_string(),
            status,
            message: message.into(),
        }
    }

    fn ended(&self, endpoint: &str, mid_event: bool) -> Error {
        let how = if mid_event {
            " in the middle of an event"
        } else {
            ""
        };
        self.remote(
            endpoint,
            None,
            format!("the event stream ended{how} before the result arrived (the server stopped, or a proxy cut the connection)"),
        )
    }

    fn broken(&self, endpoint: &str, error: &str) -> Error {
        self.remote(
            endpoint,
            None,
            format!(
                "the connection broke while waiting for the result (the server stopped?): {error}"
            ),
        )
    }

    fn silent(&self, endpoint: &str) -> Error {
        self.remote(
            endpoint,
            None,
            format!(
                "no data for {:?} on the event stream, not even a heartbeat: the server stopped answering",
                self.options.read_timeout
            ),
        )
    }

    /// The next chunk of a call's event stream, or the error that ends the call: the node
    /// cancelled (the remote job is cancelled first), the stream ended (`mid_event`: inside
    /// an event) or broke, or no data within the read timeout.
    async fn next_chunk<S, B>(
        &self,
        stream: &mut S,
        cancel: &CancellationToken,
        guard: &mut CancelGuard,
        endpoint: &str,
        mid_event: bool,
    ) -> Result<B, Error>
    where
        S: futures::Stream<Item = Result<B, reqwest::Error>> + Unpin,
    {
        let next = tokio::select! {
            next = tokio::time::timeout(self.options.read_timeout, stream.next()) => next,
            _ = cancel.cancelled() => {
                guard.cancel_now().await;
                return Err(Error::Cancelled { node: self.node.clone() });
            }
        };
        match next {
            Err(_) => Err(self.silent(endpoint)),
            Ok(None) => Err(self.ended(endpoint, mid_event)),
            Ok(Some(Ok(chunk))) => Ok(chunk),
            Ok(Some(Err(e))) => Err(self.broken(endpoint, &crate::node::event::error_chain(&e))),
        }
    }

    /// The client for a request to `url`: daggr's own when the request carries the HF
    /// token (its redirects never leave Hugging Face), else the caller's if given. Cookies
    /// may go through the caller's: reqwest drops `Cookie` when a redirect leaves the host.
    fn client_for(&self, url: &str) -> &reqwest::Client {
        if self.token.is_some() && is_hf_host(url) {
            &self.guarded
        } else {
            &self.http
        }
    }

    /// Adds the HF token (to Hugging Face hosts only) and the login's session cookies (to
    /// this app's origin only: not the Hub, not a file URL on another host; reqwest drops
    /// the header itself when a redirect leaves the host).
    fn authorize(&self, request: reqwest::RequestBuilder, url: &str) -> reqwest::RequestBuilder {
        let request = authorize(request, url, self.token.as_ref());
        let cookies = self.cookies.lock().unwrap().clone();
        match cookies {
            Some(c) if same_origin(url, &self.base) => request.header(reqwest::header::COOKIE, c),
            _ => request,
        }
    }

    /// Logs in (`POST {base}/login`, form fields `username` and `password`) and keeps the
    /// session cookies. Does nothing without a login. An app without a login redirects
    /// `/login` to its page: that is only noted (debug), and calls go without cookies.
    async fn log_in(&self, cancel: &CancellationToken) -> Result<(), Error> {
        let Some(login) = &self.login else {
            return Ok(());
        };
        // At the root on Gradio 4, 5 and 6 alike (`{prefix}/login` is a 404).
        let url = format!("{}/login", self.base);
        // A client of its own that follows no redirect (never the caller's): the form with
        // the password must not be re-posted to wherever a 307 points.
        let http = http_client::build(Redirects::None, None)
            .map_err(|e| self.remote("/login", None, e.to_string()))?;
        let form = [
            ("username", login.username.as_str()),
            ("password", login.password.as_str()),
        ];
        let response = self
            .send_retrying("/login", cancel, &mut |_| {}, &url, |_, u| {
                http.post(u)
                    .form(&form)
                    .timeout(self.options.request_timeout)
            })
            .await?;
        let status = response.status();
        if status.is_success() {
            let cookies = cookie_header(&response);
            if cookies.is_none() {
                tracing::debug!(node = %self.node, "/login answered without a session cookie; calling the app without one");
            }
            *self.cookies.lock().unwrap() = cookies;
            return Ok(());
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let target = reqwest::Url::parse(&url)
                .and_then(|u| u.join(location))
                .map(String::from)
                .unwrap_or_else(|_| location.to_string());
            // Gradio without a login redirects `/login` to its own page.
            if same_origin(&target, &self.base) {
                tracing::debug!(node = %self.node, "the app has no login (/login redirects to its page); calling it without one");
                return Ok(());
            }
            return Err(self.remote(
                "/login",
                Some(status.as_u16()),
                format!("the login was redirected to another host ({target}); the password is not sent there (give the node that address if it is the app's)"),
            ));
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let message = login.redact(&server_message(&bytes));
        let message = match status.as_u16() {
            // Gradio answers wrong credentials with 400 "Incorrect credentials.".
            400 | 401 | 403 => format!("login refused for user `{}`: {message}", login.username),
            _ => format!("logging in as `{}` failed: {message}", login.username),
        };
        Err(self.remote("/login", Some(status.as_u16()), message))
    }

    /// The one retry policy of this app's requests (and of re-reading a file download
    /// that ended early): the node's retries and backoff, 5xx and 429 retried.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            retries: self.options.retries,
            first: self.options.backoff,
            cap: MAX_RETRY_WAIT,
            on: RetryOn::ServerErrors,
        }
    }

    /// Sends a request like [`Inner::send_retrying`]; when the app answers 401 or 403 and
    /// the client has a login, the session has expired (the app restarted and forgot
    /// it): logs in again, once, and sends the request again.
    async fn send(
        &self,
        endpoint: &str,
        cancel: &CancellationToken,
        on_update: &mut (dyn FnMut(Update) + Send),
        url: &str,
        make: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let response = self
            .send_retrying(endpoint, cancel, on_update, url, &make)
            .await?;
        let denied = matches!(response.status().as_u16(), 401 | 403);
        if !(denied && self.login.is_some() && same_origin(url, &self.base)) {
            return Ok(response);
        }
        tracing::debug!(node = %self.node, endpoint, status = %response.status(), "logging in again (the session expired?)");
        self.log_in(cancel).await?;
        self.send_retrying(endpoint, cancel, on_update, url, &make)
            .await
    }

    /// Sends a request `make` builds on the client [`Inner::client_for`] the URL, retrying
    /// connection failures, 5xx and 429 by the shared retry policy. Returns the last
    /// response whatever its status.
    async fn send_retrying(
        &self,
        endpoint: &str,
        cancel: &CancellationToken,
        on_update: &mut (dyn FnMut(Update) + Send),
        url: &str,
        make: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let policy = self.retry_policy();
        let mut attempt = 0u32;
        loop {
            let request = self.authorize(make(self.client_for(url), url), url);
            let sent = tokio::select! {
                r = request.send() => r,
                _ = cancel.cancelled() => return Err(Error::Cancelled { node: self.node.clone() }),
            };
            let retry_in = match &sent {
                Ok(r) if policy.retries_status(r.status().as_u16()) => Some(retry_after(
                    r.headers().get("retry-after").and_then(|h| h.to_str().ok()),
                    MAX_RETRY_WAIT,
                )),
                Err(e) if policy.retries_error(e) => Some(None),
                _ => None,
            };
            match retry_in {
                Some(asked) if attempt < policy.retries => {
                    attempt += 1;
                    let wait = policy.wait(attempt, asked);
                    let why = match &sent {
                        Ok(r) => format!("HTTP {}", r.status().as_u16()),
                        Err(_) => "cannot connect".into(),
                    };
                    tracing::debug!(node = %self.node, endpoint, %why, attempt, "retrying");
                    on_update(Update::Progress(
                        None,
                        format!(
                            "{endpoint}: {why}; retrying in {:.1} s (attempt {attempt} of {})",
                            wait.as_secs_f64(),
                            policy.retries
                        ),
                    ));
                    if !sleep_unless(wait, cancel.cancelled()).await {
                        return Err(Error::Cancelled {
                            node: self.node.clone(),
                        });
                    }
                }
                _ => {
                    return sent.map_err(|e| {
                        let what = if e.is_timeout() {
                            "timed out".to_string()
                        } else if e.is_connect() {
                            format!(
                                "cannot connect (after {} retries): {}",
                                attempt,
                                crate::node::event::error_chain(&e)
                            )
                        } else {
                            crate::node::event::error_chain(&e)
                        };
                        self.remote(endpoint, None, what)
                    })
                }
            }
        }
    }

    /// The response if it succeeded, else an error with the server's message.
    async fn ok(
        &self,
        endpoint: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, Error> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let mut message = server_message(&bytes);
        if status.as_u16() == 401 {
            message = match (message.as_str(), &self.login) {
                // Gradio's own login wall (every route answers so without a session).
                ("Not authenticated", None) => {
                    "the app requires a login: set .auth(user, pass) on the node".into()
                }
                ("Not authenticated", Some(login)) => format!(
                    "the app requires a login and did not accept the session of `{}`",
                    login.username
                ),
                _ => format!("{message} (the app needs a login or a token)"),
            };
        }
        if status.as_u16() == 404 && endpoint == "/config" {
            message = format!("{message} (is this a Gradio app?)");
        }
        Err(self.remote(endpoint, Some(status.as_u16()), message))
    }

    async fn json_body(&self, endpoint: &str, response: reqwest::Response) -> Result<Json, Error> {
        let response = self.ok(endpoint, response).await?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.broken(endpoint, &crate::node::event::error_chain(&e)))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            let shown: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            self.remote(
                endpoint,
                Some(status),
                format!("expected JSON ({e}), got {shown}"),
            )
        })
    }
}

/// Gradio 4 sends a `gr.Error` message JSON-quoted (`"\"text\""`): unquote it.
fn unquote(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        if let Ok(inner) = serde_json::from_str::<String>(s) {
            return inner;
        }
    }
    s.to_string()
}

fn queue_error(output: &Json) -> String {
    match output.get("error") {
        Some(Json::String(s)) if !s.is_empty() => unquote(s),
        _ => match output.get("title").and_then(Json::as_str) {
            Some(t) => format!("{t} (the app did not show its message; it runs with show_error=False)"),
            None => "the app raised an error and did not show its message (it runs with show_error=False)".into(),
        },
    }
}

/// Cancels a remote job when the call that owns it ends early (cancelled, timed out by
/// the engine, or broken), unless the job finished.
struct CancelGuard {
    client: GradioClient,
    fn_index: Option<u64>,
    session: String,
    event_id: String,
    armed: bool,
}

impl CancelGuard {
    async fn cancel_now(&mut self) {
        self.armed = false;
        self.client
            .cancel(self.fn_index, &self.session, &self.event_id)
            .await;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let (fn_index, session, event_id) = (
                self.fn_index,
                std::mem::take(&mut self.session),
                std::mem::take(&mut self.event_id),
            );
            handle.spawn(async move { client.cancel(fn_index, &session, &event_id).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradio_4_quoted_messages_are_unquoted() {
        assert_eq!(
            queue_error(&json!({"error": "\"fixture failure\""})),
            "fixture failure"
        );
        assert_eq!(queue_error(&json!({"error": "plain"})), "plain");
        assert_eq!(unquote("\"a\" and \"b\""), "\"a\" and \"b\"");
    }

    #[test]
    fn versions_choose_the_protocol() {
        assert_eq!(parse_version("5.50.0"), (5, 50));
        assert_eq!(parse_version("6.13.0b1"), (6, 13));
        assert!(parse_version("6.31.0") >= (6, 13));
        assert!(parse_version("4.44.1") < (6, 13));
    }

    #[test]
    fn file_paths_are_encoded_for_the_file_route() {
        assert_eq!(
            encode_path("/tmp/gradio/ab/a b#.png"),
            "/tmp/gradio/ab/a%20b%23.png"
        );
    }

    #[test]
    fn session_cookies_stay_on_the_apps_origin() {
        let app = "http://127.0.0.1:7860";
        assert!(same_origin("http://127.0.0.1:7860/gradio_api/upload", app));
        assert!(same_origin(
            "http://127.0.0.1:7860",
            "http://127.0.0.1:7860/"
        ));
        assert!(same_origin(
            "https://a-b.hf.space/x",
            "https://a-b.hf.space:443"
        ));
        assert!(!same_origin("http://127.0.0.1:7861/config", app));
        assert!(!same_origin("http://localhost:7860/config", app));
        assert!(!same_origin("https://127.0.0.1:7860/config", app));
        assert!(!same_origin("https://huggingface.co/api/spaces/a/b", app));
        assert!(!same_origin("not a url", app));
    }

    #[test]
    fn a_login_never_shows_its_password() {
        let login = Login::new("daggr", "secret");
        let shown = format!("{login:?}");
        assert!(
            shown.contains("daggr") && !shown.contains("secret"),
            "{shown}"
        );
        assert_eq!(
            login.redact("bad form: password=secret"),
            "bad form: password=<redacted>"
        );
        assert_eq!(Login::new("u", "").redact("text"), "text");
    }

    #[test]
    fn the_token_goes_only_to_hugging_face_hosts() {
        let http = http_client::shared().unwrap();
        let token = HfToken::new("hf_secret");
        let header = |url: &str| {
            let r = authorize(http.get(url), url, Some(&token)).build().unwrap();
            (
                r.headers()
                    .get("authorization")
                    .map(|h| h.to_str().unwrap().to_string()),
                r.headers()
                    .get("x-hf-authorization")
                    .map(|h| h.to_str().unwrap().to_string()),
            )
        };
        assert_eq!(header("http://127.0.0.1:7860/config"), (None, None));
        assert_eq!(header("https://example.com/config"), (None, None));
        assert_eq!(
            header("https://a-b.hf.space/config"),
            (None, Some("Bearer hf_secret".into()))
        );
        assert_eq!(
            header("https://huggingface.co/api/spaces/a/b"),
            (Some("Bearer hf_secret".into()), None)
        );
    }
}
