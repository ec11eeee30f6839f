//! Media inputs of the workflow API given by URL. An input of a media type
//! ([`Image`], [`Audio`], [`Video`], [`File`]) takes, besides the blob reference
//! `POST /api/blobs` answers, `{"url": …}` with an optional `mime` and `name`:
//!
//! - `data:<mime>;base64,<bytes>`: an upload inside the call (within the request's body
//!   limit; larger files go through `POST /api/blobs`);
//! - this server's blob route, `/api/blobs/<integrity>?mime=…` or the same URL with this
//!   server's host: bytes already stored here, such as an earlier call's output;
//! - an `http(s)` URL: fetched by the server with the crate's HTTP client (with the
//!   `gradio` or `inference` feature), at most the upload limit within [`FETCH_TIMEOUT`],
//!   from public addresses only unless the server allows private ones
//!   ([`LaunchOptions::fetch_private_urls`](super::LaunchOptions::fetch_private_urls)):
//!   otherwise a caller could read, through the server, what only the server can reach.
//!
//! Each becomes the blob reference the input's type decodes, its bytes in the cache. A URL
//! that cannot be read is a 400 naming the input.

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};

use super::http::{bad, clean_mime, ApiError};
use super::App;
use crate::value::media::{parse_integrity, Audio, File, Image, Video};
use crate::value::PortType;

/// How long fetching an http(s) URL may take, from connecting to the last byte.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The media kind of a port type (`image`, `audio`, `video`, `file`), if it is a media type.
pub(super) fn media_kind(ty: &PortType) -> Option<&'static str> {
    if ty.is::<Image>() {
        Some("image")
    } else if ty.is::<Audio>() {
        Some("audio")
    } else if ty.is::<Video>() {
        Some("video")
    } else if ty.is::<File>() {
        Some("file")
    } else {
        None
    }
}

/// A media input by URL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByUrl {
    url: String,
    #[serde(default)]
    mime: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// Bytes read from a URL.
struct Read {
    bytes: Vec<u8>,
    /// The type the URL or its server gave.
    mime: Option<String>,
    /// The file name the URL gave.
    name: Option<String>,
    /// Their integrity, when they are stored here already.
    stored: Option<String>,
}

/// Replaces each media input given as `{"url": …}` in `inputs` by the blob reference of the
/// bytes it names. `host` is the request's `Host`, which tells this server's own URLs.
pub(super) async fn resolve(
    app: &App,
    host: &str,
    inputs: &mut Map<String, Json>,
) -> Result<(), ApiError> {
    for input in app.template.call_inputs() {
        let Some(kind) = media_kind(&input.ty) else {
            continue;
        };
        let Some(value) = inputs.get_mut(&input.name) else {
            continue;
        };
        // A reference (`blob`) is decoded as it is, an output's `url` beside it included.
        let by_url = value
            .as_object()
            .is_some_and(|m| m.contains_key("url") && !m.contains_key("blob"));
        if !by_url {
            continue;
        }
        let name = &input.name;
        let given: ByUrl = serde_json::from_value(value.take())
            .map_err(|e| bad(format!("input `{name}` by URL: {e}")))?;
        let read = read(app, host, &given.url)
            .await
            .map_err(|e| bad(format!("input `{name}`: {e}")))?;
        let mime = given
            .mime
            .as_deref()
            .and_then(clean_mime)
            .map(str::to_string)
            .or(read.mime)
            .unwrap_or_else(|| "application/octet-stream".into());
        let size = read.bytes.len();
        let blob = match read.stored {
            Some(blob) => blob,
            None => {
                let cache = app.template.cache().clone();
                let bytes = read.bytes;
                tokio::task::spawn_blocking(move || cache.put_blob(&bytes))
                    .await
                    .map_err(|e| {
                        ApiError(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                    })??
            }
        };
        let mut reference = json!({ "kind": kind, "mime": mime, "size": size, "blob": blob });
        if let Some(file_name) = given.name.or(read.name) {
            reference["name"] = json!(file_name);
        }
        *value = reference;
    }
    Ok(())
}

/// The bytes `url` names.
async fn read(app: &App, host: &str, url: &str) -> Result<Read, String> {
    if let Some(data) = url.strip_prefix("data:") {
        return data_url(data, app.max_upload);
    }
    if let Some(route) = own_blob_route(url, host) {
        return own_blob(app, route).await;
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return fetch(url, app.max_upload, app.fetch_private_urls).await;
    }
    Err(format!(
        "`{}` is not a URL this server reads: use a `data:` URL, this server's /api/blobs/… route, or an http(s) URL",
        clip(url)
    ))
}

/// A URL cut for an error message (a data URL may be megabytes).
fn clip(url: &str) -> String {
    match url.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &url[..i]),
        None => url.to_string(),
    }
}

