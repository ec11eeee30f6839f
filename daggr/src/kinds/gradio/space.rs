//! Where a Gradio app lives: a Space id (`owner/name`) resolved through the Hub, or a URL.
//!
//! A Space id is resolved with `GET {hub}/api/spaces/{id}` (its `host`, its `sha`, the
//! revision that becomes part of the cache key, and its runtime stage), then
//! `GET {hub}/api/spaces/{id}/host`, and only then with the subdomain rule
//! (`Owner/My_Space` → `https://owner-my-space.hf.space`), which the Hub documents by
//! example rather than as a rule. The Hub is `$HF_ENDPOINT` (default
//! `https://huggingface.co`).
//!
//! The requests are here; reading a Space id or URL and the Hub's answers is
//! `crate::kinds::hf::hub`, shared with `cargo daggr codegen gradio`.

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::kinds::hf::hub::{host_answer, subdomain_url, unknown_space, SpaceInfo};
use crate::kinds::hf::{is_hf_host, HfToken};
use crate::kinds::http::retry::{RetryOn, RetryPolicy};
use crate::kinds::http::server_message;
// Defined with the rest of the shared reading (public as `daggr::hf::hub`); named here
// for the rest of the Gradio kind.
pub(crate) use crate::kinds::hf::hub::{default_hub, Target};

/// A resolved Space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResolvedSpace {
    /// The app's base URL.
    pub(crate) url: String,
    /// The Space repository's commit, when the Hub said.
    pub(crate) sha: Option<String>,
}

/// Resolves a Space id through the Hub. Waits (up to `wait`) while the Space builds.
/// Errors are plain messages; the caller wraps them with the node's name.
pub(crate) async fn resolve(
    http: &reqwest::Client,
    hub: &str,
    space_id: &str,
    token: Option<&HfToken>,
    wait: Duration,
) -> Result<ResolvedSpace, (Option<u16>, String)> {
    let started = Instant::now();
    let info_url = format!("{hub}/api/spaces/{space_id}");
    // A build takes minutes: ask again after 1 s, then less often, at most every 5 s.
    let poll = RetryPolicy {
        retries: u32::MAX,
        first: Duration::from_secs(1),
        cap: Duration::from_secs(5),
        on: RetryOn::ServerErrors,
    };
    let mut polls = 0;
    loop {
        let info = get_json(http, &info_url, token).await;
        match info {
            Ok(info) => {
                let info = SpaceInfo::from_json(&info);
                if let Some(reason) = info.unavailable() {
                    return Err((None, reason));
                }
                if info.is_starting() && started.elapsed() < wait {
                    polls += 1;
                    tokio::time::sleep(poll.backoff(polls)).await;
                    continue;
                }
                let host = match info.host {
                    Some(host) => Some(host),
                    None => host_lookup(http, hub, space_id, token).await,
                };
                let url = host.unwrap_or_else(|| subdomain_url(space_id));
                return Ok(ResolvedSpace { url, sha: info.sha });
            }
            Err((Some(status), message)) if status == 401 || status == 404 => {
                return Err((Some(status), unknown_space(token.is_some(), &message)));
            }
            Err(_) => {
                // The Hub is unreachable or odd: the `/host` route, then the subdomain rule.
                let url = host_lookup(http, hub, space_id, token)
                    .await
                    .unwrap_or_else(|| subdomain_url(space_id));
                return Ok(ResolvedSpace { url, sha: None });
            }
        }
    }
}

/// The Space's current commit, by one request to the Hub without waiting for a build;
/// `None` when the Hub cannot be asked or does not say.
pub(crate) async fn revision(
    http: &reqwest::Client,
    hub: &str,
    space_id: &str,
    token: Option<&HfToken>,
) -> Option<String> {
    let info = get_json(http, &format!("{hub}/api/spaces/{space_id}"), token)
        .await
        .ok()?;
    SpaceInfo::from_json(&info).sha
}

async fn host_lookup(
    http: &reqwest::Client,
    hub: &str,
    space_id: &str,
    token: Option<&HfToken>,
) -> Option<String> {
    let answer = get_json(http, &format!("{hub}/api/spaces/{space_id}/host"), token)
        .await
        .ok()?;
    host_answer(&answer)
}

async fn get_json(
    http: &reqwest::Client,
    url: &str,
    token: Option<&HfToken>,
) -> Result<Json, (Option<u16>, String)> {
    let mut request = http.get(url).timeout(Duration::from_secs(30));
    if let Some(token) = token.filter(|_| is_hf_host(url)) {
        request = request.bearer_auth(token.expose());
    }
    let response = request
        .send()
        .await
        .map_err(|e| (None, crate::node::event::error_chain(&e)))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| (None, e.to_string()))?;
    if !status.is_success() {
        return Err((Some(status.as_u16()), server_message(&bytes)));
    }
    serde_json::from_slice(&bytes).map_err(|e| (Some(status.as_u16()), format!("not JSON: {e}")))
}
