//! Reading a provider's error response: the server's own message, whatever its shape, and
//! how long a `Retry-After` header asks us to wait.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;

/// The server's own message from an error response, in the order the Hugging Face client
/// reads it: the `X-Error-Message` header; else the JSON body's `{"error": "…"}`,
/// `{"error": ["…", "…"]}`, `{"error": {"message": "…"}}` (OpenAI-compatible servers),
/// `{"error": …, "error_description": "…"}`, `{"errors": [{"message": "…"}]}`,
/// `{"detail": …}` (FastAPI validation), `{"message": "…"}`; else the text body (unless
/// it is an HTML page), cut to 2000 characters.
///
/// ```
/// use daggr::inference::error_message;
/// assert_eq!(error_message(None, br#"{"error": "Model x does not exist"}"#), "Model x does not exist");
/// assert_eq!(error_message(None, br#"{"error": {"message": "bad", "type": "x"}}"#), "bad");
/// assert_eq!(error_message(Some("from a header"), b""), "from a header");
/// ```
pub fn error_message(header: Option<&str>, body: &[u8]) -> String {
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

/// How long a `Retry-After` header asks to wait: either delay-seconds (`"2"`, also a
/// fractional `"0.5"`) or an HTTP date (`"Wed, 21 Oct 2015 07:28:00 GMT"`), capped at
/// `max`. `None` when the header is missing or unreadable.
///
/// ```
/// use std::time::Duration;
/// use daggr::inference::retry_after;
/// let max = Duration::from_secs(30);
/// assert_eq!(retry_after(Some("2"), max), Some(Duration::from_secs(2)));
/// assert_eq!(retry_after(Some("3600"), max), Some(max));
/// assert_eq!(retry_after(Some("soon"), max), None);
/// ```
pub fn retry_after(header: Option<&str>, max: Duration) -> Option<Duration> {
    let header = header?.trim();
    if let Ok(secs) = header.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs).min(max));
    }
    let at = http_date(header)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)).min(max))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form
/// HTTP senders must use.
fn http_date(s: &str) -> Option<u64> {
    let (_, rest) = s.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else { return None };
    if !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), for years from 1970.
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
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

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let max = Duration::from_secs(30);
        assert_eq!(retry_after(Some("2"), max), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(Some("0.5"), max),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after(Some("3600"), max), Some(max));
        assert_eq!(retry_after(Some("-1"), max), None);
        // A date in the past means "now".
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), max),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2099 07:28:00 GMT"), max),
            Some(max)
        );
        assert_eq!(retry_after(Some("tomorrow"), max), None);
        assert_eq!(retry_after(None, max), None);
    }

    #[test]
    fn http_dates_are_exact() {
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date("Tue, 29 Feb 2000 12:00:00 GMT"), Some(951825600));
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
    }
}
