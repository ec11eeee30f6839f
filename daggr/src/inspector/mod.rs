//! The visual inspector: `pipeline.launch()` serves a page drawing the graph, each node's
//! live status and outputs, where a user edits inputs and reruns one node, a node and its
//! upstream, or a node and its downstream, on named sheets.
//!
//! The server (axum) listens on `127.0.0.1:7860` by default (the next free port when that
//! one is taken; `DAGGR_HOST` and `DAGGR_PORT` override). Binding a non-loopback address
//! requires a token, printed once in the URL; without a token, requests whose `Host` header
//! is not the served host are refused (DNS rebinding). State-changing requests from another
//! origin are refused (cross-site request forgery), bodies are bounded per route, and a
//! panicking handler answers 500 without breaking the server's state. The page is embedded
//! in the crate: building it needs no Node. The HTTP API is documented in `inspector/API.md`.
//!
//! ```no_run
//! # async fn demo(pipeline: daggr::Pipeline) -> Result<(), daggr::Error> {
//! pipeline.launch().await?; // serves until Ctrl-C
//! # Ok(()) }
//! ```

mod api;
mod api_keys;
mod assets;
mod call_run;
mod call_stream;
mod guard;
mod http;
mod layout;
mod live;
mod media_input;
mod run_slot;
mod serve;
mod workflow;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::sheet::{Sheet, SheetStore};
use crate::{Error, Pipeline};

use live::LiveLog;

/// Environment variable overriding the host to bind.
pub const HOST_ENV: &str = "DAGGR_HOST";
/// Environment variable overriding the port to bind.
pub const PORT_ENV: &str = "DAGGR_PORT";
/// The default port.
pub const DEFAULT_PORT: u16 = 7860;
/// Environment variable listing extra `Host` values to accept, comma-separated (`name` or
/// `name:port`); see [`LaunchOptions::allowed_hosts`].
pub const ALLOWED_HOSTS_ENV: &str = "DAGGR_ALLOWED_HOSTS";
/// Environment variable overriding the largest upload, in bytes (a `K`, `M` or `G` suffix
/// multiplies by 1024, 1024² or 1024³); see [`LaunchOptions::max_upload_bytes`].
pub const MAX_UPLOAD_ENV: &str = "DAGGR_MAX_UPLOAD";
/// The default largest upload (`POST /api/blobs`): 256 MiB.
pub const DEFAULT_MAX_UPLOAD: usize = 256 * 1024 * 1024;
/// Environment variable listing API keys for the workflow API, comma-separated; see
/// [`LaunchOptions::api_keys`].
pub const API_KEYS_ENV: &str = "DAGGR_API_KEYS";
/// Environment variable that lets the workflow API fetch media from private addresses
/// (`1`, `true`, `yes` or `on`); see [`LaunchOptions::fetch_private_urls`].
pub const FETCH_PRIVATE_URLS_ENV: &str = "DAGGR_FETCH_PRIVATE_URLS";

