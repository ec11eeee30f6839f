//! The network side of `cargo daggr codegen gradio`: where a Gradio app lives, and its
//! API description, by blocking requests (one tool run needs no async runtime).
//!
//! As the runtime's `GradioNode` does it: a Space id (`owner/name`) is resolved through
//! the Hub (`GET {hub}/api/spaces/{id}`: its `host`; then `…/host`; then the `*.hf.space`
//! subdomain rule, which the Hub documents by example only), the Hub being `$HF_ENDPOINT`
//! or `https://huggingface.co`. Then `GET {url}/config` gives the version and the API
//! prefix (`/gradio_api` on Gradio 5 and 6, none on 4), and `GET {url}{prefix}/info` the
//! description. The Hugging Face token (`HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, or the
//! Hugging Face CLI's token file) goes only to Hugging Face hosts over https; redirects
//! are followed here, one hop at a time, so a redirect elsewhere never carries it.
//!
//! Only the requests are here: reading the source, the Hub's answers, the token's hosts
//! and error bodies is `daggr::hf::hub`, which the runtime uses too.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value as Json;

use daggr::gradio::server_message;
use daggr::hf::hub::{
    default_hub, host_answer, is_hf_host, is_space_host, subdomain_url, unknown_space, SpaceInfo,
    Target,
};

/// What the app said about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct AppApi {
    /// The URL the app answered on.
    pub url: String,
    /// Its Gradio version (from `/config`), when it says.
    pub version: Option<String>,
    /// The `/info` answer.
    pub info: Json,
}

/// Why the description could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The source is neither a Space id nor a URL.
    #[error("{0}")]
    Source(String),
    /// Nothing answered.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The Hub refused or does not know the Space.
    #[error("Space {space}: {reason}")]
    Space {
        /// The Space id.
        space: String,
        /// Why.
        reason: String,
    },
    /// Something answered, but not as a Gradio app does.
    #[error("{url} is not a Gradio app: {reason}")]
    NotGradio {
        /// The app's URL.
        url: String,
        /// What it answered.
        reason: String,
    },
    /// The app answered `/config` but not `/info`.
    #[error("the Gradio app at {url} does not describe its API: {reason}")]
    NoApiInfo {
        /// The app's URL.
        url: String,
        /// What `/info` answered.
        reason: String,
    },
}

/// A blocking HTTP client for one tool run.
pub struct Fetcher {
    agent: ureq::Agent,
    token: Option<String>,
    hub: String,
}

/// One answer: status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    /// The server's own words in the body, read as the runtime reads them.
    fn message(&self) -> String {
        server_message(self.body.as_bytes())
    }
}

/// Why an app behind Gradio's own login cannot be asked.
const LOGIN_NEEDED: &str = "GET /config answered 401: the app needs a login (Gradio auth), \
     which cargo daggr does not do; save its /info from a browser and pass it with --info";

impl Fetcher {
    /// A client whose requests each take at most `timeout` (a sleeping Space takes a
    /// while to wake), with the token and Hub of the environment.
    pub fn new(timeout: Duration) -> Fetcher {
        Fetcher::with(timeout, token_from_env(), &default_hub())
    }

