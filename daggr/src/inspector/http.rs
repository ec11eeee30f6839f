//! Request plumbing shared by the inspector's routes (the page's API in `api.rs`, the
//! workflow API in `workflow.rs` and its helpers): JSON errors, bounded bodies and names,
//! query encoding, MIME cleaning and server-sent events. It names no route, so every
//! route module can use it without importing another.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::Error;

/// A JSON error response.
pub(crate) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::UnknownNode { .. }
            | Error::UnknownSheet { .. }
            | Error::UnknownBatch { .. }
            | Error::NoResult { .. } => StatusCode::NOT_FOUND,
            Error::SheetExists { .. } | Error::NotSelectable { .. } => StatusCode::CONFLICT,
            Error::UnknownPort { .. }
            | Error::WrongValueType { .. }
            | Error::Codec { .. }
            | Error::InputWiredTwice { .. }
            | Error::TypeMismatch { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError(status, crate::node::event::error_chain(&e))
    }
}

/// A 400 with `message`.
pub(super) fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// What a route answers: a response, or a JSON error.
pub(super) type ApiResult = Result<Response, ApiError>;

/// The longest name (sheet, node, port) or scope accepted, in bytes. Checked before any
/// work: an unknown name is compared with every known one for a "did you mean".
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// The body, or the reason it could not be read (too large: 413) as a JSON error.
pub(super) fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        let status = e.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than this route accepts".to_string()
        } else {
            format!("unreadable body: {e}")
        };
        ApiError(status, message)
    })
}

/// The body as JSON of type `T`, or a 400 saying why it is not.
pub(super) fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    serde_json::from_slice(&body_of(body)?).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

/// Refuses a name longer than [`MAX_NAME_BYTES`] before it is looked up.
pub(super) fn name<'a>(what: &str, text: &'a str) -> Result<&'a str, ApiError> {
    if text.len() > MAX_NAME_BYTES {
        return Err(bad(format!(
            "the {what} is longer than {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// Path parameters, each bounded like any name.
pub(super) trait PathNames {
    /// Refuses a parameter longer than [`MAX_NAME_BYTES`].
    fn check(&self) -> Result<(), ApiError>;
}

impl PathNames for String {
    fn check(&self) -> Result<(), ApiError> {
        name("name in the path", self).map(drop)
    }
}

impl PathNames for (String, String) {
    fn check(&self) -> Result<(), ApiError> {
        self.0.check()?;
        self.1.check()
    }
}

impl PathNames for (String, String, String) {
    fn check(&self) -> Result<(), ApiError> {
        self.0.check()?;
        self.1.check()?;
        self.2.check()
    }
}

/// The path parameters of a route, each checked with [`PathNames::check`].
pub(super) fn path<T: PathNames>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    let t = p
        .map(|Path(t)| t)
        .map_err(|e| bad(format!("invalid path: {e}")))?;
    t.check()?;
    Ok(t)
}

/// `text` percent-encoded for a URL query value (all but the unreserved characters).
pub(crate) fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A MIME type made only of safe characters, or `None`.
pub(super) fn clean_mime(mime: &str) -> Option<&str> {
    let mime = mime.split(';').next().unwrap_or("").trim();
    let (a, b) = mime.split_once('/')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() < 100
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
    };
    (ok(a) && ok(b)).then_some(mime)
}

/// A live event as a server-sent event (its id, name and JSON data).
pub(super) fn to_sse(e: &super::live::LiveEvent) -> SseEvent {
    SseEvent::default()
        .id(e.id.to_string())
        .event(e.name)
        .data(e.data.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_cleaning() {
        assert_eq!(clean_mime("image/png"), Some("image/png"));
        assert_eq!(
            clean_mime("image/svg+xml; charset=utf-8"),
            Some("image/svg+xml")
        );
        assert_eq!(clean_mime("text/html\r\nx: y"), None);
        assert_eq!(clean_mime("nonsense"), None);
    }
}
