//! The HTTP side of a Gradio app: `/config`, `{prefix}/info`, calls through
//! `{prefix}/call/{api}` or the queue protocol, uploads, downloads and cancellation.
//!
//! Every request that fails to connect, or answers 5xx or 429, is retried with backoff
//! (honouring `Retry-After`) before the job is accepted. A job that was accepted is never
//! resubmitted by the client: when its stream breaks the call fails (the node's own
//! [`crate::RetryPolicy`] decides whether to run it again) and the remote job is cancelled.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value as Json};
use tokio::sync::OnceCell;
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

/// What `/config` and `/info` said of one run of an app (one process: a restart is a new
/// one), read once and shared by every client of the app.
#[derive(Default)]
struct AppConfig {
    /// Which run of the app this describes, counted from 1 by the shared connection
    /// (0: not read yet).
    generation: u64,
    /// `/config`'s `app_id`, which Gradio draws at random when the app starts: a new one
    /// means a new process, which has forgotten the files sent to the old one.
    app_id: Option<Json>,
    prefix: String,
    version: String,
    protocol_name: String,
    max_file_size: Option<u64>,
    dependencies: Vec<Dependency>,
    endpoints: BTreeMap<String, EndpointInfo>,
}

/// Which clients share a connection: the same app, the same credentials and the same
/// HTTP client settings. Secrets are kept as hashes, never as themselves.
#[derive(Clone, PartialEq, Eq, Hash)]
struct AppKey {
    base: String,
    token: Option<[u8; 32]>,
    login: Option<[u8; 32]>,
    /// The caller's HTTP client, by its settings (as its `Debug` shows them); a client
    /// whose `Debug` hides a header (a sensitive one, a credential) shares with no one.
    http_client: Option<[u8; 32]>,
}

/// A BLAKE3 hash of `parts`, each prefixed by its length (so that no two lists of parts
/// hash alike by concatenation).
fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    *h.finalize().as_bytes()
}

impl AppKey {
    fn new(
        base: &str,
        token: Option<&HfToken>,
        login: Option<&Login>,
        options: &ClientOptions,
    ) -> AppKey {
        AppKey {
            base: base.to_string(),
            token: token.map(|t| digest(&["token", t.expose()])),
            login: login.map(|l| digest(&["login", &l.username, &l.password])),
            http_client: options.http_client.as_ref().map(|c| {
                let shown = format!("{c:?}");
                if shown.contains("Sensitive") {
                    rand::random()
                } else {
                    digest(&["client", &shown])
                }
            }),
        }
    }
}

/// Which uploaded file a path stands for: its bytes (by their integrity hash), name and
/// type, all of which the server's copy carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct UploadKey {
    integrity: String,
    name: String,
    mime: String,
}

/// The most uploaded files a connection remembers; past it, it forgets them all (they
/// are uploaded again when next needed).
const MAX_UPLOADS: usize = 4096;

/// The connection to one app that all its clients with the same [`AppKey`] share: the
/// app's description (read lazily, once per run of the app), the files already uploaded
/// to it, and an HTTP client (one connection pool). Held by the clients (so by the nodes
/// and the pipelines that hold them); the registry only points at it, so it ends with
/// its last client.
struct App {
    base: String,
    /// daggr's own HTTP client, whose redirects never take the token off Hugging Face.
    guarded: reqwest::Client,
    token: Option<HfToken>,
    login: Option<Login>,
    /// The latest description read.
    config: Mutex<Option<Arc<AppConfig>>>,
    /// Held while the description is read or the app asked whether it restarted, so
    /// that clients waiting together ask once.
    refreshing: tokio::sync::Mutex<()>,
    /// A request failed in a way a restart explains (it could not connect, a 502–504,
    /// an event stream that broke): the next client to look asks the app whether it is
    /// still the same run (`GET {prefix}/app_id`).
    suspect: AtomicBool,
    /// How many times the app was asked whether it restarted: clients that waited while
    /// another asked take its answer rather than asking again.
    probes: AtomicU64,
    /// Server paths by file: each is uploaded once; waiting clients share the upload.
    uploads: Mutex<HashMap<UploadKey, Arc<OnceCell<Json>>>>,
}

/// The shared connections, by key; an entry whose connection ended is dropped when
/// another is added.
fn apps() -> &'static Mutex<HashMap<AppKey, Weak<App>>> {
    static APPS: OnceLock<Mutex<HashMap<AppKey, Weak<App>>>> = OnceLock::new();
    APPS.get_or_init(Default::default)
}

