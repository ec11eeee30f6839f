//! Where a Gradio app lives: a Space id (`owner/name`) resolved through the Hub, or a URL.
//!
//! A Space id is resolved with `GET {hub}/api/spaces/{id}` (its `host`, its `sha`, the
//! revision that becomes part of the cache key, and its runtime stage), then
//! `GET {hub}/api/spaces/{id}/host`, and only then with the subdomain rule
//! (`Owner/My_Space` → `https://owner-my-space.hf.space`), which the Hub documents by
//! example rather than as a rule. The Hub is `$HF_ENDPOINT` (default
//! `https://huggingface.co`).

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::hf::{is_hf_host, HfToken};

/// The default Hub.
pub const DEFAULT_HUB: &str = "https://huggingface.co";
/// Environment variable overriding the Hub URL (as `huggingface_hub` reads it).
pub const HUB_ENV: &str = "HF_ENDPOINT";

/// What a [`super::GradioNode`] calls: a Space on the Hub or an app at a URL.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Target {
    /// A Hugging Face Space, `owner/name`.
    Space(String),
    /// A Gradio app at this base URL (no trailing slash).
    Url(String),
}

impl Target {
    /// Parses `owner/name` or an `http(s)://` URL; anything else is an error message.
    pub fn parse(src: &str) -> Result<Target, String> {
        let src = src.trim();
        // A Space page URL names the Space: resolve it like an id, not as an app URL.
        let src = src
            .strip_prefix("https://huggingface.co/spaces/")
            .map(|s| s.trim_end_matches('/'))
            .unwrap_or(src);
        if src.starts_with("http://") || src.starts_with("https://") {
            let url = reqwest::Url::parse(src).map_err(|e| format!("`{src}` is not a URL: {e}"))?;
            if url.host_str().is_none() {
                return Err(format!("`{src}` has no host"));
            }
            let mut s = url.to_string();
            // Drop a query or fragment and the trailing slash: routes are appended to it.
            if let Some(i) = s.find(['?', '#']) {
                s.truncate(i);
            }
            return Ok(Target::Url(s.trim_end_matches('/').to_string()));
        }
        let src = src
            .strip_prefix("spaces/")
            .or_else(|| src.strip_prefix("https://huggingface.co/spaces/"))
            .unwrap_or(src);
        let parts: Vec<&str> = src.split('/').collect();
        let valid = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if parts.len() == 2 && parts.iter().all(|p| valid(p)) {
            Ok(Target::Space(src.to_string()))
        } else {
            Err(format!(
                "`{src}` is neither a Space id (`owner/name`) nor an http(s) URL"
            ))
        }
    }

    /// How errors name it: `Space owner/name` or `Gradio app at URL`.
    pub fn describe(&self) -> String {
        match self {
            Target::Space(id) => format!("Space {id}"),
            Target::Url(url) => format!("Gradio app at {url}"),
        }
    }

    /// The stable part of the cache key: the Space id or the URL.
    pub fn key(&self) -> &str {
        match self {
            Target::Space(id) | Target::Url(id) => id,
        }
    }
}

/// The `*.hf.space` URL the subdomain rule gives for a Space id (a fallback only).
pub fn subdomain_url(space_id: &str) -> String {
    let sub: String = space_id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if matches!(c, '/' | '_' | '.') { '-' } else { c })
        .collect();
    format!("https://{sub}.hf.space")
}

/// The Hub URL: `$HF_ENDPOINT` or `https://huggingface.co`.
pub fn default_hub() -> String {
    std::env::var(HUB_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_HUB.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// A resolved Space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedSpace {
    /// The app's base URL.
    pub url: String,
    /// The Space repository's commit, when the Hub said.
    pub sha: Option<String>,
}

/// Runtime stages in which a Space cannot answer; gradio_client refuses them too.
const DEAD_STAGES: &[&str] = &[
    "NO_APP_FILE",
    "CONFIG_ERROR",
    "BUILD_ERROR",
    "RUNTIME_ERROR",
    "PAUSED",
    "STOPPED",
    "DELETING",
];

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
    loop {
        let info = get_json(http, &info_url, token).await;
        match info {
            Ok(info) => {
                let sha = info.get("sha").and_then(Json::as_str).map(str::to_string);
                let stage = info
                    .pointer("/runtime/stage")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_string();
                if DEAD_STAGES.contains(&stage.as_str()) {
                    return Err((
                        None,
                        format!("the Space is {stage} on the Hub, so it cannot answer"),
                    ));
                }
                if matches!(stage.as_str(), "BUILDING" | "APP_STARTING") && started.elapsed() < wait
                {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
                let host = match info.get("host").and_then(Json::as_str) {
                    Some(h) => Some(h.to_string()),
                    None => host_lookup(http, hub, space_id, token).await,
                };
                let url = host
                    .map(|h| h.trim_end_matches('/').to_string())
                    .unwrap_or_else(|| subdomain_url(space_id));
                return Ok(ResolvedSpace { url, sha });
            }
            Err((Some(status), message)) if status == 401 || status == 404 => {
                let hint = if token.is_some() {
                    "it does not exist, or this token cannot see it"
                } else {
                    "it does not exist, or it is private (set HF_TOKEN)"
                };
                return Err((
                    Some(status),
                    format!("the Hub does not know this Space: {hint} ({message})"),
                ));
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
    info.get("sha").and_then(Json::as_str).map(str::to_string)
}

async fn host_lookup(
    http: &reqwest::Client,
    hub: &str,
    space_id: &str,
    token: Option<&HfToken>,
) -> Option<String> {
    let j = get_json(http, &format!("{hub}/api/spaces/{space_id}/host"), token)
        .await
        .ok()?;
    j.get("host")
        .and_then(Json::as_str)
        .map(|h| h.trim_end_matches('/').to_string())
        .or_else(|| {
            j.get("subdomain")
                .and_then(Json::as_str)
                .map(|s| format!("https://{s}.hf.space"))
        })
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
        .map_err(|e| (None, crate::event::error_chain(&e)))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| (None, e.to_string()))?;
    if !status.is_success() {
        return Err((Some(status.as_u16()), super::client::server_message(&bytes)));
    }
    serde_json::from_slice(&bytes).map_err(|e| (Some(status.as_u16()), format!("not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_ids_and_urls_parse() {
        assert_eq!(
            Target::parse("abidlabs/en2fr"),
            Ok(Target::Space("abidlabs/en2fr".into()))
        );
        assert_eq!(
            Target::parse("https://huggingface.co/spaces/a/b"),
            Ok(Target::Space("a/b".into()))
        );
        assert_eq!(
            Target::parse("http://127.0.0.1:7860/"),
            Ok(Target::Url("http://127.0.0.1:7860".into()))
        );
        assert_eq!(
            Target::parse("https://x.hf.space/?view=api"),
            Ok(Target::Url("https://x.hf.space".into()))
        );
        assert!(Target::parse("just-a-name").is_err());
        assert!(Target::parse("a/b/c").is_err());
        assert!(Target::parse("a b/c").is_err());
    }

    #[test]
    fn the_subdomain_rule_matches_the_documented_examples() {
        assert_eq!(
            subdomain_url("NimaBoscarino/hotdog-gradio"),
            "https://nimaboscarino-hotdog-gradio.hf.space"
        );
        assert_eq!(subdomain_url("a_b/c.d"), "https://a-b-c-d.hf.space");
    }
}
