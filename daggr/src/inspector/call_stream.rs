//! The streaming form of `POST /api/call`: asked for with `Accept: text/event-stream`, the
//! answer is a stream of server-sent events. First the call's run as it happens, in the
//! inspector's own vocabulary and encoding (each engine event translated by a
//! [`LiveLog`] of the call's own, written by the inspector's SSE writer): `run_started`,
//! `node_started`, `node_progress`, `node_partial`, `node_log`, `node_cached`,
//! `node_finished`, `node_failed`, `node_skipped`, `run_finished` (each node event's data
//! names its `node`). Then one last event: `result`, whose data is the JSON form's 200
//! body, or `error`, whose data is the body the JSON form answers with its 4xx/5xx status.
//!
//! What is refused before the run starts (bad inputs, no key, an unknown sheet, a full
//! queue) is answered with its status and JSON body as in the JSON form: the stream only
//! starts once the run does. Dropping the stream (the client closed the connection)
//! cancels the run.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value as Json_;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::task::JoinHandle;
use tokio_util::sync::DropGuard;

use super::call_run::{answer_body, joined, CallOutcome, CallRun};
use super::http::to_sse;
use super::live::{LiveEvent, LiveLog};
use crate::node::event::Event;

/// How often an idle stream sends a comment: it keeps proxies from closing it, and a write
/// to a client that has gone fails, so a run with nothing to say is cancelled within about
/// two intervals even where the server is not told of the closed connection.
const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// Whether the request asks for the streaming form.
pub(super) fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/event-stream")
        })
}

/// The streaming answer for a started run.
pub(super) fn respond(run: CallRun) -> Response {
    let CallRun {
        events,
        task,
        cancel,
    } = run;
    let log = LiveLog::default();
    let state = Stream {
        translated: log.subscribe(),
        log,
        events: events.expect("a streaming call subscribes to its run's events"),
        events_open: true,
        task,
        pending: VecDeque::new(),
        ended: false,
        _cancel: cancel,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        let next = s.next().await?;
        Some((Ok::<_, Infallible>(next), s))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

struct Stream {
    /// Translates the engine's events into the inspector's (`record`), heard back on
    /// `translated`.
    log: LiveLog,
    translated: Receiver<LiveEvent>,
    /// The run's workspace's events.
    events: Receiver<Event>,
    /// Until the workspace is gone.
    events_open: bool,
    task: JoinHandle<CallOutcome>,
    /// Events ready to send.
    pending: VecDeque<SseEvent>,
    /// The last event is in `pending`.
    ended: bool,
    /// Cancels the run when the stream is dropped.
    _cancel: DropGuard,
}

impl Stream {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                // Events first: everything the run sent goes out before its result.
                biased;
                event = self.events.recv(), if self.events_open => match event {
                    Ok(event) => self.translate(&event),
                    // Only under a flood of log lines: the stream skips some, the result
                    // is whole.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => self.events_open = false,
                },
                outcome = &mut self.task => {
                    // The run sent its every event before its task ended: they are all in
                    // the channel now.
                    loop {
                        match self.events.try_recv() {
                            Ok(event) => self.translate(&event),
                            Err(TryRecvError::Lagged(_)) => {}
                            Err(_) => break,
                        }
                    }
                    self.finish(joined(outcome));
                }
            }
        }
    }

    fn translate(&mut self, event: &Event) {
        self.log.record(event);
        while let Ok(live) = self.translated.try_recv() {
            self.pending.push_back(to_sse(&live));
        }
    }

    fn finish(&mut self, outcome: CallOutcome) {
        let (status, body): (_, Json_) = answer_body(outcome);
        let name = if status.is_success() {
            "result"
        } else {
            "error"
        };
        let last = self.log.push(name, body);
        self.pending.push_back(to_sse(&last));
        self.ended = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_stream_is_asked_for_by_accept() {
        let mut headers = HeaderMap::new();
        assert!(!wanted(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wanted(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, Text/Event-Stream;q=0.9"),
        );
        assert!(wanted(&headers));
    }
}
