//! Where a Hugging Face or Gradio app lives, and where the token may go, as pure
//! functions: a [`Target`] (a Space id, a Space page URL or an app URL), the Hub
//! ([`DEFAULT_HUB`], [`default_hub`]), what the Hub says of a Space ([`SpaceInfo`],
//! [`host_answer`], [`unknown_space`]) and, when it says nothing, the subdomain rule
//! ([`subdomain_url`]); the hosts the token may be sent to ([`is_hf_host`],
//! [`is_space_host`]). `GradioNode`, the inference nodes and `cargo daggr codegen gradio`
//! all read a Space id and the Hub's answers through this one copy.

use serde_json::Value as Json;

/// The default Hub.
pub const DEFAULT_HUB: &str = "https://huggingface.co";
/// Environment variable overriding the Hub URL (as `huggingface_hub` reads it).
pub const HUB_ENV: &str = "HF_ENDPOINT";

/// The Hub URL: `$HF_ENDPOINT` or [`DEFAULT_HUB`], without a trailing slash (routes are
/// appended to it).
pub fn default_hub() -> String {
    std::env::var(HUB_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_HUB.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// Where a Gradio app lives: a Space on the Hub or an app at a URL.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Target {
    /// A Hugging Face Space, `owner/name`.
    Space(String),
    /// A Gradio app at this base URL (no query, fragment or trailing slash).
    Url(String),
}

impl Target {
    /// Parses `owner/name`, `spaces/owner/name`, a Space page URL
    /// (`https://huggingface.co/spaces/owner/name`) or an `http(s)://` URL; anything else
    /// is an error message.
    ///
    /// A URL is written as the `url` crate (WHATWG rules) writes it: host lowercase, no
    /// default port, `.` and `..` resolved, no query, fragment or trailing slash
    /// (`HTTP://` and other spellings of the scheme are not URLs here). The runtime
    /// parsed URLs with that crate before this module existed, and the URL is part of
    /// node cache keys: the same app keeps giving the same string.
    pub fn parse(src: &str) -> Result<Target, String> {
        let src = src.trim();
        // A Space page URL names the Space: resolve it like an id, not as an app URL.
        let id = src
            .strip_prefix(DEFAULT_HUB)
            .and_then(|rest| rest.strip_prefix("/spaces/"))
            .or_else(|| src.strip_prefix("spaces/"))
            .map(|id| id.trim_end_matches('/'));
        if id.is_none() && (src.starts_with("http://") || src.starts_with("https://")) {
            return app_url(src).map(Target::Url);
        }
        let id = id.unwrap_or(src);
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let parts: Vec<&str> = id.split('/').collect();
        if parts.len() == 2 && parts.iter().all(|p| valid(p)) {
            Ok(Target::Space(id.to_string()))
        } else {
            Err(format!(
                "`{id}` is neither a Space id (`owner/name`) nor an http(s) URL"
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

    /// The stable part of a cache key: the Space id or the URL.
    pub fn key(&self) -> &str {
        match self {
            Target::Space(id) | Target::Url(id) => id,
        }
    }
}

/// `src`, an `http://` or `https://` URL, as an app's base URL: parsed by the `url` crate
/// (WHATWG rules, the parser reqwest sends requests with, so the string names the host the
/// request really goes to), then without query, fragment or trailing slash, since routes
/// are appended to it.
fn app_url(src: &str) -> Result<String, String> {
    let url = url::Url::parse(src).map_err(|e| match e {
        url::ParseError::EmptyHost => format!("`{src}` has no host"),
        e => format!("`{src}` is not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{src}` is not an http(s) URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{src}` has no host"));
    }
    let mut s = url.to_string();
    if let Some(i) = s.find(['?', '#']) {
        s.truncate(i);
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// The `*.hf.space` URL the subdomain rule gives for a Space id (`Owner/My_Space` →
/// `https://owner-my-space.hf.space`): a fallback only, as the Hub documents the rule by
/// example rather than as a rule.
pub fn subdomain_url(space_id: &str) -> String {
    let sub: String = space_id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if matches!(c, '/' | '_' | '.') { '-' } else { c })
        .collect();
    format!("https://{sub}.hf.space")
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

/// What the Hub's answer to `GET {hub}/api/spaces/{id}` says about a Space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpaceInfo {
    /// The app's base URL (no trailing slash), when the Hub gives it.
    pub host: Option<String>,
    /// The Space repository's commit, when the Hub gives it.
    pub sha: Option<String>,
    /// Its runtime stage (`RUNNING`, `BUILDING`, `PAUSED`, …); empty when not given.
    pub stage: String,
}

impl SpaceInfo {
    /// Reads the Hub's answer; missing fields are `None` or empty.
    pub fn from_json(info: &Json) -> SpaceInfo {
        let text = |pointer: &str| info.pointer(pointer).and_then(Json::as_str);
        SpaceInfo {
            host: text("/host").map(|h| h.trim_end_matches('/').to_string()),
            sha: text("/sha").map(str::to_string),
            stage: text("/runtime/stage").unwrap_or("").to_string(),
        }
    }

    /// Why the Space cannot answer, when its stage is one in which it cannot (stopped,
    /// paused, broken).
    pub fn unavailable(&self) -> Option<String> {
        DEAD_STAGES.contains(&self.stage.as_str()).then(|| {
            format!(
                "the Space is {} on the Hub, so it cannot answer",
                self.stage
            )
        })
    }

    /// Whether the Space is building or starting: it may answer if one waits.
    pub fn is_starting(&self) -> bool {
        matches!(self.stage.as_str(), "BUILDING" | "APP_STARTING")
    }
}

/// The base URL in the Hub's answer to `GET {hub}/api/spaces/{id}/host`: its `host`, else
/// its `subdomain` on `hf.space`.
pub fn host_answer(answer: &Json) -> Option<String> {
    answer
        .get("host")
        .and_then(Json::as_str)
        .map(|h| h.trim_end_matches('/').to_string())
        .or_else(|| {
            answer
                .get("subdomain")
                .and_then(Json::as_str)
                .map(|s| format!("https://{s}.hf.space"))
        })
}

/// The error for a Space the Hub answers 401 or 404 about; `message` is what it said.
/// With a token the Space may exist but be hidden from it; without, it may be private.
pub fn unknown_space(has_token: bool, message: &str) -> String {
    let hint = if has_token {
        "it does not exist, or this token cannot see it"
    } else {
        "it does not exist, or it is private (set HF_TOKEN)"
    };
    format!("the Hub does not know this Space: {hint} ({message})")
}

/// The host of an `https://` URL as the HTTP client will read it (the `url` crate: a
/// backslash is a slash, a userinfo is not the host, case and percent-encoding are
/// normalised), so `https://evil.example\\.hf.space` and `https://huggingface.co@evil.example`
/// are on `evil.example`; `None` for plain http, no host, or a URL carrying a userinfo
/// (nothing legitimate sends the token that way).
fn https_host(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    url.host_str().map(str::to_string)
}

/// Whether `url` is on a Hugging Face host (`huggingface.co` and its subdomains, `hf.co`,
/// `*.hf.space`) over https: the only places the Hugging Face token may be sent.
pub fn is_hf_host(url: &str) -> bool {
    https_host(url).is_some_and(|host| {
        host == "huggingface.co"
            || host.ends_with(".huggingface.co")
            || host == "hf.co"
            || host.ends_with(".hf.space")
    })
}

/// Whether `url` is on a Space's own host (`https://*.hf.space`). The token goes there in
/// `X-HF-Authorization`, as gradio_client sends it: the Hub's proxy reads that header and
/// the Space's code never sees the token.
pub fn is_space_host(url: &str) -> bool {
    https_host(url).is_some_and(|host| host.ends_with(".hf.space"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space(id: &str) -> Result<Target, String> {
        Ok(Target::Space(id.into()))
    }

    fn url(url: &str) -> Result<Target, String> {
        Ok(Target::Url(url.into()))
    }

    #[test]
    fn space_ids_and_urls_parse() {
        for (src, parsed) in [
            ("abidlabs/en2fr", space("abidlabs/en2fr")),
            ("  a_b/c.d-e  ", space("a_b/c.d-e")),
            ("spaces/a/b", space("a/b")),
            ("https://huggingface.co/spaces/a/b", space("a/b")),
            ("https://huggingface.co/spaces/a/b/", space("a/b")),
            ("http://127.0.0.1:7860/", url("http://127.0.0.1:7860")),
            (
                "http://127.0.0.1:7860/?view=api",
                url("http://127.0.0.1:7860"),
            ),
            ("https://x.hf.space/?view=api", url("https://x.hf.space")),
            ("https://x.hf.space#top", url("https://x.hf.space")),
            ("https://x.hf.space/app//", url("https://x.hf.space/app")),
            // A URL that is not a Space page is an app, even on the Hub's host.
            (
                "https://huggingface.co/api/spaces/a/b",
                url("https://huggingface.co/api/spaces/a/b"),
            ),
        ] {
            assert_eq!(Target::parse(src), parsed, "{src}");
        }
        // `HTTP://x` too: a URL's scheme is read in lowercase only, as it always was.
        for bad in [
            "just-a-name",
            "a/b/c",
            "a b/c",
            "/b",
            "a/",
            "spaces/a",
            "",
            "HTTP://x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Target::parse("https://huggingface.co/spaces/a/b/c"),
            Err("`a/b/c` is neither a Space id (`owner/name`) nor an http(s) URL".into())
        );
    }

    /// The URL is part of cache keys: these are the strings the `url` crate (2.5) writes,
    /// pinned so that a change of its rules shows here rather than as silent cache misses.
    #[test]
    fn urls_are_written_as_the_url_crate_writes_them() {
        for (src, written) in [
            (
                "http://Example.COM:8080/Path",
                Some("http://example.com:8080/Path"),
            ),
            ("http://example.com:80/", Some("http://example.com")),
            (
                "https://example.com:443/app",
                Some("https://example.com/app"),
            ),
            ("https://example.com:80", Some("https://example.com:80")),
            ("http://example.com:0080", Some("http://example.com")),
            ("http://example.com:/", Some("http://example.com")),
            ("http://h/a/./b/../c", Some("http://h/a/c")),
            ("http://h/a/..", Some("http://h")),
            ("http://h/a/%2E%2e/b/%2e/c", Some("http://h/b/c")),
            ("http://h/%41%2e/x", Some("http://h/%41%2e/x")),
            ("http://h/a//b", Some("http://h/a//b")),
            (
                "http://h/a\"<>`{}|^",
                Some("http://h/a%22%3C%3E%60%7B%7D|^"),
            ),
            ("http://h/a b/\u{e9}", Some("http://h/a%20b/%C3%A9")),
            ("http:///h/x", Some("http://h/x")),
            ("http://h/\tx\n", Some("http://h/x")),
            ("http://h\\x", Some("http://h/x")),
            ("http://user:pw@h/", Some("http://user:pw@h")),
            ("http://user:@h/", Some("http://user@h")),
            ("http://@h/", Some("http://h")),
            ("http://[::1]:7860/", Some("http://[::1]:7860")),
            ("http://[::1]:80/", Some("http://[::1]")),
            ("http://[0:0:0:0:0:0:0:1]/", Some("http://[::1]")),
            ("http://[::ABCD]/", Some("http://[::abcd]")),
        ] {
            match written {
                Some(w) => assert_eq!(Target::parse(src), url(w), "{src}"),
                None => assert!(Target::parse(src).is_err(), "{src}"),
            }
        }
        for (bad, error) in [
            ("http://", "`http://` has no host"),
            ("https://", "`https://` has no host"),
            ("http://?x", "`http://?x` has no host"),
            ("http://:7860", "`http://:7860` has no host"),
            (
                "http://h:x/",
                "`http://h:x/` is not a URL: invalid port number",
            ),
            (
                "http://h:65536/",
                "`http://h:65536/` is not a URL: invalid port number",
            ),
            (
                "http://a b/",
                "`http://a b/` is not a URL: invalid international domain name",
            ),
            (
                "http://a|b/",
                "`http://a|b/` is not a URL: invalid international domain name",
            ),
            (
                "http://[::1/",
                "`http://[::1/` is not a URL: invalid IPv6 address",
            ),
            (
                "http://[zz]/",
                "`http://[zz]/` is not a URL: invalid IPv6 address",
            ),
            (
                "http://[::1]x/",
                "`http://[::1]x/` is not a URL: invalid IPv6 address",
            ),
        ] {
            assert_eq!(Target::parse(bad), Err(error.to_string()), "{bad}");
        }
    }

    #[test]
    fn targets_describe_themselves() {
        let s = Target::parse("a/b").unwrap();
        assert_eq!((s.describe().as_str(), s.key()), ("Space a/b", "a/b"));
        let u = Target::parse("http://h:1/").unwrap();
        assert_eq!(
            (u.describe().as_str(), u.key()),
            ("Gradio app at http://h:1", "http://h:1")
        );
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"kind": "space", "id": "a/b"})
        );
    }

    #[test]
    fn the_subdomain_rule_matches_the_documented_examples() {
        assert_eq!(
            subdomain_url("NimaBoscarino/hotdog-gradio"),
            "https://nimaboscarino-hotdog-gradio.hf.space"
        );
        assert_eq!(subdomain_url("a_b/c.d"), "https://a-b-c-d.hf.space");
    }

    #[test]
    fn the_hub_describes_spaces() {
        let info = SpaceInfo::from_json(&json!({
            "id": "a/b", "sha": "abc", "host": "https://a-b.hf.space/",
            "runtime": {"stage": "RUNNING"}
        }));
        assert_eq!(
            info,
            SpaceInfo {
                host: Some("https://a-b.hf.space".into()),
                sha: Some("abc".into()),
                stage: "RUNNING".into(),
            }
        );
        assert_eq!(info.unavailable(), None);
        assert!(!info.is_starting());
        let paused = SpaceInfo::from_json(&json!({"runtime": {"stage": "PAUSED"}}));
        assert_eq!(
            paused.unavailable().as_deref(),
            Some("the Space is PAUSED on the Hub, so it cannot answer")
        );
        assert!(SpaceInfo::from_json(&json!({"runtime": {"stage": "BUILDING"}})).is_starting());
        assert_eq!(SpaceInfo::from_json(&json!(null)), SpaceInfo::default());

        assert_eq!(
            host_answer(&json!({"host": "https://x.hf.space/"})).as_deref(),
            Some("https://x.hf.space")
        );
        assert_eq!(
            host_answer(&json!({"subdomain": "x"})).as_deref(),
            Some("https://x.hf.space")
        );
        assert_eq!(host_answer(&json!({})), None);
        assert_eq!(
            unknown_space(false, "Not Found"),
            "the Hub does not know this Space: it does not exist, or it is private (set HF_TOKEN) (Not Found)"
        );
        assert!(unknown_space(true, "x").contains("this token cannot see it"));
    }

    #[test]
    fn only_hugging_face_hosts_qualify() {
        for url in [
            "https://huggingface.co/api/spaces/a/b",
            "https://router.huggingface.co/v1/chat/completions",
            "https://abidlabs-en2fr.hf.space/config",
            "https://HuggingFace.co:443/x",
            "https://hf.co/x",
        ] {
            assert!(is_hf_host(url), "{url}");
        }
        for url in [
            "http://huggingface.co/", // plain http never carries the token
            "https://huggingface.co.evil.example/",
            "https://huggingface.co@evil.example/",
            "https://evil.example\\@huggingface.co/",
            "https://evil.example\\.hf.space/",
            "https://127.0.0.1:7860/",
            "http://127.0.0.1:7860/config",
            "https://evilhf.space/",
            "https://",
            "huggingface.co",
        ] {
            assert!(!is_hf_host(url), "{url}");
        }
        assert!(is_space_host("https://abidlabs-en2fr.hf.space/config"));
        assert!(!is_space_host("https://huggingface.co/api"));
        assert!(!is_space_host("http://a-b.hf.space/"));
    }
}