impl App {
    /// The connection to the app at `base` shared by the clients with the same key: the
    /// live one, else a new one (nothing read yet).
    fn shared(
        base: &str,
        token: Option<HfToken>,
        login: Option<Login>,
        options: &ClientOptions,
    ) -> Result<Arc<App>, http_client::ClientError> {
        let key = AppKey::new(base, token.as_ref(), login.as_ref(), options);
        let mut apps = apps().lock().unwrap();
        if let Some(app) = apps.get(&key).and_then(Weak::upgrade) {
            return Ok(app);
        }
        apps.retain(|_, app| app.strong_count() > 0);
        let app = Arc::new(App {
            base: base.to_string(),
            guarded: http_client::build(Redirects::KeepTokenOnHf, None)?,
            token,
            login,
            config: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            suspect: AtomicBool::new(false),
            probes: AtomicU64::new(0),
            uploads: Mutex::new(HashMap::new()),
        });
        apps.insert(key, Arc::downgrade(&app));
        Ok(app)
    }

    fn config(&self) -> Option<Arc<AppConfig>> {
        self.config.lock().unwrap().clone()
    }

    fn is_suspect(&self) -> bool {
        self.suspect.load(Ordering::Relaxed)
    }

    fn mark_suspect(&self) {
        self.suspect.store(true, Ordering::Relaxed);
    }

    /// The cell of an upload, new if the file was never uploaded.
    fn upload_cell(&self, key: &UploadKey) -> Arc<OnceCell<Json>> {
        let mut uploads = self.uploads.lock().unwrap();
        if uploads.len() >= MAX_UPLOADS && !uploads.contains_key(key) {
            uploads.retain(|_, cell| !cell.initialized());
        }
        uploads.entry(key.clone()).or_default().clone()
    }

    /// Forgets uploads (the server lost them), unless they were made again meanwhile.
    fn forget(&self, reused: &[Reused]) {
        let mut uploads = self.uploads.lock().unwrap();
        for r in reused {
            if uploads.get(&r.key).is_some_and(|c| Arc::ptr_eq(c, &r.cell)) {
                uploads.remove(&r.key);
            }
        }
    }
}

/// A file a call sent by a path uploaded before the call asked for it (by an earlier run,
/// or another node): if the call fails because the server lost it, it is forgotten and
/// uploaded again ([`GradioClient::recover`]).
#[derive(Clone)]
pub(crate) struct Reused {
    key: UploadKey,
    cell: Arc<OnceCell<Json>>,
}

/// What asking the app for its `app_id` told.
enum Probe {
    /// The same run of the app as described.
    Same,
    /// Another run: the app restarted.
    Changed,
    /// Nothing known: no answer (`answered` false: the app is unreachable) or no id.
    Unknown { answered: bool },
}

/// How long asking the app whether it restarted may take (one try, no retries: the
/// answer only saves work, and a down app is reported by the call that follows).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one Gradio app: what `/config` and `/info` said, and the HTTP client.
/// Cheap to clone.
///
/// Clients of the same app (base URL) with the same credentials (HF token, login) and
/// HTTP client settings share one connection, for as long as one of them lives: the app's
/// `/config` and `/info` are read once (by the first client; the others wait for it),
/// a file is uploaded once per app and content (its later uses send the server's path
/// again), and requests share one pool of HTTP connections. The login session
/// ([`Login`]) stays each client's own.
#[derive(Clone)]
pub struct GradioClient {
    inner: Arc<Inner>,
}

