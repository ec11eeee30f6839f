//! Where `cargo daggr codegen gradio` gets a Gradio app's API description: from the app
//! itself, through the runtime's own client ([`GradioClient::connect_target`]: the Space
//! id resolved through the Hub, `GET /config`, `GET {prefix}/info`, retries and
//! redirects, the Hugging Face token sent only to Hugging Face hosts) on a
//! current-thread tokio runtime. What the tool adds is its wording of the errors, which
//! name the app as the user gave it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value as Json};

use daggr::gradio::{ClientOptions, EndpointInfo, GradioClient};
use daggr::hf::hub::Target;
use daggr::hf::HfToken;

/// What the app said about itself.
#[derive(Clone, Debug, PartialEq)]
pub struct AppApi {
    /// The URL the app answered on.
    pub url: String,
    /// Its Gradio version (from `/config`), when it says.
    pub version: Option<String>,
    /// Its API description, in the shape of the `/info` answer.
    pub info: Json,
}

/// Why the description could not be had: a message naming the app and what failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AppError(pub String);

/// Why an app behind Gradio's own login cannot be asked.
const LOGIN_NEEDED: &str = "the app needs a login (Gradio auth), which cargo daggr does not \
     do; save its /info from a browser and pass it with --info";

/// How errors name the app: its URL, or `Space owner/name`.
fn name(target: &Target) -> String {
    match target {
        Target::Url(url) => url.clone(),
        Target::Space(id) => format!("Space {id}"),
    }
}

/// Connects to `target` (a Space resolved through `hub`) with requests of at most
/// `timeout` each, and reads its API description.
pub fn app_api(
    target: &Target,
    hub: &str,
    token: Option<HfToken>,
    timeout: Duration,
) -> Result<AppApi, AppError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError(format!("cannot start an async runtime: {e}")))?;
    let options = ClientOptions {
        request_timeout: timeout,
        ..ClientOptions::default()
    };
    let client = runtime
        .block_on(GradioClient::connect_target(
            target,
            hub,
            "cargo daggr codegen",
            token,
            options,
            // A sleeping Space wakes within the request timeout; one that is building
            // is waited for as long.
            timeout,
        ))
        .map_err(|e| connect_error(target, e))?;
    // A Gradio app's config names its version or its event listeners.
    if client.version().is_empty() && client.api_names().is_empty() {
        return Err(AppError(format!(
            "{} is not a Gradio app: GET /config answered 200, but not with a Gradio config",
            name(target)
        )));
    }
    Ok(AppApi {
        url: client.base_url().to_string(),
        version: Some(client.version().to_string()).filter(|v| !v.is_empty()),
        info: info_json(client.endpoints()),
    })
}

/// The runtime's connection error, worded for the tool: which app, which request.
fn connect_error(target: &Target, error: daggr::Error) -> AppError {
    let daggr::Error::Remote {
        service,
        endpoint,
        status,
        message,
        ..
    } = error
    else {
        return AppError(error.to_string());
    };
    let app = name(target);
    let text = match (endpoint.as_str(), status) {
        // The Hub refused the Space, or reports it dead.
        (e, _) if e.starts_with("/api/spaces/") => format!("{service}: {message}"),
        ("/config", None) => match target {
            Target::Url(url) => format!("cannot reach {url}/config: {message}"),
            Target::Space(_) => format!("cannot reach {app} (GET /config): {message}"),
        },
        ("/config", Some(401)) => {
            format!("{app} answered GET /config with 401: {LOGIN_NEEDED}")
        }
        ("/config", Some(200)) => format!(
            "{app} is not a Gradio app: GET /config answered 200, but not with a Gradio config: {message}"
        ),
        ("/config", Some(status)) => {
            // The runtime's own hint says what this message already says.
            let message = message.trim_end_matches(" (is this a Gradio app?)");
            format!("{app} is not a Gradio app: GET /config answered {status}: {message}")
        }
        (endpoint, status) => {
            let status = status
                .map(|s| format!(" answered {s}"))
                .unwrap_or_default();
            format!("{service}: GET {endpoint}{status}: {message}")
        }
    };
    AppError(text)
}

/// The endpoints as the `/info` answer describes them: what the runtime read of it, in
/// the shape [`daggr_codegen::gradio_info::parse_info`] reads back to the same endpoints,
/// which is all the bindings generator reads.
pub fn info_json(endpoints: &BTreeMap<String, EndpointInfo>) -> Json {
    let named: Map<String, Json> = endpoints
        .iter()
        .map(|(api, e)| {
            let parameters: Vec<Json> = e
                .parameters
                .iter()
                .map(|p| {
                    let mut param = json!({
                        "label": p.label,
                        "parameter_name": p.name,
                        "parameter_has_default": p.has_default,
                        "parameter_default": p.default,
                        "component": p.component,
                        "python_type": { "type": p.python_type },
                    });
                    if !p.schema.is_null() {
                        param["type"] = p.schema.clone();
                    }
                    param
                })
                .collect();
            let returns: Vec<Json> = e
                .returns
                .iter()
                .map(|r| {
                    let mut ret = json!({
                        "label": r.label,
                        "component": r.component,
                        "python_type": { "type": r.python_type },
                    });
                    if !r.schema.is_null() {
                        ret["type"] = r.schema.clone();
                    }
                    ret
                })
                .collect();
            let endpoint = json!({
                "description": e.description,
                "parameters": parameters,
                "returns": returns,
            });
            (api.clone(), endpoint)
        })
        .collect();
    json!({ "named_endpoints": named, "unnamed_endpoints": {} })
}

