//! Reading a provider's error response: the server's own message, whatever its shape.

use serde_json::Value as Json;

/// The server's own message from an error response, in the order the Hugging Face client
/// reads it: the `X-Error-Message` header; else the JSON body's `{"error": "…"}`,
/// `{"error": ["…", "…"]}`, `{"error": {"message": "…"}}` (OpenAI-compatible servers),
/// `{"error": …, "error_description": "…"}`, `{"errors": [{"message": "…"}]}`,
/// `{"detail": …}` (FastAPI validation), `{"message": "…"}`; else the text body (unless
/// it is an HTML page), cut to 2000 characters.
pub(crate) fn error_message(header: Option<&str>, body: &[u8]) -> String {
    if let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) {
        return h.to_string();
    }
    if let Ok(json) = serde_json::from_slice::<Json>(body) {
        if let Some(m) = json_message(&json) {
            return m;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".into();
    }
    if text.starts_with('<') {
        return "(an HTML error page)".into();
    }
    text.chars().take(2000).collect()
}

/// The message of a JSON error value (a whole body, or one streamed error event).
pub(crate) fn json_message(json: &Json) -> Option<String> {
    fn pick(v: &Json) -> Option<String> {
        match v {
            Json::String(s) => Some(s.clone()),
            Json::Array(items) if !items.is_empty() => Some(
                items
                    .iter()
                    .map(|i| pick(i).unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Json::Object(o) => ["message", "msg", "error"]
                .iter()
                .find_map(|k| o.get(*k).and_then(pick))
                .or_else(|| Some(v.to_string())),
            Json::Null => None,
            other => Some(other.to_string()),
        }
    }
    let mut message = json.get("error").and_then(pick);
    if let Some(desc) = json.get("error_description").and_then(Json::as_str) {
        message = Some(match message {
            Some(m) => format!("{m}: {desc}"),
            None => desc.to_string(),
        });
    }
    message
        .or_else(|| json.get("errors").and_then(pick))
        .or_else(|| json.get("detail").and_then(pick))
        .or_else(|| json.get("message").and_then(pick))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_shape_gives_the_servers_message() {
        assert_eq!(error_message(Some("from header"), b"{}"), "from header");
        assert_eq!(
            error_message(None, br#"{"error": "Model x does not exist"}"#),
            "Model x does not exist"
        );
        assert_eq!(error_message(None, br#"{"error": ["a", "b"]}"#), "a; b");
        assert_eq!(
            error_message(None, br#"{"error": {"message": "bad", "type": "x"}}"#),
            "bad"
        );
        assert_eq!(
            error_message(None, br#"{"error": "e", "error_description": "why"}"#),
            "e: why"
        );
        assert_eq!(
            error_message(None, br#"{"errors": [{"message": "m"}]}"#),
            "m"
        );
        assert_eq!(
            error_message(
                None,
                br#"{"detail": [{"loc": ["body", "input"], "msg": "Field required"}]}"#
            ),
            "Field required"
        );
        assert_eq!(error_message(None, br#"{"message": "plain"}"#), "plain");
        assert_eq!(
            error_message(None, b"plain text failure\n"),
            "plain text failure"
        );
        assert_eq!(
            error_message(None, b"<html><body>502</body></html>"),
            "(an HTML error page)"
        );
        assert_eq!(error_message(None, b""), "(no message)");
    }
}
