//! Sending one request: the token rule, retries with backoff on 429 and 503 (honouring
//! `Retry-After`), timeouts, cancellation, and turning every failure into one
//! [`Error::Remote`] that names node, model, provider, status and the server's message.

use std::time::Duration;

use serde_json::Value as Json;

use super::errors::error_message;
use super::sse::read_stream;
use super::tasks::{self, bad_shape, Answer, Body, Request};
use super::{Settings, Task};
use crate::kinds::hf::is_hf_host;
use crate::kinds::http::retry::{retry_after, sleep_unless, RetryOn, RetryPolicy};
use crate::node::NodeContext;
use crate::value::media::Image;
use crate::value::Value;
use crate::Error;

/// Whether the environment's HF token may go to `url`: Hugging Face hosts (the router
/// included) and dedicated Inference Endpoints (`https://*.endpoints.huggingface.cloud`).
pub(crate) fn may_receive_hf_token(url: &str) -> bool {
    if is_hf_host(url) {
        return true;
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = authority
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    host.ends_with(".endpoints.huggingface.cloud")
}

/// The token that goes with a request to `url`, if any: an explicitly configured one goes
/// to the configured host whatever it is; the environment's only to Hugging Face hosts.
fn token_for<'a>(s: &'a Settings, url: &str) -> Option<&'a str> {
    let token = s.token.as_ref()?;
    (s.token_explicit || may_receive_hf_token(url)).then(|| token.expose())
}

/// The path of a URL, for error messages (`/v1/chat/completions`).
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(i) => rest[i..].to_string(),
        None => "/".into(),
    }
}

/// The node's retry policy: 429, 503 and connection failures, from 0.5 s doubling.
fn retry_policy(s: &Settings) -> RetryPolicy {
    RetryPolicy {
        retries: s.retries,
        first: Duration::from_millis(500),
        cap: s.max_retry_wait,
        on: RetryOn::Overload,
    }
}

/// A failed response, read.
struct Failure {
    status: u16,
    message: String,
    /// What the server asked us to wait (`Retry-After`, or hf-inference's
    /// `estimated_time` while a model loads).
    wait: Option<Duration>,
}

async fn read_failure(s: &Settings, response: reqwest::Response) -> Failure {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    let body = response.bytes().await.unwrap_or_default();
    let mut message = error_message(header("x-error-message"), &body);
    if let Some(id) = header("x-request-id") {
        message = format!("{message} (request id {id})");
    }
    let estimated = serde_json::from_slice::<Json>(&body)
        .ok()
        .and_then(|j| j["estimated_time"].as_f64())
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|t| Duration::from_secs_f64(t).min(s.max_retry_wait));
    Failure {
        status,
        message,
        wait: retry_after(header("retry-after"), s.max_retry_wait).or(estimated),
    }
}

fn request_builder(
    s: &Settings,
    http: &reqwest::Client,
    request: &Request,
) -> Result<reqwest::RequestBuilder, String> {
    let mut builder = http
        .post(&request.url)
        .header("accept", request.accept)
        // Set here too, so a caller's own client still names daggr.
        .header("user-agent", crate::kinds::http::client::USER_AGENT);
    for (name, value) in &request.headers {
        builder = builder.header(*name, *value);
    }
    if let Some(token) = token_for(s, &request.url) {
        builder = builder.bearer_auth(token);
        if let Some(org) = &s.bill_to {
            builder = builder.header("x-hf-bill-to", org.as_str());
        }
    }
    Ok(match &request.body {
        Body::Json(json) => builder.json(json),
        Body::Bytes(bytes, mime) => builder
            .header("content-type", mime.as_str())
            .body(bytes.clone()),
        Body::Multipart {
            bytes,
            mime,
            file_name,
            fields,
        } => {
            let part = reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(file_name.clone())
                .mime_str(mime)
                .map_err(|e| format!("the audio's MIME type `{mime}`: {e}"))?;
            let mut form = reqwest::multipart::Form::new().part("file", part);
            for (k, v) in fields {
                form = form.text(k.clone(), v.clone());
            }
            builder.multipart(form)
        }
    })
}

/// The message of a failed request. Servers without vision support answer a request
/// with image parts with messages that do not mention images (llama-cpp-python with a
/// text-only model: HTTP 500 `can only concatenate str (not "list") to str`), so the
/// message says that the request carried images.
fn failed(request: &Request, f: Failure) -> String {
    if request.has_images {
        format!(
            "{} (the request carried images: does this model and server accept image input?)",
            f.message
        )
    } else {
        f.message
    }
}

/// Describes a transport error without credentials (reqwest's messages carry the URL only).
fn transport_error(s: &Settings, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!(
            "timed out (no answer within the read timeout of {:?})",
            s.read_timeout
        )
    } else if e.is_connect() {
        format!("cannot connect: {}", crate::node::event::error_chain(e))
    } else {
        crate::node::event::error_chain(e)
    }
}

