//! Streamed answers: the reader that turns an OpenAI (or TGI) token stream into node
//! progress, partial outputs and the final answer. The events come from the remote kinds'
//! one event-stream parser, [`SseParser`].

use futures::StreamExt;
use serde_json::{json, Value as Json};

use super::errors::json_message;
use super::ports::{ChatAnswer, Usage};
use super::Settings;
use crate::kinds::http::sse::{SseEvent, SseParser};
use crate::node::NodeContext;
use crate::Error;

/// What one stream chunk carried.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Chunk {
    pub delta: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

/// Reads one JSON chunk of an OpenAI chat stream (`choices[0].delta.content`), an OpenAI
/// completions stream (`choices[0].text`) or a TGI stream (`token.text`, special tokens
/// skipped). A chunk that is an error (`{"error": …}`) is returned as `Err(message)`.
pub(crate) fn read_chunk(chunk: &Json) -> Result<Chunk, String> {
    if chunk.get("error").is_some_and(|e| !e.is_null()) {
        let mut message = json_message(chunk).unwrap_or_else(|| chunk.to_string());
        if let Some(kind) = chunk.get("error_type").and_then(Json::as_str) {
            message = format!("{message} ({kind})");
        }
        return Err(message);
    }
    let choice = &chunk["choices"][0];
    let delta = choice["delta"]["content"]
        .as_str()
        .or_else(|| choice["text"].as_str())
        .or_else(|| {
            let token = &chunk["token"];
            (!token["special"].as_bool().unwrap_or(false))
                .then(|| token["text"].as_str())
                .flatten()
        })
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let finish_reason = choice["finish_reason"]
        .as_str()
        .or_else(|| chunk["details"]["finish_reason"].as_str())
        .map(str::to_string);
    let usage = chunk
        .get("usage")
        .filter(|u| u.is_object())
        .and_then(|u| serde_json::from_value(u.clone()).ok());
    Ok(Chunk {
        delta,
        finish_reason,
        usage,
    })
}

/// Reads a token stream to its end (`data: [DONE]`, or the body's end after a finish
/// reason), reporting each token as node progress (a fraction of `max_tokens` when known)
/// and the text so far as a partial output `{"text": …}`.
pub(crate) async fn read_stream(
    s: &Settings,
    ctx: &NodeContext,
    endpoint: &str,
    max_tokens: Option<u32>,
    response: reqwest::Response,
) -> Result<ChatAnswer, Error> {
    let mut body = response.bytes_stream();
    let mut decoder = SseParser::new();
    let mut answer = ChatAnswer::default();
    let mut tokens = 0u32;
    let mut handle = |event: SseEvent, answer: &mut ChatAnswer| -> Result<bool, Error> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        let chunks: Vec<Json> = match serde_json::from_str::<Json>(data) {
            Ok(chunk) => vec![chunk],
            // Some servers put several `data:` lines in one event, each a whole chunk.
            Err(e) => data
                .lines()
                .map(|l| serde_json::from_str::<Json>(l.trim()))
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    s.remote(
                        endpoint,
                        None,
                        format!("a stream event is not JSON ({e}): {}", cut(data)),
                    )
                })?,
        };
        for chunk in chunks {
            if event.event.as_deref() == Some("error") && chunk.get("error").is_none() {
                let message = json_message(&chunk).unwrap_or_else(|| chunk.to_string());
                return Err(s.remote(endpoint, None, format!("the stream failed: {message}")));
            }
            let chunk = read_chunk(&chunk)
                .map_err(|m| s.remote(endpoint, None, format!("the stream failed: {m}")))?;
            if let Some(delta) = chunk.delta {
                answer.text.push_str(&delta);
                tokens += 1;
                let fraction = max_tokens.map(|m| tokens as f32 / m.max(1) as f32);
                ctx.progress(fraction, format!("{tokens} tokens"));
                ctx.partial(json!({ "text": answer.text }));
            }
            if chunk.finish_reason.is_some() {
                answer.finish_reason = chunk.finish_reason;
            }
            if chunk.usage.is_some() {
                answer.usage = chunk.usage;
            }
        }
        Ok(false)
    };
    loop {
        let next = tokio::select! {
            n = body.next() => n,
            _ = ctx.cancelled() => return Err(Error::Cancelled { node: s.node.clone() }),
        };
        match next {
            Some(Ok(bytes)) => {
                for event in decoder.push(&bytes) {
                    if handle(event, &mut answer)? {
                        return Ok(answer);
                    }
                }
            }
            Some(Err(e)) => {
                let what = if e.is_timeout() {
                    format!("the stream stalled (no data for {:?})", s.read_timeout)
                } else {
                    format!("the stream broke: {}", crate::node::event::error_chain(&e))
                };
                return Err(s.remote(endpoint, None, what));
            }
            None => {
                if let Some(event) = decoder.finish() {
                    if handle(event, &mut answer)? {
                        return Ok(answer);
                    }
                }
                // TGI-style streams end without [DONE]; an answer with a finish reason is whole.
                return if answer.finish_reason.is_some() {
                    Ok(answer)
                } else {
                    Err(s.remote(
                        endpoint,
                        None,
                        format!("the stream ended early, after {tokens} tokens"),
                    ))
                };
            }
        }
    }
}

fn cut(s: &str) -> String {
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_of_each_stream_shape() {
        let chat =
            json!({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": null}]});
        assert_eq!(read_chunk(&chat).unwrap().delta.as_deref(), Some("Hi"));
        let first = json!({"choices": [{"index": 0, "delta": {"role": "assistant"}}]});
        assert_eq!(read_chunk(&first).unwrap(), Chunk::default());
        let last = json!({"choices": [{"delta": {}, "finish_reason": "length"}],
                          "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
        let last = read_chunk(&last).unwrap();
        assert_eq!(last.finish_reason.as_deref(), Some("length"));
        assert_eq!(last.usage.unwrap().total_tokens, 5);
        let completion = json!({"choices": [{"text": " Paris", "finish_reason": null}]});
        assert_eq!(
            read_chunk(&completion).unwrap().delta.as_deref(),
            Some(" Paris")
        );
        let tgi = json!({"token": {"id": 1, "text": "ok", "special": false}, "details": null});
        assert_eq!(read_chunk(&tgi).unwrap().delta.as_deref(), Some("ok"));
        let tgi_end = json!({"token": {"id": 2, "text": "</s>", "special": true},
                             "details": {"finish_reason": "eos_token"}});
        let tgi_end = read_chunk(&tgi_end).unwrap();
        assert_eq!(tgi_end.delta, None);
        assert_eq!(tgi_end.finish_reason.as_deref(), Some("eos_token"));
        let error = json!({"error": "stream failed", "error_type": "generation"});
        assert_eq!(
            read_chunk(&error).unwrap_err(),
            "stream failed (generation)"
        );
        let openai_error = json!({"error": {"message": "overloaded", "type": "server_error"}});
        assert_eq!(read_chunk(&openai_error).unwrap_err(), "overloaded");
    }
}
