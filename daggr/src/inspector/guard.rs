//! The security layer in front of every route: the served hosts (DNS rebinding), the
//! inspector's token, the workflow API's keys (see `api_keys.rs`), the path length, and
//! cross-site requests.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api_keys::{constant_time_eq, refused, workflow_access};
use super::http::ApiError;
use super::App;

/// The longest request path: names are bounded, so a real path is far shorter.
const MAX_PATH_BYTES: usize = 4096;

/// Whether `host` (a `Host` header) is one of `allowed`: equal, or equal without its port
/// to an entry that names no port.
fn host_allowed(allowed: &[String], host: &str) -> bool {
    let without_port = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    allowed.iter().any(|a| {
        a.eq_ignore_ascii_case(host) || (!host.is_empty() && a.eq_ignore_ascii_case(without_port))
    })
}

/// The request's token: the `x-daggr-token` header, else `?token=` percent-decoded (the page
/// encodes it with `encodeURIComponent`).
fn token_given(request: &Request) -> Option<String> {
    if let Some(h) = request.headers().get("x-daggr-token") {
        return h.to_str().ok().map(str::to_string);
    }
    let query = request.uri().query()?;
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))?;
    Some(
        percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Why a state-changing request is refused as cross-site, if it is. A page of another
/// origin can send a form (`text/plain`, urlencoded, multipart) or a `no-cors` fetch without
/// reading the answer, and on loopback no token stops it; so such requests must be JSON
/// (which a browser only sends cross-origin after a CORS preflight, never granted here),
/// and a browser's own word on where they come from (`Origin`, `Sec-Fetch-Site`) must be
/// this server.
fn cross_site(request: &Request, host: &str) -> Option<String> {
    let headers = request.headers();
    let text = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if !matches!(site, "same-origin" | "none") {
            return Some(format!(
                "cross-site request refused (Sec-Fetch-Site: {site})"
            ));
        }
    }
    if let Some(origin) = text(header::ORIGIN) {
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if !authority.is_some_and(|a| a.eq_ignore_ascii_case(host)) {
            return Some(format!(
                "cross-origin request refused (Origin: {origin} is not this server)"
            ));
        }
    }
    let mime = text(header::CONTENT_TYPE).map(|m| {
        m.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if request.uri().path() == "/api/blobs" {
        // Uploads carry the file's own type; the form encodings are no file's type, and a
        // `text/plain` file comes with the page's `x-daggr-filename` header (which a form
        // cannot set).
        return match mime.as_deref() {
            Some("multipart/form-data" | "application/x-www-form-urlencoded") => {
                Some("uploads are the file's raw bytes, not a form".to_string())
            }
            Some("text/plain") | None if !headers.contains_key("x-daggr-filename") => {
                Some("a text/plain upload needs the x-daggr-filename header".to_string())
            }
            _ => None,
        };
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || text(header::CONTENT_LENGTH).is_some_and(|l| l.trim() != "0");
    match mime.as_deref() {
        Some("application/json") => None,
        None if !has_body => None,
        Some(other) => Some(format!(
            "the body must be `Content-Type: application/json`, not `{other}`"
        )),
        None => Some("the body must be `Content-Type: application/json`".into()),
    }
}

/// Refuses foreign `Host` headers when serving without a token (DNS rebinding), requests
/// without the token when one is configured (static assets excepted: they carry nothing
/// private), overlong paths, and state-changing requests from another site.
pub(super) async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Some(allowed) = &app.allowed_hosts {
        if !host_allowed(allowed, &host) {
            return ApiError(
                StatusCode::FORBIDDEN,
                format!("host `{host}` is not served here"),
            )
            .into_response();
        }
    }
    let path = request.uri().path();
    if path.len() > MAX_PATH_BYTES {
        return ApiError(
            StatusCode::URI_TOO_LONG,
            format!("the path is longer than {MAX_PATH_BYTES} bytes"),
        )
        .into_response();
    }
    let public = path.starts_with("/assets/") || path.starts_with("/favicon");
    let token = token_given(&request);
    // The workflow API's routes take an API key too (see api_keys.rs).
    let workflow = workflow_access(&app, path, request.headers(), token.as_deref());
    if workflow == Some(false) {
        return refused();
    }
    if let (Some(expected), false, None) = (&app.token, public, workflow) {
        let given = token.unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return ApiError(
                StatusCode::UNAUTHORIZED,
                "a valid token is required (see the URL printed at launch)".into(),
            )
            .into_response();
        }
    }
    if app.api_only && !workflow_route(path) {
        return ApiError(
            StatusCode::NOT_FOUND,
            "no such route: only the workflow API is served here (POST /api/call, GET /api/openapi.json, /api/blobs)".into(),
        )
        .into_response();
    }
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes_state {
        if let Some(why) = cross_site(&request, &host) {
            return ApiError(StatusCode::FORBIDDEN, why).into_response();
        }
    }
    next.run(request).await
}

/// Whether `path` is one of the workflow API's routes (all an API-only server answers):
/// calls (and their sub-routes), the OpenAPI document, and the blobs media go through.
fn workflow_route(path: &str) -> bool {
    let under = |root: &str| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under("/api/call") || under("/api/blobs") || path == "/api/openapi.json"
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    #[test]
    fn an_api_only_server_answers_the_workflow_routes() {
        for path in [
            "/api/call",
            "/api/call/stream",
            "/api/openapi.json",
            "/api/blobs",
            "/api/blobs/sha256-abc",
        ] {
            assert!(workflow_route(path), "{path}");
        }
        for path in [
            "/",
            "/api/graph",
            "/api/sheets",
            "/api/batches",
            "/api/batches/nightly",
            "/api/calls",
            "/api/blobsx",
        ] {
            assert!(!workflow_route(path), "{path}");
        }
    }

    #[test]
    fn hosts_match_exactly_or_by_name_for_portless_entries() {
        let allowed = vec!["127.0.0.1:7860".to_string(), "box.lan".to_string()];
        assert!(host_allowed(&allowed, "127.0.0.1:7860"));
        assert!(!host_allowed(&allowed, "127.0.0.1:7861"));
        assert!(!host_allowed(&allowed, "127.0.0.1"));
        assert!(host_allowed(&allowed, "BOX.lan:80"));
        assert!(host_allowed(&allowed, "box.lan"));
        assert!(!host_allowed(&allowed, "evil.box.lan"));
        assert!(!host_allowed(&allowed, ""));
    }

    fn post(headers: &[(&str, &str)], path: &str) -> Request {
        let mut r = Request::builder().method("POST").uri(path);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(Body::empty()).unwrap()
    }

    #[test]
    fn cross_site_rules() {
        let host = "127.0.0.1:7860";
        let json = ("content-type", "application/json");
        let some_body = ("content-length", "5");
        let ok = |h: &[(&str, &str)], path| cross_site(&post(h, path), host).is_none();
        assert!(ok(&[json, some_body], "/api/sheets"));
        assert!(ok(
            &[("content-type", "Application/JSON; charset=utf-8")],
            "/x"
        ));
        assert!(ok(&[], "/api/sheets/a/cancel"), "no body, no type");
        assert!(ok(&[("content-length", "0")], "/x"));
        assert!(!ok(&[some_body], "/x"), "a body without a type");
        assert!(!ok(&[("transfer-encoding", "chunked")], "/x"));
        assert!(
            !ok(&[("content-type", "text/plain")], "/x"),
            "an empty form"
        );
        assert!(ok(&[json, ("origin", "http://127.0.0.1:7860")], "/x"));
        assert!(ok(&[json, ("origin", "http://127.0.0.1:7860")], "/x"));
        assert!(!ok(&[json, ("origin", "http://127.0.0.1:7861")], "/x"));
        assert!(!ok(&[json, ("origin", "http://127.0.0.1:7860.evil")], "/x"));
        assert!(!ok(&[json, ("origin", "null")], "/x"));
        assert!(ok(&[json, ("sec-fetch-site", "same-origin")], "/x"));
        assert!(ok(&[json, ("sec-fetch-site", "none")], "/x"));
        assert!(!ok(&[json, ("sec-fetch-site", "same-site")], "/x"));
        assert!(!ok(&[json, ("sec-fetch-site", "cross-site")], "/x"));
        let png = ("content-type", "image/png");
        assert!(ok(&[png, some_body], "/api/blobs"));
        assert!(!ok(
            &[("content-type", "multipart/form-data; boundary=x")],
            "/api/blobs"
        ));
        assert!(!ok(&[("content-type", "text/plain")], "/api/blobs"));
        assert!(ok(
            &[
                ("content-type", "text/plain"),
                ("x-daggr-filename", "a.txt")
            ],
            "/api/blobs"
        ));
        assert!(!ok(&[png, ("origin", "http://localhost:1")], "/api/blobs"));
    }
}
