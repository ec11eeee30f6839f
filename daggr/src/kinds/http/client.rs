//! The one way the remote node kinds build a `reqwest::Client`: daggr's user agent, its
//! connect timeout, and the redirect policy the credential rules need.
//!
//! A user may hand a node a client of their own (a proxy, a custom CA); each kind says
//! where it uses it. What never goes through a user's client is a request whose secret a
//! redirect could carry off: the HF token in `X-HF-Authorization` (reqwest drops
//! `Authorization` and `Cookie` when a redirect leaves the host, not that header) and a
//! login form (re-posted by a 307). Those go through a client built here, whose redirect
//! policy is ours.

use std::sync::OnceLock;
use std::time::Duration;

use crate::kinds::hf::is_hf_host;

/// The `User-Agent` of every request daggr builds a client for.
pub(crate) const USER_AGENT: &str = concat!("daggr/", env!("CARGO_PKG_VERSION"));

/// How long connecting may take. A Space that wakes up answers through the Hub's proxy,
/// which accepts the connection at once, so this bounds only unreachable hosts.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most redirects followed in a row (reqwest's own default).
const MAX_REDIRECTS: usize = 10;

/// Which redirects a client follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Redirects {
    /// Up to 10, as reqwest does (it drops `Authorization` and `Cookie` off-host itself).
    Follow,
    /// Up to 10, but none from a Hugging Face host to another host: such a redirect is an
    /// error, so a token in `X-HF-Authorization` never leaves Hugging Face.
    KeepTokenOnHf,
    /// None: the caller reads the 3xx (a login form must not be re-posted elsewhere).
    None,
}

/// A client could not be built (reqwest could not set up TLS, say).
#[derive(Debug, thiserror::Error)]
#[error("cannot build an HTTP client: {0}")]
pub(crate) struct ClientError(#[source] pub reqwest::Error);

/// A client with daggr's user agent, connect timeout and the given redirect policy;
/// `read_timeout` bounds each wait for data on a response (streams included).
pub(crate) fn build(
    redirects: Redirects,
    read_timeout: Option<Duration>,
) -> Result<reqwest::Client, ClientError> {
    let mut builder = base().redirect(policy(redirects));
    if let Some(t) = read_timeout {
        builder = builder.read_timeout(t);
    }
    builder.build().map_err(ClientError)
}

/// What every client daggr builds starts from: its user agent and connect timeout.
pub(crate) fn base() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
}

/// Sends `request` from daggr's own HTTP runtime, where the client's connections then live.
///
/// A pooled connection belongs to the runtime that opened it and dies with it. Clients are
/// shared (one per app, by every pipeline of the process), and pipelines may run on
/// several runtimes (two `#[tokio::test]`s, a program with a runtime per job): a request
/// sent on a connection whose runtime ended fails ("dispatch task is gone"), or breaks
/// while its answer streams in. Connections opened on a runtime that lives as long as the
/// process do not. The caller awaits the answer and reads its body on its own runtime;
/// dropping the future aborts the request.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    /// Aborts the spawned request when the caller stops waiting (cancellation).
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let task = io_runtime().spawn(request.send());
    let _abort = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(answer) => answer,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The runtime HTTP connections live on: a current-thread runtime driven by a thread of
/// its own (the requests are I/O), started when first needed, for the rest of the process.
fn io_runtime() -> &'static tokio::runtime::Handle {
    static IO: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    IO.get_or_init(|| {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("daggr-http".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime can be built");
                let _ = handle_tx.send(runtime.handle().clone());
                runtime.block_on(std::future::pending::<()>());
            })
            .expect("a thread can be started");
        handle_rx
            .recv()
            .expect("the HTTP runtime's thread sends its handle")
    })
}

/// The client for requests with no timeout or policy of their own (Hub look-ups, a local
/// app's readiness): built once, so its connection pool is shared.
pub(crate) fn shared() -> Result<reqwest::Client, ClientError> {
    static SHARED: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = SHARED.get() {
        return Ok(c.clone());
    }
    let client = build(Redirects::Follow, None)?;
    Ok(SHARED.get_or_init(|| client).clone())
}

fn policy(redirects: Redirects) -> reqwest::redirect::Policy {
    match redirects {
        Redirects::Follow => reqwest::redirect::Policy::limited(MAX_REDIRECTS),
        Redirects::None => reqwest::redirect::Policy::none(),
        Redirects::KeepTokenOnHf => reqwest::redirect::Policy::custom(|attempt| {
            let previous: Vec<&str> = attempt.previous().iter().map(|u| u.as_str()).collect();
            if redirect_leaves_hf(&previous, attempt.url().as_str()) {
                let target = attempt.url().to_string();
                attempt.error(format!(
                    "a Hugging Face host redirected to {target}; not followed, so the HF token is not sent there"
                ))
            } else if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }),
    }
}

/// Whether a redirect to `next`, after `previous` (the first request included), would carry
/// a token given to a Hugging Face host to another host.
pub(crate) fn redirect_leaves_hf(previous: &[&str], next: &str) -> bool {
    previous.iter().any(|u| is_hf_host(u)) && !is_hf_host(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_never_carry_the_token_off_hugging_face() {
        let space = "https://owner-app.hf.space/gradio_api/file=x";
        assert!(redirect_leaves_hf(&[space], "https://evil.example/x"));
        assert!(
            redirect_leaves_hf(&[space], "http://owner-app.hf.space/x"),
            "not https"
        );
        assert!(!redirect_leaves_hf(&[space], "https://other.hf.space/x"));
        assert!(!redirect_leaves_hf(&[space], "https://huggingface.co/x"));
        // No Hugging Face host on the way: no token was attached, any redirect is fine.
        assert!(!redirect_leaves_hf(
            &["http://127.0.0.1:7860/x"],
            "https://a.example/"
        ));
    }

    #[test]
    fn clients_build_and_the_shared_one_is_shared() {
        for r in [Redirects::Follow, Redirects::KeepTokenOnHf, Redirects::None] {
            build(r, Some(Duration::from_secs(1))).unwrap();
        }
        shared().unwrap();
        assert!(USER_AGENT.starts_with("daggr/"));
    }
}