/// Calls the endpoint for one set of inputs (one value per input port) and returns the
/// parsed answer.
pub(crate) async fn call(
    s: &Settings,
    ctx: &NodeContext,
    inputs: &[Value],
) -> Result<Answer, Error> {
    let request = tasks::build(s, inputs)?;
    let endpoint = path_of(&request.url);
    let http = s.http().map_err(|e| s.remote(&endpoint, None, e))?;
    let policy = retry_policy(s);
    let mut retry = 0;
    let response = loop {
        let builder =
            request_builder(s, &http, &request).map_err(|e| s.remote(&endpoint, None, e))?;
        let sent = tokio::select! {
            r = builder.send() => r,
            _ = ctx.cancelled() => return Err(Error::Cancelled { node: s.node.clone() }),
        };
        let (why, wait) = match sent {
            Ok(r) if r.status().is_success() => break r,
            Ok(r) if policy.retries_status(r.status().as_u16()) => {
                let f = read_failure(s, r).await;
                if retry >= policy.retries {
                    return Err(s.remote(&endpoint, Some(f.status), failed(&request, f)));
                }
                (format!("HTTP {}: {}", f.status, f.message), f.wait)
            }
            Ok(r) => {
                let f = read_failure(s, r).await;
                return Err(s.remote(&endpoint, Some(f.status), failed(&request, f)));
            }
            Err(e) if policy.retries_error(&e) && retry < policy.retries => {
                (transport_error(s, &e), None)
            }
            Err(e) => return Err(s.remote(&endpoint, None, transport_error(s, &e))),
        };
        retry += 1;
        let wait = policy.wait(retry, wait);
        ctx.progress(
            None,
            format!(
                "{why}; retry {retry} of {} in {:.1} s",
                s.retries,
                wait.as_secs_f64()
            ),
        );
        if !sleep_unless(wait, ctx.cancelled()).await {
            return Err(Error::Cancelled {
                node: s.node.clone(),
            });
        }
    };
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        let answer = read_stream(s, ctx, &endpoint, request.max_tokens, response).await?;
        return Ok(match s.task {
            Task::ChatCompletion => Answer::Chat(answer),
            _ => Answer::Text(answer.text),
        });
    }
    let status = response.status().as_u16();
    let bytes = tokio::select! {
        b = response.bytes() => b.map_err(|e| s.remote(&endpoint, Some(status), format!("reading the answer: {}", transport_error(s, &e))))?,
        _ = ctx.cancelled() => return Err(Error::Cancelled { node: s.node.clone() }),
    };
    let batch = inputs[0].downcast_ref::<Vec<String>>().is_some();
    match tasks::parse(s.task, batch, &content_type, &bytes)
        .map_err(|m| s.remote(&endpoint, Some(status), m))?
    {
        Answer::ImageUrl(url) => fetch_image(s, ctx, &http, &url).await.map(Answer::Image),
        answer => Ok(answer),
    }
}

/// Downloads a generated image from the provider's file host, without credentials.
async fn fetch_image(
    s: &Settings,
    ctx: &NodeContext,
    http: &reqwest::Client,
    url: &str,
) -> Result<Image, Error> {
    let shown = url.split('?').next().unwrap_or(url);
    let fetch = async {
        let response = http.get(url).send().await.map_err(|e| {
            s.remote(
                shown,
                None,
                format!("downloading the image: {}", transport_error(s, &e)),
            )
        })?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let f = read_failure(s, response).await;
            return Err(s.remote(
                shown,
                Some(status),
                format!("downloading the image: {}", f.message),
            ));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = response.bytes().await.map_err(|e| {
            s.remote(
                shown,
                Some(status),
                format!("downloading the image: {}", transport_error(s, &e)),
            )
        })?;
        let mime = tasks::sniff_image(&bytes, &content_type);
        if !mime.starts_with("image/") {
            return Err(s.remote(shown, Some(status), bad_shape("an image", &bytes)));
        }
        Ok(Image::new(bytes.to_vec(), mime))
    };
    tokio::select! {
        r = fetch => r,
        _ = ctx.cancelled() => Err(Error::Cancelled { node: s.node.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hf_token_may_go_to_hf_hosts_and_inference_endpoints_only() {
        assert!(may_receive_hf_token(
            "https://router.huggingface.co/v1/chat/completions"
        ));
        assert!(may_receive_hf_token(
            "https://abc123.us-east-1.aws.endpoints.huggingface.cloud/v1"
        ));
        assert!(!may_receive_hf_token("http://router.huggingface.co/v1"));
        assert!(!may_receive_hf_token("http://127.0.0.1:8080/v1"));
        assert!(!may_receive_hf_token("https://api.openai.com/v1"));
        assert!(!may_receive_hf_token(
            "https://endpoints.huggingface.cloud.evil.example/"
        ));
        assert!(!may_receive_hf_token(
            "https://x.endpoints.huggingface.cloud@evil.example/"
        ));
    }

    #[test]
    fn paths() {
        assert_eq!(
            path_of("http://127.0.0.1:1/v1/chat/completions"),
            "/v1/chat/completions"
        );
        assert_eq!(path_of("https://router.huggingface.co"), "/");
    }
}