    /// A client with the given token and Hub.
    pub fn with(timeout: Duration, token: Option<String>, hub: &str) -> Fetcher {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(30))))
            // Statuses are answers to report, and redirects are followed by `get`, which
            // decides for each hop whether the token may go there.
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("cargo-daggr/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Fetcher {
            agent,
            token,
            hub: hub.trim_end_matches('/').to_string(),
        }
    }

    /// Resolves `src` and reads the app's `/config` and `/info`.
    pub fn app_api(&self, src: &str) -> Result<AppApi, FetchError> {
        let url = match Target::parse(src).map_err(FetchError::Source)? {
            Target::Url(url) => url,
            Target::Space(id) => self.resolve_space(&id)?,
        };
        let config_url = format!("{url}/config");
        let answer = self.get(&config_url)?;
        // A Gradio app's config names its version and its event listeners.
        let config = serde_json::from_str::<Json>(&answer.body)
            .ok()
            .filter(|c| c.get("version").is_some() || c.get("dependencies").is_some());
        let config = match (answer.status, config) {
            (200, Some(config)) => config,
            (status, _) => {
                let reason = match status {
                    200 => "GET /config answered 200, but not with a Gradio config".into(),
                    401 => LOGIN_NEEDED.to_string(),
                    _ => format!("GET /config answered {status}: {}", answer.message()),
                };
                return Err(FetchError::NotGradio { url, reason });
            }
        };
        let prefix = config
            .get("api_prefix")
            .and_then(Json::as_str)
            .unwrap_or("")
            .trim_end_matches('/');
        let version = config
            .get("version")
            .and_then(Json::as_str)
            .map(str::to_string);
        let info_route = format!("{prefix}/info");
        let answer = self.get(&format!("{url}{info_route}"))?;
        let info = match (answer.status, serde_json::from_str::<Json>(&answer.body)) {
            (200, Ok(info)) => info,
            (status, _) => {
                let answered = format!("GET {info_route} answered {status}: {}", answer.message());
                return Err(FetchError::NoApiInfo {
                    url,
                    reason: format!("{answered} (is its API hidden, `show_api=False`?)"),
                });
            }
        };
        Ok(AppApi { url, version, info })
    }

    /// The base URL of a Space.
    fn resolve_space(&self, id: &str) -> Result<String, FetchError> {
        let info_url = format!("{}/api/spaces/{id}", self.hub);
        let answer = match self.get(&info_url) {
            Ok(answer) => answer,
            Err(e) => {
                let url = subdomain_url(id);
                eprintln!("cargo daggr: the Hub did not answer ({e}); trying {url}");
                return Ok(url);
            }
        };
        match answer.status {
            200 => {
                // Not JSON is as good as saying nothing: the routes below still may.
                let info: Json = serde_json::from_str(&answer.body).unwrap_or(Json::Null);
                let info = SpaceInfo::from_json(&info);
                if let Some(reason) = info.unavailable() {
                    return Err(FetchError::Space {
                        space: id.to_string(),
                        reason,
                    });
                }
                Ok(info
                    .host
                    .or_else(|| self.host_route(id))
                    .unwrap_or_else(|| subdomain_url(id)))
            }
            401 | 404 => Err(FetchError::Space {
                space: id.to_string(),
                reason: unknown_space(self.token.is_some(), &answer.message()),
            }),
            _ => Ok(self.host_route(id).unwrap_or_else(|| subdomain_url(id))),
        }
    }

    /// `GET {hub}/api/spaces/{id}/host`.
    fn host_route(&self, id: &str) -> Option<String> {
        let answer = self
            .get(&format!("{}/api/spaces/{id}/host", self.hub))
            .ok()?;
        host_answer(&serde_json::from_str(&answer.body).ok()?)
    }

    /// GET, following redirects (at most five), with the token only on Hugging Face hosts.
    fn get(&self, url: &str) -> Result<Answer, FetchError> {
        let mut url = url.to_string();
        for _ in 0..=5 {
            let mut request = self.agent.get(&url);
            if let Some(token) = self.token.as_deref().filter(|_| is_hf_host(&url)) {
                // As gradio_client does: on a Space's own host the HF proxy reads this
                // header and the Space's code never sees the token.
                let header = if is_space_host(&url) {
                    "x-hf-authorization"
                } else {
                    "authorization"
                };
                request = request.header(header, format!("Bearer {token}"));
            }
            let mut response = request.call().map_err(|e| FetchError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_string);
            if let (300..=399, Some(location)) = (status, location) {
                url = join(&url, &location);
                continue;
            }
            let body = response
                .body_mut()
                .with_config()
                // Big apps describe hundreds of endpoints.
                .limit(64 * 1024 * 1024)
                .read_to_string()
                .map_err(|e| FetchError::Unreachable {
                    url: url.clone(),
                    reason: format!("reading the answer: {e}"),
                })?;
            return Ok(Answer { status, body });
        }
        Err(FetchError::Unreachable {
            url,
            reason: "too many redirects".into(),
        })
    }
}

/// A redirect target, resolved against the URL that sent it.
fn join(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    let host = rest.split('/').next().unwrap_or(rest);
    if let Some(path) = location.strip_prefix('/') {
        return format!("{scheme}://{host}/{path}");
    }
    let dir = base.rsplit_once('/').map(|(d, _)| d).unwrap_or(base);
    format!("{dir}/{location}")
}