/// One client's view of a shared [`App`]: its own name in errors, options and HTTP
/// client, and the description it was made with.
struct Inner {
    node: String,
    service: String,
    /// The shared connection.
    app: Arc<App>,
    /// The app's description this client goes by.
    config: Arc<AppConfig>,
    /// The caller's client, else the same as the app's `guarded`.
    http: reqwest::Client,
    /// The `Cookie` header of the current login session (`name=value; …`), sent only to
    /// this app's origin; kept by the client's later views ([`GradioClient::refreshed`]).
    cookies: Arc<Mutex<Option<String>>>,
    options: ClientOptions,
    /// Whether connecting read the description (rather than finding it read).
    read_here: bool,
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
    /// then reads `/config` and `{prefix}/info`, unless a live client of the same app
    /// with the same credentials and HTTP client settings has read them already (then
    /// its connection is shared, see [`GradioClient`]). `node` and `service` name the
    /// caller and the app in errors (`"Space owner/name"`); the token goes only to
    /// Hugging Face hosts, the login's session cookies only to the app's own origin.
    pub async fn connect(
        base: &str,
        node: &str,
        service: &str,
        token: Option<HfToken>,
        login: Option<Login>,
        options: ClientOptions,
    ) -> Result<GradioClient, Error> {
        let base = base.trim_end_matches('/');
        let app = App::shared(base, token, login, &options).map_err(|e| Error::Remote {
            node: node.to_string(),
            service: service.to_string(),
            endpoint: "/config".into(),
            status: None,
            message: e.to_string(),
        })?;
        let http = options
            .http_client
            .clone()
            .unwrap_or_else(|| app.guarded.clone());
        let mut inner = Inner {
            node: node.to_string(),
            service: service.to_string(),
            app,
            config: Arc::default(),
            http,
            cookies: Arc::default(),
            options,
            read_here: false,
        };
        let never = CancellationToken::new();
        // An app with a login answers 401 on every route, /config included, until then.
        inner.log_in(&never).await?;
        let (config, read_here) = inner.refresh(0, false, &never).await?;
        inner.config = config;
        inner.read_here = read_here;
        Ok(GradioClient {
            inner: Arc::new(inner),
        })
    }

    /// This client with another description of the app (the same login session).
    fn with_config(&self, config: Arc<AppConfig>) -> GradioClient {
        let i = &self.inner;
        GradioClient {
            inner: Arc::new(Inner {
                node: i.node.clone(),
                service: i.service.clone(),
                app: i.app.clone(),
                config,
                http: i.http.clone(),
                cookies: i.cookies.clone(),
                options: i.options.clone(),
                read_here: false,
            }),
        }
    }

    /// Which run of the app this client's description is of (see [`AppConfig`]).
    pub(crate) fn generation(&self) -> u64 {
        self.inner.config.generation
    }

    /// Whether connecting read the app's description itself (not shared from another
    /// client): then it is as new as can be.
    pub(crate) fn read_it_here(&self) -> bool {
        self.inner.read_here
    }

    /// This client with the app's current description, if it changed since this client
    /// was made: another client found that the app restarted, or a request of this
    /// app's failed as a restart would make it fail and the app, asked now
    /// (`GET {prefix}/app_id`), says it is a new run (then `/config` and `/info` are read
    /// again, once for all clients). `None` when nothing changed or nothing can be told.
    pub(crate) async fn refreshed(&self) -> Option<GradioClient> {
        let never = CancellationToken::new();
        let (config, _) = self
            .inner
            .refresh(self.generation(), false, &never)
            .await
            .ok()?;
        (config.generation != self.generation()).then(|| self.with_config(config))
    }

    /// Like [`GradioClient::refreshed`], but asks the app whether it restarted even when
    /// no request failed: for a description that may be old (found in the shared
    /// connection) and just disagreed with what a node expects.
    pub(crate) async fn restarted(&self) -> Option<GradioClient> {
        let never = CancellationToken::new();
        let (config, _) = self
            .inner
            .refresh(self.generation(), true, &never)
            .await
            .ok()?;
        (config.generation != self.generation()).then(|| self.with_config(config))
    }

    /// After a call that sent `reused` files (uploaded before it asked for them) failed
    /// with `error`: whether the server lost them, so that uploading them again and
    /// calling once more can succeed. It did if the app restarted (asked as
    /// [`GradioClient::restarted`] does) or if its error says a file is not there. Then
    /// those uploads are forgotten and the client to call again with is returned (this
    /// one, or one with the restarted app's description).
    pub(crate) async fn recover(&self, error: &Error, reused: &[Reused]) -> Option<GradioClient> {
        if reused.is_empty() || matches!(error, Error::Cancelled { .. }) {
            return None;
        }
        let gone = match error {
            Error::Remote { message, .. } => says_a_file_is_gone(message),
            _ => false,
        };
        let restarted = self.restarted().await;
        if restarted.is_none() && !gone {
            return None;
        }
        self.inner.app.forget(reused);
        tracing::debug!(node = %self.inner.node, restarted = restarted.is_some(), "the app lost uploaded files; uploading them again");
        Some(restarted.unwrap_or_else(|| self.clone()))
    }

