//! What the remote node kinds (Gradio apps, inference endpoints) share about HTTP: the
//! server's own words in an error body ([`server_message`]), how clients are built
//! ([`client`]), the retry policy ([`retry`]) and the event-stream parser ([`sse`]).

use serde_json::Value as Json;

pub(crate) mod client;
pub(crate) mod public_only;
pub(crate) mod retry;
pub(crate) mod sse;

/// The server's own words in an error body: the last line of a Python traceback, else
/// the usual JSON shapes (`error`, `detail`, `message`), else the text, cut to 2000
/// characters (an HTML page or an empty body is said to be one).
pub fn server_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.contains("Traceback (most recent call last)") {
        if let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) {
            return last.trim().to_string();
        }
    }
    if let Ok(json) = serde_json::from_slice::<Json>(body) {
        for key in ["error", "detail", "message"] {
            match json.get(key) {
                Some(Json::String(s)) if !s.is_empty() => return s.clone(),
                Some(Json::Object(o)) => {
                    if let Some(Json::String(s)) = o.get("error").or_else(|| o.get("message")) {
                        return s.clone();
                    }
                }
                Some(v @ Json::Array(_)) => return v.to_string(),
                _ => {}
            }
        }
    }
    let text = text.trim();
    if text.is_empty() {
        "(empty response)".into()
    } else if text.starts_with('<') {
        "(an HTML error page)".into()
    } else {
        text.chars().take(2000).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracebacks_give_their_last_line() {
        let body = b"Traceback (most recent call last):\n  File \"x\", line 1\ngradio.route_utils.FnIndexInferError: Could not infer function index for API name: nosuch\n";
        assert_eq!(
            server_message(body),
            "gradio.route_utils.FnIndexInferError: Could not infer function index for API name: nosuch"
        );
        assert_eq!(
            server_message(b"Internal Server Error"),
            "Internal Server Error"
        );
        assert_eq!(
            server_message(br#"{"detail":"Session hash not found."}"#),
            "Session hash not found."
        );
        assert_eq!(
            server_message(br#"{"error":{"message":"nested"}}"#),
            "nested"
        );
        assert_eq!(server_message(b"  "), "(empty response)");
        assert_eq!(server_message(b"<html>hi</html>"), "(an HTML error page)");
        assert_eq!(server_message(&[b'x'; 3000]).len(), 2000);
    }
}