/// How to serve the inspector.
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    /// Address to bind (default `127.0.0.1`, or `$DAGGR_HOST`).
    pub host: Option<IpAddr>,
    /// Port (default 7860 or `$DAGGR_PORT`; `Some(0)` picks any free port). When the port is
    /// taken the next free one is used.
    pub port: Option<u16>,
    /// Open the page in a browser (only when stdout is a terminal and `CI` is unset).
    pub open_browser: bool,
    /// The sheets database (default [`crate::sheet::default_db_path`]).
    pub sheets_db: Option<PathBuf>,
    /// The sheet shown first (created if missing).
    pub sheet: String,
    /// Access token (generated when binding a non-loopback address and none is given).
    pub token: Option<String>,
    /// Extra `Host` header values to accept (`name` for any port, or `name:port`), added to
    /// `$DAGGR_ALLOWED_HOSTS`. Without a token only the served loopback names are accepted
    /// (DNS-rebinding protection) and these; with a token any host is, unless some are
    /// listed here, and then only the served names and these.
    pub allowed_hosts: Vec<String>,
    /// The largest upload in bytes (default `$DAGGR_MAX_UPLOAD`, else
    /// [`DEFAULT_MAX_UPLOAD`]). Larger uploads are refused with 413.
    pub max_upload_bytes: Option<usize>,
    /// API keys for the workflow API, added to `$DAGGR_API_KEYS`. When any is set (or a
    /// token is), `POST /api/call` requires `Authorization: Bearer <key>` (the token is a
    /// key too) and answers 401 without one; see the README's workflow API section.
    pub api_keys: Vec<String>,
    /// Serve the workflow API alone (`POST /api/call`, `GET /api/openapi.json` and the
    /// blob routes), without the page and the sheet routes (default `false`).
    pub api_only: bool,
    /// Let `POST /api/call` fetch media inputs given by http(s) URL from loopback, private
    /// and link-local addresses too (default `false`, or `$DAGGR_FETCH_PRIVATE_URLS`).
    /// Off, a URL whose host is or resolves to such an address (a cloud metadata service,
    /// a database on the server's network) is refused with a 400, redirects included: a
    /// caller cannot use the server to reach what only the server can reach.
    pub fetch_private_urls: bool,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            host: None,
            port: None,
            open_browser: true,
            sheets_db: None,
            sheet: "default".into(),
            token: None,
            allowed_hosts: Vec::new(),
            max_upload_bytes: None,
            api_keys: Vec::new(),
            api_only: false,
            fetch_private_urls: false,
        }
    }
}

/// Locks `mutex` even when a panicking thread poisoned it. Every value the inspector keeps
/// under a lock is whole between statements (a map, a slot, an event log), so a panic in one
/// request must not turn every later request on that sheet into another panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One open sheet: its workspace, its live log, and the run in progress.
pub(crate) struct OpenSheet {
    pub(crate) sheet: Sheet,
    pub(crate) live: LiveLog,
    pub(crate) run: Mutex<Option<CancellationToken>>,
    /// Notified when a run's task ends (its results saved and its slot in `run` cleared).
    pub(crate) run_done: tokio::sync::Notify,
    /// The number of the run holding `run`.
    pub(crate) run_number: std::sync::atomic::AtomicU64,
    forwarder: tokio::task::JoinHandle<()>,
}

impl Drop for OpenSheet {
    fn drop(&mut self) {
        self.forwarder.abort();
        if let Some(token) = lock(&self.run).take() {
            token.cancel();
        }
    }
}

/// Shared server state.
pub(crate) struct App {
    pub(crate) template: Pipeline,
    pub(crate) store: SheetStore,
    pub(crate) default_sheet: String,
    pub(crate) sheets: Mutex<HashMap<String, Arc<OpenSheet>>>,
    /// The `Host` values served (`None`: any, the token protects).
    pub(crate) allowed_hosts: Option<Vec<String>>,
    pub(crate) token: Option<String>,
    pub(crate) max_upload: usize,
    pub(crate) graph: serde_json::Value,
    /// `graph` as `GET /api/graph` sends it, written when first asked for (it never changes).
    pub(crate) graph_body: std::sync::OnceLock<axum::body::Bytes>,
    pub(crate) shutdown: CancellationToken,
    /// The workflow API's call slots.
    pub(crate) calls: workflow::CallLimits,
    /// The workflow API's OpenAPI document, built when first asked for.
    pub(crate) openapi: std::sync::OnceLock<serde_json::Value>,
    /// The workflow API's keys (besides the token).
    pub(crate) api_keys: Vec<String>,
    /// Only the workflow API is served (no page, no sheet routes).
    pub(crate) api_only: bool,
    /// Media URLs may point at private addresses ([`LaunchOptions::fetch_private_urls`]).
    pub(crate) fetch_private_urls: bool,
}

impl App {
    /// The open sheet called `name`, opening it if it exists in the store.
    pub(crate) fn sheet(&self, name: &str) -> Result<Arc<OpenSheet>, Error> {
        if let Some(open) = lock(&self.sheets).get(name) {
            return Ok(open.clone());
        }
        let sheet = self.store.open_sheet(&self.template, name)?;
        Ok(self.adopt(sheet))
    }