#[cfg(test)]
mod tests {
    use super::*;
    use daggr_codegen::gradio_info::parse_info;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    fn samples() -> Vec<(String, Json)> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../daggr-codegen/tests/data/gradio_info"
        );
        ["4.44.1", "5.50.0", "6.31.0"]
            .iter()
            .map(|v| {
                let path = format!("{dir}/codegen_app-{v}.json");
                let text = std::fs::read_to_string(&path).unwrap();
                (v.to_string(), serde_json::from_str(&text).unwrap())
            })
            .collect()
    }

    #[test]
    fn the_description_reads_back_to_the_same_endpoints_and_bindings() {
        for (version, info) in samples() {
            let endpoints = parse_info(&info).unwrap();
            let rebuilt = info_json(&endpoints);
            assert_eq!(parse_info(&rebuilt).unwrap(), endpoints, "Gradio {version}");
            let options = daggr_codegen::gradio::Options {
                src: "owner/space".into(),
                ..Default::default()
            };
            assert_eq!(
                daggr_codegen::gradio::generate(&rebuilt, &options).unwrap(),
                daggr_codegen::gradio::generate(&info, &options).unwrap(),
                "Gradio {version}"
            );
        }
    }

    /// A tiny HTTP server answering each path (query left out) with a canned response,
    /// recording the requests' lines and headers.
    fn serve(routes: Vec<(&'static str, String)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    request.push_str(&line);
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let target = request.split(' ').nth(1).unwrap_or("");
                let path = target.split('?').next().unwrap_or("").to_string();
                log.lock().unwrap().push(request.to_ascii_lowercase());
                let response = routes
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nNot Found"
                            .into()
                    });
                let mut stream = stream;
                let _ = stream.write_all(response.as_bytes());
            }
        });
        (url, seen)
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn ask(src: &str, hub: &str, token: Option<&str>) -> Result<AppApi, AppError> {
        let target = Target::parse(src).unwrap();
        app_api(
            &target,
            hub,
            token.map(HfToken::new),
            Duration::from_secs(10),
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
                ok(
                    r#"{"named_endpoints":{"/upper":{"parameters":[],"returns":[]}},"unnamed_endpoints":{}}"#,
                ),
            ),
        ]);
        let api = ask(&url, &url, Some("hf_secret")).unwrap();
        assert_eq!(api.version.as_deref(), Some("5.50.0"));
        assert_eq!(api.url, url);
        let endpoints = parse_info(&api.info).unwrap();
        assert_eq!(endpoints.keys().collect::<Vec<_>>(), ["/upper"]);
        let seen = seen.lock().unwrap();
        assert!(seen[0].starts_with("get /config "), "{seen:?}");
        assert!(seen[1].starts_with("get /gradio_api/info"), "{seen:?}");
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
        let hub = "http://127.0.0.1:9";
        let err = ask(&format!("http://127.0.0.1:{port}"), hub, None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot reach http://127.0.0.1:{port}/config: ")),
            "{err}"
        );

        let (url, _) = serve(vec![(
            "/config",
            "HTTP/1.1 200 OK\r\ncontent-length: 15\r\nconnection: close\r\n\r\n<html>hi</html>"
                .into(),
        )]);
        let err = ask(&url, hub, None).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "{url} is not a Gradio app: GET /config answered 200, but not with a Gradio config: expected JSON"
            )),
            "{err}"
        );

        let (url, _) = serve(vec![("/config", ok(r#"{"title":"a JSON API"}"#))]);
        let err = ask(&url, hub, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{url} is not a Gradio app: GET /config answered 200, but not with a Gradio config"
            )
        );

        let (url, _) = serve(vec![]);
        let err = ask(&url, hub, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{url} is not a Gradio app: GET /config answered 404: Not Found")
        );

        let (url, _) = serve(vec![(
            "/config",
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 31\r\nconnection: close\r\n\r\n{\"detail\":\"Not authenticated\"}\n"
                .into(),
        )]);
        let err = ask(&url, hub, None).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "{url} answered GET /config with 401: the app needs a login"
            )),
            "{err}"
        );

        // The API is hidden: /info answers 404, so there is nothing to bind.
        let (url, _) = serve(vec![("/config", ok(r#"{"version":"4.44.1"}"#))]);
        let api = ask(&url, hub, None).unwrap();
        assert_eq!(
            daggr_codegen::gradio::generate(&api.info, &Default::default())
                .unwrap_err()
                .to_string(),
            "the app describes no named endpoint (its functions have no api_name, or its API is hidden)"
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
        assert_eq!(ask("owner/app", &hub, Some("hf_secret")).unwrap().url, app);
        assert!(
            seen.lock()
                .unwrap()
                .iter()
                .all(|r| !r.contains("hf_secret")),
            "a Hub on plain http never gets the token"
        );
        let err = ask("owner/paused", &hub, Some("hf_secret")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Space owner/paused: the Space is PAUSED on the Hub, so it cannot answer"
        );
        let err = ask("owner/missing", &hub, Some("hf_secret")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Space owner/missing: the Hub does not know this Space: it does not exist, or this token cannot see it (Not Found)"),
            "{err}"
        );
    }
}
