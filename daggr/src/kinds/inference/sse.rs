//! Streamed answers: a server-sent events decoder, and the reader that turns an OpenAI
//! (or TGI) token stream into node progress, partial outputs and the final answer.

use futures::StreamExt;
use serde_json::{json, Value as Json};

use super::errors::json_message;
use super::ports::{ChatAnswer, Usage};
use super::Settings;
use crate::node::NodeContext;
use crate::Error;

/// One server-sent event.
#[derive(Debug, PartialEq)]
pub(crate) struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

/// Decodes a `text/event-stream` body fed in arbitrary chunks (a chunk may end in the
/// middle of a line or of a UTF-8 character). Lines end in `\n` or `\r\n`.
#[derive(Default)]
pub(crate) struct SseDecoder {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseDecoder {
    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(end) = self.buffer[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.buffer[start..start + end];
            start += end + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.buffer.drain(..start);
        events
    }

    /// The stream ended: the event still being read, if any.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty() {
            let line = String::from_utf8_lossy(&rest).into_owned();
            if let Some(event) = self.line(&line) {
                return Some(event);
            }
        }
        self.dispatch()
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => self.data.push(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            _ => {} // id, retry: not needed here
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if self.data.is_empty() {
            return None;
        }
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data).join("\n"),
        })
    }
}

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
    let mut decoder = SseDecoder::default();
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

    fn decode_in_pieces(body: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut events: Vec<SseEvent> = body.chunks(piece).flat_map(|c| d.push(c)).collect();
        events.extend(d.finish());
        events
    }

    #[test]
    fn events_survive_any_chunking_including_split_utf8() {
        let body = "data: {\"t\":\"héllo 🌊\"}\r\n\r\n: keep-alive\n\nevent: error\ndata: a\ndata: b\n\ndata: [DONE]\n\n";
        for piece in 1..body.len() {
            let events = decode_in_pieces(body.as_bytes(), piece);
            assert_eq!(
                events,
                vec![
                    SseEvent {
                        event: None,
                        data: "{\"t\":\"héllo 🌊\"}".into()
                    },
                    SseEvent {
                        event: Some("error".into()),
                        data: "a\nb".into()
                    },
                    SseEvent {
                        event: None,
                        data: "[DONE]".into()
                    },
                ],
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn a_last_event_without_a_blank_line_is_kept() {
        assert_eq!(
            decode_in_pieces(b"data: x", 3),
            vec![SseEvent {
                event: None,
                data: "x".into()
            }]
        );
    }

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