    pub(crate) fn adopt(&self, sheet: Sheet) -> Arc<OpenSheet> {
        let live = LiveLog::default();
        let mut events = sheet.pipeline().subscribe();
        let log = live.clone();
        let forwarder = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        // A bug in recording one event must not end the sheet's live updates.
                        let recorded =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                log.record(&event)
                            }));
                        if recorded.is_err() {
                            log.push("resync", serde_json::json!({}));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        log.push("resync", serde_json::json!({}));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        let name = sheet.name().to_string();
        let open = Arc::new(OpenSheet {
            sheet,
            live,
            run: Mutex::new(None),
            run_done: tokio::sync::Notify::new(),
            run_number: Default::default(),
            forwarder,
        });
        lock(&self.sheets).insert(name, open.clone());
        open
    }
}

/// A bound, not yet serving, inspector.
pub struct Inspector {
    listener: TcpListener,
    app: Arc<App>,
    url: String,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").field("url", &self.url).finish()
    }
}

fn env_host() -> Option<IpAddr> {
    std::env::var(HOST_ENV).ok().and_then(|h| h.parse().ok())
}

fn env_port() -> Option<u16> {
    std::env::var(PORT_ENV).ok().and_then(|p| p.parse().ok())
}

fn env_allowed_hosts() -> Vec<String> {
    std::env::var(ALLOWED_HOSTS_ENV)
        .map(|v| parse_host_list(&v))
        .unwrap_or_default()
}

fn parse_host_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// `"512"`, `"64K"`, `"300M"`, `"2G"` → bytes.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, 'B'),
    };
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return None,
    };
    digits.trim().parse::<usize>().ok()?.checked_mul(1 << shift)
}

fn env_max_upload() -> Option<usize> {
    std::env::var(MAX_UPLOAD_ENV)
        .ok()
        .and_then(|v| parse_size(&v))
}

/// The `Host` values the server answers: the served names, and the user's. With a token and
/// no user list, `None`: any host (the token is the protection, and a LAN address or name
/// cannot be guessed from here).
fn hosts_served(served: Vec<String>, user: Vec<String>, token: bool) -> Option<Vec<String>> {
    if token && user.is_empty() {
        return None;
    }
    Some(served.into_iter().chain(user).collect())
}