/// `<mime>[;param…][;base64],<data>` (after `data:`), as RFC 2397 has it.
fn data_url(rest: &str, limit: usize) -> Result<Read, String> {
    let (header, payload) = rest
        .split_once(',')
        .ok_or("a data: URL needs a `,` before its data")?;
    let (media_type, base64) = match header.strip_suffix(";base64") {
        Some(media_type) => (media_type, true),
        None => (header, false),
    };
    let bytes = if base64 {
        let text: String = payload
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("the data: URL's base64 is invalid: {e}"))?
    } else {
        percent_encoding::percent_decode_str(payload).collect()
    };
    if bytes.len() > limit {
        return Err(format!(
            "the data: URL holds {} bytes, more than the upload limit of {limit}",
            bytes.len()
        ));
    }
    if bytes.is_empty() {
        return Err("the data: URL holds no bytes".into());
    }
    Ok(Read {
        bytes,
        mime: clean_mime(media_type).map(str::to_string),
        name: None,
        stored: None,
    })
}

/// The part of `url` after `/api/blobs/` when it is this server's blob route: a path, or
/// an http(s) URL whose host is the one the request was sent to.
fn own_blob_route<'a>(url: &'a str, host: &str) -> Option<&'a str> {
    let path = if url.starts_with('/') {
        url
    } else {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))?;
        let (authority, path) = rest.split_at(rest.find('/')?);
        if host.is_empty() || !authority.eq_ignore_ascii_case(host) {
            return None;
        }
        path
    };
    path.strip_prefix("/api/blobs/")
}

/// A blob of this server, `<integrity>[?mime=…]`.
async fn own_blob(app: &App, route: &str) -> Result<Read, String> {
    let (integrity, query) = route.split_once('?').unwrap_or((route, ""));
    let integrity = percent_encoding::percent_decode_str(integrity)
        .decode_utf8_lossy()
        .into_owned();
    if parse_integrity(&integrity).is_none() {
        return Err(format!(
            "`{integrity}` is not a blob's integrity hash (sha256-…)"
        ));
    }
    let mime = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("mime="))
        .map(|m| percent_encoding::percent_decode_str(m).decode_utf8_lossy())
        .and_then(|m| clean_mime(&m).map(str::to_string));
    let cache = app.template.cache().clone();
    let wanted = integrity.clone();
    let bytes = tokio::task::spawn_blocking(move || cache.get_blob(&wanted))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| format!("no blob `{integrity}` is stored on this server"))?;
    Ok(Read {
        bytes,
        mime,
        name: None,
        stored: Some(integrity),
    })
}