/// The token of the environment: `HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, else the file the
/// Hugging Face CLI writes (`$HF_TOKEN_PATH`, or `token` in `$HF_HOME`, default
/// `~/.cache/huggingface`), as the runtime reads it.
fn token_from_env() -> Option<String> {
    for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        if let Ok(t) = std::env::var(var) {
            if !t.trim().is_empty() {
                return Some(t.trim().to_string());
            }
        }
    }
    let file = match std::env::var_os("HF_TOKEN_PATH") {
        Some(path) => PathBuf::from(path),
        None => match std::env::var_os("HF_HOME") {
            Some(home) => PathBuf::from(home).join("token"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/huggingface/token"),
        },
    };
    let text = std::fs::read_to_string(file).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    #[test]
    fn redirect_targets_resolve() {
        assert_eq!(join("https://a.b/x/y", "https://c.d/z"), "https://c.d/z");
        assert_eq!(join("https://a.b/x/y", "/z"), "https://a.b/z");
        assert_eq!(join("http://a.b:1/x/y", "z"), "http://a.b:1/x/z");
    }

    /// A tiny HTTP server answering each path with a canned response, recording the
    /// requests' paths and headers.
    fn serve(routes: Vec<(&'static str, String)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    request.push_str(&line);
                }
                let path = request.split(' ').nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(request.to_ascii_lowercase());
                let response = routes
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nNot Found".into()
                    });
                let mut stream = stream;
                let _ = stream.write_all(response.as_bytes());
            }
        });
        (url, seen)
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn reads_config_then_info_under_the_api_prefix() {
        let (url, seen) = serve(vec![
            (
                "/config",
                ok(r#"{"version":"5.50.0","api_prefix":"/gradio_api"}"#),
            ),
            (
                "/gradio_api/info",
                ok(r#"{"named_endpoints":{},"unnamed_endpoints":{}}"#),
            ),
        ]);
        let fetcher = Fetcher::with(Duration::from_secs(10), Some("hf_secret".into()), &url);
        let api = fetcher.app_api(&url).unwrap();
        assert_eq!(api.version.as_deref(), Some("5.50.0"));
        assert_eq!(api.url, url);
        assert_eq!(api.info["unnamed_endpoints"], serde_json::json!({}));
        let seen = seen.lock().unwrap();
        assert!(seen[0].starts_with("get /config "));
        assert!(seen[1].starts_with("get /gradio_api/info "));
        assert!(
            seen.iter().all(|r| !r.contains("hf_secret")),
            "no token to a non-HF host: {seen:?}"
        );
    }

    #[test]
    fn clear_errors() {
        // Nothing listens on a port just freed.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fetcher = Fetcher::with(Duration::from_secs(10), None, "http://127.0.0.1:9");
        let err = fetcher
            .app_api(&format!("http://127.0.0.1:{port}"))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot reach http://127.0.0.1:{port}/config: ")),
            "{err}"
        );

        let (url, _) = serve(vec![(
            "/config",
            "HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n<html>hi</html>".into(),
        )]);
        let err = fetcher.app_api(&url).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{url} is not a Gradio app: GET /config answered 200, but not with a Gradio config"
            )
        );

        let (url, _) = serve(vec![]);
        let err = fetcher.app_api(&url).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{url} is not a Gradio app: GET /config answered 404: Not Found")
        );

        let (url, _) = serve(vec![("/config", ok(r#"{"version":"4.44.1"}"#))]);
        let err = fetcher.app_api(&url).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "the Gradio app at {url} does not describe its API: GET /info answered 404: Not Found (is its API hidden"
            )),
            "{err}"
        );
    }

    #[test]
    fn spaces_resolve_through_the_hub() {
        let (app, _) = serve(vec![
            ("/config", ok(r#"{"version":"4.44.1"}"#)),
            ("/info", ok(r#"{"named_endpoints":{}}"#)),
        ]);
        let hub_answer = ok(&format!(
            r#"{{"id":"owner/app","host":"{app}","runtime":{{"stage":"RUNNING"}}}}"#
        ));
        let (hub, seen) = serve(vec![
            ("/api/spaces/owner/app", hub_answer),
            (
                "/api/spaces/owner/paused",
                ok(r#"{"runtime":{"stage":"PAUSED"}}"#),
            ),
        ]);
        let fetcher = Fetcher::with(Duration::from_secs(10), Some("hf_secret".into()), &hub);
        assert_eq!(fetcher.app_api("owner/app").unwrap().url, app);
        assert!(
            seen.lock()
                .unwrap()
                .iter()
                .all(|r| !r.contains("hf_secret")),
            "a Hub on plain http never gets the token"
        );
        let err = fetcher.app_api("owner/paused").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Space owner/paused: the Space is PAUSED on the Hub, so it cannot answer"
        );
        let err = fetcher.app_api("owner/missing").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Space owner/missing: the Hub does not know this Space: it does not exist, or this token cannot see it (Not Found)"),
            "{err}"
        );
    }
}