async fn bind_free(host: IpAddr, port: u16) -> Result<TcpListener, Error> {
    let attempts = if port == 0 { 1 } else { 100 };
    let mut last = None;
    for offset in 0..attempts {
        let addr = SocketAddr::new(host, port.saturating_add(offset));
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(Error::Io {
        context: format!("binding the inspector on {host}:{port} (and the next 99 ports)"),
        source: last.unwrap_or_else(|| std::io::Error::other("no port")),
    })
}

fn random_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token the server requires: the given one, or a fresh one for a non-loopback address.
fn token_for(host: IpAddr, given: Option<String>) -> Option<String> {
    match given {
        Some(t) => Some(t),
        None if !host.is_loopback() => Some(random_token()),
        None => None,
    }
}

impl Inspector {
    /// Binds the server for `pipeline` and opens the sheet database.
    pub async fn bind(pipeline: &Pipeline, options: LaunchOptions) -> Result<Inspector, Error> {
        let host = options
            .host
            .or_else(env_host)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let port = options.port.or_else(env_port).unwrap_or(DEFAULT_PORT);
        let listener = bind_free(host, port).await?;
        let addr = listener.local_addr().map_err(|source| Error::Io {
            context: "reading the inspector's address".into(),
            source,
        })?;
        let token = token_for(host, options.token);
        let max_upload = options
            .max_upload_bytes
            .or_else(env_max_upload)
            .unwrap_or(DEFAULT_MAX_UPLOAD);
        let store = match &options.sheets_db {
            Some(path) => SheetStore::open(path)?,
            None => SheetStore::open_default()?,
        };
        let port = addr.port();
        let mut allowed_hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ];
        let shown_host = match host {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        if !host.is_loopback() {
            allowed_hosts.push(format!("{shown_host}:{port}"));
            if let Ok(name) = std::env::var("HOSTNAME") {
                allowed_hosts.push(format!("{name}:{port}"));
            }
        }
        let mut user_hosts = options.allowed_hosts.clone();
        user_hosts.extend(env_allowed_hosts());
        let allowed_hosts = hosts_served(allowed_hosts, user_hosts, token.is_some());
        let url_host = if host.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            shown_host
        };
        let mut url = format!("http://{url_host}:{port}/");
        if let Some(t) = &token {
            url.push_str(&format!("?token={t}"));
        }
        let app = Arc::new(App {
            graph: api::graph_json(pipeline),
            graph_body: std::sync::OnceLock::new(),
            template: pipeline.clone(),
            store: store.clone(),
            default_sheet: options.sheet.clone(),
            sheets: Mutex::new(HashMap::new()),
            allowed_hosts,
            token,
            max_upload,
            shutdown: CancellationToken::new(),
            calls: Default::default(),
            openapi: std::sync::OnceLock::new(),
            api_keys: options
                .api_keys
                .iter()
                .cloned()
                .chain(api_keys::env_keys())
                .collect(),
            api_only: options.api_only,
            fetch_private_urls: options.fetch_private_urls
                || std::env::var(FETCH_PRIVATE_URLS_ENV).is_ok_and(|v| crate::exec::is_truthy(&v)),
        });
        let sheet = store.open_or_create(pipeline, &options.sheet)?;
        app.adopt(sheet);
        Ok(Inspector { listener, app, url })
    }

    /// The page's URL (with the token, when one is required).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then closes live streams and stops.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let router = api::router(self.app.clone());
        let token = self.app.shutdown.clone();
        let app = self.app.clone();
        let result = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Live event streams end with the server, or graceful shutdown would wait forever.
                token.cancel();
            })
            .await;
        for open in lock(&app.sheets).values() {
            if let Some(run) = lock(&open.run).as_ref() {
                run.cancel();
            }
        }
        app.store.flush();
        result.map_err(|source| Error::Io {
            context: "serving the inspector".into(),
            source,
        })
    }
}

impl Pipeline {
    /// Serves the inspector with the default options until Ctrl-C.
    pub async fn launch(&self) -> Result<(), Error> {
        self.launch_with(LaunchOptions::default()).await
    }

    /// Serves the inspector until Ctrl-C.
    pub async fn launch_with(&self, options: LaunchOptions) -> Result<(), Error> {
        let open_browser = options.open_browser;
        let inspector = Inspector::bind(self, options).await?;
        println!("daggr inspector: {}  (Ctrl-C to stop)", inspector.url());
        if open_browser {
            open_in_browser(inspector.url());
        }
        inspector
            .serve(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        println!("daggr inspector stopped");
        Ok(())
    }
}

fn open_in_browser(url: &str) {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || std::env::var_os("CI").is_some() {
        return;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_host_lists_parse() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size(" 300M "), Some(300 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("2T"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(
            parse_host_list(" Box.lan:7860, ,10.0.0.5"),
            ["box.lan:7860", "10.0.0.5"]
        );
        let served = vec!["127.0.0.1:1".to_string()];
        assert_eq!(hosts_served(served.clone(), vec![], true), None);
        assert_eq!(
            hosts_served(served.clone(), vec![], false),
            Some(served.clone())
        );
        assert_eq!(
            hosts_served(served, vec!["box.lan".into()], true)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_poisoned_lock_is_still_usable() {
        let m = Arc::new(Mutex::new(5));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 6);
    }

    #[test]
    fn non_loopback_addresses_always_get_a_token() {
        assert_eq!(token_for(IpAddr::V4(Ipv4Addr::LOCALHOST), None), None);
        assert_eq!(token_for("::1".parse().unwrap(), None), None);
        let t = token_for("0.0.0.0".parse().unwrap(), None).unwrap();
        assert_eq!(t.len(), 32);
        assert_ne!(t, token_for("192.168.1.5".parse().unwrap(), None).unwrap());
        assert_eq!(
            token_for(IpAddr::V4(Ipv4Addr::LOCALHOST), Some("x".into())).as_deref(),
            Some("x")
        );
    }
}