    /// The app's base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.app.base
    }

    /// The API prefix: `/gradio_api` on Gradio 5 and 6, empty on 4.
    pub fn api_prefix(&self) -> &str {
        &self.inner.config.prefix
    }

    /// The Gradio version the app reports.
    pub fn version(&self) -> &str {
        &self.inner.config.version
    }

    /// The documented endpoints (`/info`), by API name with its leading slash.
    pub fn endpoints(&self) -> &BTreeMap<String, EndpointInfo> {
        &self.inner.config.endpoints
    }

    /// Whether the app has an endpoint `api` (`/name`), documented or not.
    pub fn has_endpoint(&self, api: &str) -> bool {
        self.inner.config.endpoints.contains_key(api) || self.inner.dependency(api).is_some()
    }

    /// Whether `api` is a generator (it streams partial outputs).
    pub fn is_generator(&self, api: &str) -> bool {
        self.inner.dependency(api).is_some_and(|d| d.generator)
    }

    /// The API names the app declares (`/name`).
    pub fn api_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.config.endpoints.keys().cloned().collect();
        for d in &self.inner.config.dependencies {
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
                let (major, minor) = parse_version(&i.config.version);
                if (major, minor) >= (6, 13) || i.config.protocol_name != "sse_v3" {
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
        let url = format!("{}{}/call/{name}", i.app.base, i.config.prefix);
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
                                i.config.version
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
        let join_url = format!("{}{}/queue/join", i.app.base, i.config.prefix);
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
        let data_url = format!("{}{}/queue/data", i.app.base, i.config.prefix);
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
    /// content (by `integrity`) with the same name and type is uploaded once per app
    /// (the shared connection, see [`GradioClient`]), and its server path reused until
    /// the app restarts; clients asking for it together wait for one upload. An empty
    /// `integrity` uploads every time.
    pub async fn upload(
        &self,
        bytes: &[u8],
        name: &str,
        mime: &str,
        integrity: &str,
        cancel: &CancellationToken,
    ) -> Result<Json, Error> {
        self.upload_tracked(bytes, name, mime, integrity, cancel)
            .await
            .map(|(file, _)| file)
    }

    /// [`GradioClient::upload`], saying whether the file had been uploaded before this
    /// call asked for it (then the server may have lost it since).
    pub(crate) async fn upload_tracked(
        &self,
        bytes: &[u8],
        name: &str,
        mime: &str,
        integrity: &str,
        cancel: &CancellationToken,
    ) -> Result<(Json, Option<Reused>), Error> {
        let i = &self.inner;
        if let Some(max) = i.config.max_file_size {
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
        if integrity.is_empty() {
            let file = self.upload_now(bytes, name, mime, cancel).await?;
            return Ok((file, None));
        }
        let key = UploadKey {
            integrity: integrity.to_string(),
            name: name.to_string(),
            mime: mime.to_string(),
        };
        let cell = i.app.upload_cell(&key);
        let mut uploaded_here = false;
        let file = cell
            .get_or_try_init(|| {
                uploaded_here = true;
                self.upload_now(bytes, name, mime, cancel)
            })
            .await?
            .clone();
        let reused = (!uploaded_here).then_some(Reused { key, cell });
        Ok((file, reused))
    }

    /// Sends a file to `POST {prefix}/upload`; its FileData object.
    async fn upload_now(
        &self,
        bytes: &[u8],
        name: &str,
        mime: &str,
        cancel: &CancellationToken,
    ) -> Result<Json, Error> {
        let i = &self.inner;
        let url = format!("{}{}/upload", i.app.base, i.config.prefix);
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
        Ok(json!({
            "path": path,
            "orig_name": name,
            "size": bytes.len(),
            "mime_type": mime,
            "meta": { "_type": "gradio.FileData" },
        }))
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
                format!("{}{}/file={}", i.app.base, i.config.prefix, encode_path(p))
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
        // ends early (an error, fewer bytes than FileData's `size`, or nothing at all when
        // FileData has no size). And a pooled keep-alive connection the app closed fails
        // the request before any answer. A download is a GET, safe to repeat: such reads
        // are tried again under the client's one retry policy before they are an error.
        let expected_size = file.get("size").and_then(Json::as_u64);
        // The whole file: as long as FileData says, or (no size given) not empty: an empty
        // file output is rare, a file served before it was written is not.
        let complete = |len: u64| match expected_size {
            Some(n) => n == len,
            None => len > 0,
        };
        let policy = i.retry_policy();
        let mut attempt = 0u32;
        let (bytes, header_mime) = loop {
            attempt += 1;
            let last = attempt > policy.retries;
            let sent = i
                .send("/file", cancel, &mut |_| {}, &url, |http, u| {
                    http.get(u).timeout(i.options.request_timeout)
                })
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(e @ Error::Cancelled { .. }) => return Err(e),
                Err(e) if last => return Err(e),
                Err(_) => {
                    if !sleep_unless(policy.backoff(attempt), cancel.cancelled()).await {
                        return Err(Error::Cancelled {
                            node: i.node.clone(),
                        });
                    }
                    continue;
                }
            };
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
                Ok(b) if last || complete(b.len() as u64) => break (b, header_mime),
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
        let url = format!("{}{}/cancel", i.app.base, i.config.prefix);
        let body = json!({ "fn_index": fn_index, "session_hash": session, "event_id": event_id });
        let request = i.authorize(
            i.client_for(&url)
                .post(&url)
                .json(&body)
                .timeout(Duration::from_secs(5)),
            &url,
        );
        match http_client::send(request).await {
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
    /// The app's description, for a client that knows generation `seen` of it (0: none):
    /// read once per run of the app and shared. A description newer than `seen` is
    /// returned as it is. Otherwise, when `force` is set or a failed request made the app
    /// suspect, the app is asked whether it restarted (`GET {prefix}/app_id`, one try):
    /// if it did, `/config` and `/info` are read again and the files uploaded to the
    /// old run are forgotten. Clients asking together wait for one answer. The flag
    /// says whether this call read the description.
    async fn refresh(
        &self,
        seen: u64,
        force: bool,
        cancel: &CancellationToken,
    ) -> Result<(Arc<AppConfig>, bool), Error> {
        let app = &self.app;
        let settled = |c: &AppConfig| c.generation > seen || !(force || app.is_suspect());
        if let Some(c) = app.config().filter(|c| settled(c)) {
            return Ok((c, false));
        }
        let probes = app.probes.load(Ordering::Relaxed);
        let _refreshing = app.refreshing.lock().await;
        let asked_meanwhile = app.probes.load(Ordering::Relaxed) != probes;
        let generation = match app.config() {
            Some(c) if settled(&c) || asked_meanwhile => return Ok((c, false)),
            Some(c) => match self.probe(&c).await {
                Probe::Same => {
                    app.suspect.store(false, Ordering::Relaxed);
                    return Ok((c, false));
                }
                Probe::Unknown { answered } => {
                    if answered {
                        app.suspect.store(false, Ordering::Relaxed);
                    }
                    return Ok((c, false));
                }
                Probe::Changed => {
                    tracing::debug!(node = %self.node, app = %app.base, "the app restarted; reading its description again");
                    c.generation + 1
                }
            },
            None => 1,
        };
        let config = Arc::new(self.read_config(generation, cancel).await?);
        if generation > 1 {
            // A new run of the app: the files sent to the old one may be gone with it.
            app.uploads.lock().unwrap().clear();
        }
        *app.config.lock().unwrap() = Some(config.clone());
        app.suspect.store(false, Ordering::Relaxed);
        Ok((config, true))
    }

    /// Reads `/config` and `{prefix}/info`.
    async fn read_config(
        &self,
        generation: u64,
        cancel: &CancellationToken,
    ) -> Result<AppConfig, Error> {
        let base = &self.app.base;
        let config_url = format!("{base}/config");
        let response = self
            .send("/config", cancel, &mut |_| {}, &config_url, |http, u| {
                http.get(u).timeout(self.options.request_timeout)
            })
            .await?;
        let config: Json = self.json_body("/config", response).await?;
        let text = |key: &str| {
            config
                .get(key)
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        let mut read = AppConfig {
            generation,
            app_id: config.get("app_id").filter(|id| !id.is_null()).cloned(),
            prefix: text("api_prefix").trim_end_matches('/').to_string(),
            version: text("version"),
            protocol_name: text("protocol"),
            max_file_size: config.get("max_file_size").and_then(Json::as_u64),
            dependencies: config
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
                .unwrap_or_default(),
            endpoints: BTreeMap::new(),
        };
        let info_url = format!("{base}{}/info", read.prefix);
        let response = self
            .send("/info", cancel, &mut |_| {}, &info_url, |http, u| {
                http.get(u)
                    .query(&[("serialize", "False")])
                    .timeout(self.options.request_timeout)
            })
            .await;
        // An app may hide its API description; calls then go by position.
        if let Ok(response) = response {
            if let Ok(info) = self.json_body("/info", response).await {
                read.endpoints = parse_info(&info).unwrap_or_default();
            }
        }
        Ok(read)
    }

    /// Asks the app whether it is still the run `known` describes: `GET {prefix}/app_id`
    /// (Gradio 4, 5 and 6), once, without retries.
    async fn probe(&self, known: &AppConfig) -> Probe {
        let Some(id) = &known.app_id else {
            return Probe::Unknown { answered: false };
        };
        let url = format!("{}{}/app_id", self.app.base, known.prefix);
        let request = self.authorize(
            self.client_for(&url)
                .get(&url)
                .timeout(PROBE_TIMEOUT.min(self.options.request_timeout)),
            &url,
        );
        self.app.probes.fetch_add(1, Ordering::Relaxed);
        let response = match http_client::send(request).await {
            Ok(r) if r.status().is_success() => r,
            Ok(_) => return Probe::Unknown { answered: true },
            Err(_) => return Probe::Unknown { answered: false },
        };
        match response.json::<Json>().await {
            Ok(answer) => match answer.get("app_id") {
                Some(now) if now == id => Probe::Same,
                Some(now) if !now.is_null() => Probe::Changed,
                _ => Probe::Unknown { answered: true },
            },
            Err(_) => Probe::Unknown { answered: true },
        }
    }
}

/// Whether a call's error says a file it was sent is not on the server (any more):
/// Gradio 5 and 6 "Cannot move … because it was not uploaded by a user", Gradio 4
/// "File … is not in the upload folder", or the file missing where its path says.
fn says_a_file_is_gone(message: &str) -> bool {
    [
        "not uploaded by a user",
        "is not in the upload folder",
        "No such file or directory",
        "FileNotFoundError",
    ]
    .iter()
    .any(|m| message.contains(m))
}

impl Inner {
    fn dependency(&self, api: &str) -> Option<&Dependency> {
        let name = api.trim_start_matches('/');
        self.config
            .dependencies
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
        let failed = match next {
            Ok(Some(Ok(chunk))) => return Ok(chunk),
            Err(_) => self.silent(endpoint),
            Ok(None) => self.ended(endpoint, mid_event),
            Ok(Some(Err(e))) => self.broken(endpoint, &crate::node::event::error_chain(&e)),
        };
        // The app may have stopped: the next client to look asks it whether it restarted.
        self.app.mark_suspect();
        Err(failed)
    }

    /// The client for a request to `url`: daggr's own when the request carries the HF
    /// token (its redirects never leave Hugging Face), else the caller's if given. Cookies
    /// may go through the caller's: reqwest drops `Cookie` when a redirect leaves the host.
    fn client_for(&self, url: &str) -> &reqwest::Client {
        if self.app.token.is_some() && is_hf_host(url) {
            &self.app.guarded
        } else {
            &self.http
        }
    }

    /// Adds the HF token (to Hugging Face hosts only) and the login's session cookies (to
    /// this app's origin only: not the Hub, not a file URL on another host; reqwest drops
    /// the header itself when a redirect leaves the host).
    fn authorize(&self, request: reqwest::RequestBuilder, url: &str) -> reqwest::RequestBuilder {
        let request = authorize(request, url, self.app.token.as_ref());
        let cookies = self.cookies.lock().unwrap().clone();
        match cookies {
            Some(c) if same_origin(url, &self.app.base) => {
                request.header(reqwest::header::COOKIE, c)
            }
            _ => request,
        }
    }

    /// Logs in (`POST {base}/login`, form fields `username` and `password`) and keeps the
    /// session cookies. Does nothing without a login. An app without a login redirects
    /// `/login` to its page: that is only noted (debug), and calls go without cookies.
    async fn log_in(&self, cancel: &CancellationToken) -> Result<(), Error> {
        let Some(login) = &self.app.login else {
            return Ok(());
        };
        // At the root on Gradio 4, 5 and 6 alike (`{prefix}/login` is a 404).
        let url = format!("{}/login", self.app.base);
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
            if same_origin(&target, &self.app.base) {
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
        if !(denied && self.app.login.is_some() && same_origin(url, &self.app.base)) {
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
                r = http_client::send(request) => r,
                _ = cancel.cancelled() => return Err(Error::Cancelled { node: self.node.clone() }),
            };
            let restart_like = match &sent {
                Ok(r) => matches!(r.status().as_u16(), 502..=504),
                Err(e) => e.is_connect(),
            };
            if restart_like && same_origin(url, &self.app.base) {
                self.app.mark_suspect();
            }
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
            message = match (message.as_str(), &self.app.login) {
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
    fn connections_are_shared_by_app_and_credentials_only() {
        let base = "http://127.0.0.1:1/shared-test";
        let options = ClientOptions::default();
        let token = || Some(HfToken::new("hf_one"));
        let login = || Some(Login::new("u", "p"));
        let a = App::shared(base, token(), login(), &options).unwrap();
        let b = App::shared(base, token(), login(), &options).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same app, same credentials");
        let others = [
            App::shared("http://127.0.0.1:2/shared-test", token(), login(), &options),
            App::shared(base, Some(HfToken::new("hf_two")), login(), &options),
            App::shared(base, None, login(), &options),
            App::shared(base, token(), Some(Login::new("u", "other")), &options),
            App::shared(base, token(), Some(Login::new("v", "p")), &options),
            App::shared(base, token(), None, &options),
        ];
        for other in others {
            assert!(!Arc::ptr_eq(&a, &other.unwrap()));
        }
        // The caller's client counts by its settings; one that hides a header shares with
        // no one.
        let with = |client: reqwest::Client| ClientOptions {
            http_client: Some(client),
            ..ClientOptions::default()
        };
        let plain = || reqwest::Client::builder().build().unwrap();
        let c1 = App::shared(base, token(), login(), &with(plain())).unwrap();
        let c2 = App::shared(base, token(), login(), &with(plain())).unwrap();
        assert!(Arc::ptr_eq(&c1, &c2) && !Arc::ptr_eq(&a, &c1));
        let secret = || {
            let mut value = reqwest::header::HeaderValue::from_static("Bearer x");
            value.set_sensitive(true);
            let headers =
                reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
            reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap()
        };
        let s1 = App::shared(base, token(), login(), &with(secret())).unwrap();
        let s2 = App::shared(base, token(), login(), &with(secret())).unwrap();
        assert!(!Arc::ptr_eq(&s1, &s2));
        // The registry does not keep a connection alive.
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        let again = App::shared(base, token(), login(), &options).unwrap();
        assert!(again.config().is_none(), "a new connection reads anew");
    }

    #[test]
    fn uploads_are_forgotten_only_as_they_were() {
        let app = App::shared(
            "http://127.0.0.1:1/upload-test",
            None,
            None,
            &ClientOptions::default(),
        )
        .unwrap();
        let key = UploadKey {
            integrity: "sha256-x".into(),
            name: "a.png".into(),
            mime: "image/png".into(),
        };
        let cell = app.upload_cell(&key);
        assert!(Arc::ptr_eq(&cell, &app.upload_cell(&key)));
        cell.set(json!({"path": "/old"})).unwrap();
        let old = Reused {
            key: key.clone(),
            cell: cell.clone(),
        };
        app.forget(std::slice::from_ref(&old));
        let fresh = app.upload_cell(&key);
        assert!(!Arc::ptr_eq(&cell, &fresh) && !fresh.initialized());
        // Forgetting the old one again leaves the new upload alone.
        app.forget(&[old]);
        assert!(Arc::ptr_eq(&fresh, &app.upload_cell(&key)));
    }

    #[test]
    fn errors_saying_a_file_is_gone_are_told_apart() {
        assert!(says_a_file_is_gone("Cannot move /tmp/gradio/ab/in.png to the gradio cache dir because it was not uploaded by a user."));
        assert!(says_a_file_is_gone(
            "File /tmp/gradio/ab/in.png is not in the upload folder and cannot be accessed."
        ));
        assert!(says_a_file_is_gone(
            "[Errno 2] No such file or directory: '/tmp/gradio/ab/in.png'"
        ));
        assert!(!says_a_file_is_gone("fixture failure for input 'boom'"));
    }

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
