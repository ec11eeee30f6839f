//! Who may call a served pipeline: API keys for the workflow API.
//!
//! `POST /api/call` needs `Authorization: Bearer <key>` whenever a credential is
//! configured: an API key ([`LaunchOptions::api_keys`](super::LaunchOptions::api_keys) and
//! `$DAGGR_API_KEYS`, comma-separated) or the inspector's token (always set when serving
//! beyond loopback; it is accepted as a key, and in the inspector's own ways too). A call
//! without a valid key is refused with 401 before anything runs.
//!
//! A key also opens what a caller needs beside the call (the blob routes, the OpenAPI
//! document) when the inspector's token guards them; without a token those stay as open as
//! the rest of the inspector on loopback (keys alone protect calls, not the page: set a
//! token to protect everything).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::http::ApiError;
use super::App;

/// Keys from a comma-separated list (`$DAGGR_API_KEYS`): trimmed, empty ones dropped.
pub(super) fn parse_keys(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// The keys of `$DAGGR_API_KEYS`.
pub(super) fn env_keys() -> Vec<String> {
    std::env::var(super::API_KEYS_ENV)
        .map(|v| parse_keys(&v))
        .unwrap_or_default()
}

/// Whether calls need a key: one is configured, or the inspector's token is.
pub(super) fn calls_need_key(app: &App) -> bool {
    app.token.is_some() || !app.api_keys.is_empty()
}

/// The call route (and any under it).
fn is_call(path: &str) -> bool {
    path == "/api/call" || path.starts_with("/api/call/")
}

/// The routes a caller needs beside the call.
fn serves_calls(path: &str) -> bool {
    path == "/api/openapi.json" || path == "/api/blobs" || path.starts_with("/api/blobs/")
}

/// The key of an `Authorization: Bearer <key>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
}

/// The workflow API's word on a request: `None` when the route is not its business (the
/// inspector's token rule applies), else whether it may go on. `token_given` is the
/// inspector's token as the request carries it (`x-daggr-token` or `?token=`).
pub(super) fn workflow_access(
    app: &App,
    path: &str,
    headers: &HeaderMap,
    token_given: Option<&str>,
) -> Option<bool> {
    let ours = is_call(path) || (serves_calls(path) && app.token.is_some());
    if !ours {
        return None;
    }
    if !calls_need_key(app) {
        return Some(true);
    }
    let is_key = |given: &str| {
        app.token
            .iter()
            .chain(&app.api_keys)
            .any(|key| constant_time_eq(given.as_bytes(), key.as_bytes()))
    };
    let token = app.token.as_deref();
    let token_ok = matches!((token_given, token), (Some(g), Some(t)) if constant_time_eq(g.as_bytes(), t.as_bytes()));
    Some(bearer(headers).is_some_and(is_key) || token_ok)
}

/// Compares in time that depends on the lengths only, not on where the first difference is.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The 401 for a call without a valid key.
pub(super) fn refused() -> Response {
    let mut response = ApiError(
        StatusCode::UNAUTHORIZED,
        "a valid API key is required: `Authorization: Bearer <key>`".into(),
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"daggr\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lists_and_bearer_headers_parse() {
        assert_eq!(parse_keys(" a1, ,b2 ,"), ["a1", "b2"]);
        assert!(parse_keys("").is_empty());
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  k1 "),
        );
        assert_eq!(bearer(&headers), Some("k1"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer k2"));
        assert_eq!(bearer(&headers), Some("k2"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic k3"));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn routes_of_the_workflow_api() {
        assert!(is_call("/api/call"));
        assert!(!is_call("/api/calls"));
        assert!(serves_calls("/api/blobs/sha256-x"));
        assert!(!serves_calls("/api/sheets"));
    }
}