/// Fetches an http(s) URL with the crate's HTTP client: a success status, at most `limit`
/// bytes, within [`FETCH_TIMEOUT`]; the type from the answer's `Content-Type`, else its
/// magic bytes, else the URL's extension.
#[cfg(any(feature = "gradio", feature = "inference"))]
async fn fetch(url: &str, limit: usize, private_ok: bool) -> Result<Read, String> {
    use crate::kinds::http::{client, public_only};
    let shown = clip(url);
    let parsed = url::Url::parse(url).map_err(|e| format!("`{shown}` is not a valid URL: {e}"))?;
    let client = if private_ok {
        client::shared()
    } else {
        public_only::check_literal(&parsed).map_err(|e| format!("fetching {shown}: {e}"))?;
        public_only::public_only()
    }
    .map_err(|e| e.to_string())?;
    let work = async {
        let mut response = client
            .get(parsed.clone())
            .send()
            .await
            .map_err(|e| format!("fetching {shown}: {}", crate::error::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("fetching {shown}: the server answered {status}"));
        }
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(format!(
                "fetching {shown}: the file is larger than the upload limit of {limit} bytes"
            ));
        }
        let header_mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(clean_mime)
            .map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("fetching {shown}: {}", crate::error::error_chain(&e)))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(format!(
                    "fetching {shown}: the file is larger than the upload limit of {limit} bytes"
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.is_empty() {
            return Err(format!("fetching {shown}: the answer is empty"));
        }
        Ok((bytes, header_mime))
    };
    let (bytes, header_mime) =
        tokio::time::timeout(FETCH_TIMEOUT, work)
            .await
            .map_err(|_| {
                format!(
                    "fetching {shown}: no complete answer within {} s",
                    FETCH_TIMEOUT.as_secs()
                )
            })??;
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|n| n.contains('.'))
        .map(|n| {
            percent_encoding::percent_decode_str(n)
                .decode_utf8_lossy()
                .into_owned()
        });
    // A server that labels everything `application/octet-stream` says nothing.
    let mime = header_mime
        .filter(|m| m != "application/octet-stream")
        .or_else(|| crate::value::media::sniff_mime(&bytes).map(str::to_string))
        .or_else(|| {
            name.as_deref()
                .and_then(|n| crate::value::media::guess_mime(std::path::Path::new(n)))
                .map(str::to_string)
        });
    Ok(Read {
        bytes,
        mime,
        name,
        stored: None,
    })
}

/// Without an HTTP client in the build, http(s) URLs are refused with what to do instead.
#[cfg(not(any(feature = "gradio", feature = "inference")))]
async fn fetch(url: &str, _limit: usize, _private_ok: bool) -> Result<Read, String> {
    Err(format!(
        "fetching `{}` needs daggr's `gradio` or `inference` feature (its HTTP client); send the bytes as a data: URL or through POST /api/blobs",
        clip(url)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_decode_base64_and_percent_encoding() {
        let read = data_url("image/png;base64,AQID", 100).unwrap();
        assert_eq!(read.bytes, [1, 2, 3]);
        assert_eq!(read.mime.as_deref(), Some("image/png"));
        let read = data_url("text/plain;charset=utf-8,a%20b", 100).unwrap();
        assert_eq!(read.bytes, b"a b");
        assert_eq!(read.mime.as_deref(), Some("text/plain"));
        assert_eq!(data_url(";base64,AQID", 100).unwrap().mime, None);
        assert!(data_url("image/png;base64,AQID", 2)
            .err()
            .unwrap()
            .contains("upload limit"));
        assert!(data_url("image/png;base64,!!", 100).is_err());
        assert!(data_url("image/png;base64", 100).is_err());
        assert!(data_url("image/png;base64,", 100).is_err());
    }

    #[test]
    fn own_blob_urls_are_told_by_path_or_host() {
        let host = "127.0.0.1:7860";
        assert_eq!(
            own_blob_route("/api/blobs/sha256-x?mime=a", host),
            Some("sha256-x?mime=a")
        );
        assert_eq!(
            own_blob_route("http://127.0.0.1:7860/api/blobs/sha256-x", host),
            Some("sha256-x")
        );
        assert_eq!(
            own_blob_route("http://127.0.0.1:7861/api/blobs/sha256-x", host),
            None
        );
        assert_eq!(own_blob_route("https://example.com/a.png", host), None);
        assert_eq!(own_blob_route("/elsewhere", host), None);
    }

    #[test]
    fn long_urls_are_clipped_in_messages() {
        let long = format!("data:{}", "A".repeat(1000));
        assert!(clip(&long).chars().count() <= 81);
        assert_eq!(clip("short"), "short");
    }
}
