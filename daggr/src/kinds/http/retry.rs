//! The one retry policy of the remote node kinds: which failures are worth another try,
//! and how long to wait before it (exponential backoff with jitter, capped, and what the
//! server asked for in `Retry-After` first).
//!
//! Used by the Gradio client's requests, the inference client's requests and the wait for
//! a Space that is still building.

use std::time::{Duration, SystemTime};

/// Which answers a request is sent again after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryOn {
    /// Any 5xx and 429: a Gradio app behind a proxy answers 502/503 while it restarts,
    /// and its 500s on a submit are mostly a queue that is not ready yet.
    ServerErrors,
    /// 429 and 503 only: an inference provider's 500 is about the request (a bad input, a
    /// model that fails on it) and would fail again.
    Overload,
}

/// How often and how patiently a request is retried. Connection failures are always
/// retryable (nothing reached the server); statuses as [`RetryOn`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first try.
    pub retries: u32,
    /// The delay before the first retry, doubled for each further one.
    pub first: Duration,
    /// The longest wait, whether computed or asked for by the server.
    pub cap: Duration,
    /// Which statuses are retried.
    pub on: RetryOn,
}

/// Computed delays vary by ±20 %, so clients that failed together do not retry together.
const JITTER: f64 = 0.2;

impl RetryPolicy {
    /// Whether an answer with this status is worth another try.
    pub fn retries_status(&self, status: u16) -> bool {
        match self.on {
            RetryOn::ServerErrors => status == 429 || (500..600).contains(&status),
            RetryOn::Overload => status == 429 || status == 503,
        }
    }

    /// Whether a request that failed with this error is worth another try: only when it
    /// never connected (a timeout or a broken answer may have done the work already).
    pub fn retries_error(&self, error: &reqwest::Error) -> bool {
        error.is_connect()
    }

    /// The computed delay before retry number `retry` (1-based): `first × 2^(retry−1)`,
    /// ±20 % jitter, at most `cap`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let base = self
            .first
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let jitter = 1.0 - JITTER + 2.0 * JITTER * rand::random::<f64>();
        base.mul_f64(jitter).min(self.cap)
    }

    /// The wait before retry number `retry` (1-based): what the server asked for (capped),
    /// else [`RetryPolicy::backoff`].
    pub fn wait(&self, retry: u32, asked: Option<Duration>) -> Duration {
        match asked {
            Some(d) => d.min(self.cap),
            None => self.backoff(retry),
        }
    }
}

/// Sleeps `wait`, unless `cancelled` completes first: then `false`.
pub(crate) async fn sleep_unless(
    wait: Duration,
    cancelled: impl std::future::Future<Output = ()>,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = cancelled => false,
    }
}

/// How long a `Retry-After` header asks to wait: either delay-seconds (`"2"`, also a
/// fractional `"0.5"`) or an HTTP date (`"Wed, 21 Oct 2015 07:28:00 GMT"`, or the two
/// obsolete forms HTTP readers must accept), capped at `max`. `None` when the header is
/// missing or unreadable (internal: examples in the unit tests below).
pub fn retry_after(header: Option<&str>, max: Duration) -> Option<Duration> {
    let header = header?.trim();
    if let Ok(secs) = header.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs).min(max));
    }
    let at = httpdate::parse_http_date(header).ok()?;
    // A date in the past means "now".
    let wait = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Some(wait.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(on: RetryOn) -> RetryPolicy {
        RetryPolicy {
            retries: 3,
            first: Duration::from_millis(500),
            cap: Duration::from_secs(3),
            on,
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = policy(RetryOn::Overload);
        for retry in 1..=40 {
            let d = p.backoff(retry);
            assert!(d <= p.cap, "{d:?}");
            let base = Duration::from_millis(500).saturating_mul(1 << (retry - 1).min(16));
            assert!(d >= base.mul_f64(0.8).min(p.cap), "retry {retry}: {d:?}");
            assert!(d <= base.mul_f64(1.2), "retry {retry}: {d:?}");
        }
        let zero = RetryPolicy {
            first: Duration::ZERO,
            ..p
        };
        assert_eq!(zero.backoff(5), Duration::ZERO);
        assert_eq!(p.wait(1, Some(Duration::from_secs(60))), p.cap);
        assert_eq!(p.wait(1, Some(Duration::ZERO)), Duration::ZERO);
    }

    #[test]
    fn which_statuses_are_retried() {
        let gradio = policy(RetryOn::ServerErrors);
        let inference = policy(RetryOn::Overload);
        for s in [429, 500, 502, 503, 504] {
            assert!(gradio.retries_status(s), "{s}");
        }
        for s in [200, 400, 401, 404, 422] {
            assert!(
                !gradio.retries_status(s) && !inference.retries_status(s),
                "{s}"
            );
        }
        assert!(inference.retries_status(429) && inference.retries_status(503));
        assert!(!inference.retries_status(500) && !inference.retries_status(502));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let max = Duration::from_secs(30);
        assert_eq!(retry_after(Some("2"), max), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(Some(" 0.5 "), max),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after(Some("3600"), max), Some(max));
        assert_eq!(retry_after(Some("-1"), max), None);
        assert_eq!(retry_after(Some("NaN"), max), None);
        // In the past: retry now.
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), max),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2099 07:28:00 GMT"), max),
            Some(max)
        );
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(10));
        let wait = retry_after(Some(&soon), max).unwrap();
        assert!(
            wait > Duration::from_secs(8) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        // The obsolete RFC 850 form, which readers must accept.
        assert_eq!(
            retry_after(Some("Sunday, 06-Nov-94 08:49:37 GMT"), max),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(Some("tomorrow"), max), None);
        assert_eq!(retry_after(None, max), None);
    }
}
