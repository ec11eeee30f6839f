//! The one server-sent events parser of the remote node kinds (Gradio's `/call` and
//! `/queue/data` streams, inference token streams), after the WHATWG "event stream
//! interpretation" rules.
//!
//! Hand-written rather than the `eventsource-stream` crate: both callers read the body
//! chunk by chunk inside their own `select!` (cancellation, a read timeout per chunk), need
//! to know whether a stream that ends was cut mid-event ([`SseParser::has_partial`]), and
//! inference servers that close the connection right after the last `data:` line need that
//! event kept ([`SseParser::finish`]); a `Stream` adapter offers neither.
//!
//! Lines end in `\n`, `\r` or `\r\n`, wherever the chunk boundaries fall (a `\r` that ends
//! one chunk and a `\n` that starts the next are one line end). Bytes are held until their
//! line is whole, so a UTF-8 character cut between chunks survives.

use std::time::Duration;

/// One server-sent event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` when absent or empty (the spec's `message`).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last event id (`id:`) seen on the stream so far, if any.
    pub id: Option<String>,
}

/// An incremental event-stream parser: feed it chunks, take complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The bytes of the line being read.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` that starts this one belongs to it.
    after_cr: bool,
    /// A line has been completed (the byte-order mark is looked for on the first only).
    started: bool,
    /// The data buffer: each `data:` value followed by `\n`.
    data: String,
    /// A `data:` line was read for the pending event.
    has_data: bool,
    event: Option<String>,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Adds a chunk and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..end]);
            let cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if let Some(event) = self.end_line() {
                events.push(event);
            }
        }
        self.line.extend_from_slice(rest);
        events
    }

    /// The stream ended: the event still being read, if it has data. The spec drops such
    /// an event; some inference servers end the body right after their last `data:` line
    /// without the blank line, and that event is the answer's end.
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.after_cr = false;
        let event = if self.line.is_empty() {
            None
        } else {
            self.end_line()
        };
        event.or_else(|| self.dispatch())
    }

    /// Whether part of an event is buffered (a stream that ends now was cut mid-event).
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.has_data || self.event.is_some()
    }

    /// The reconnection time the server asked for (`retry:`), if any.
    #[allow(dead_code)] // Parsed per the spec; no caller reconnects (yet).
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Interprets the line in `self.line`; an empty line dispatches the pending event.
    fn end_line(&mut self) -> Option<SseEvent> {
        let mut bytes = std::mem::take(&mut self.line);
        if !self.started {
            self.started = true;
            if bytes.starts_with(b"\xEF\xBB\xBF") {
                bytes.drain(..3);
            }
        }
        if bytes.is_empty() {
            return self.dispatch();
        }
        let line = String::from_utf8_lossy(&bytes);
        if line.starts_with(':') {
            return None; // a comment (keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok().map(Duration::from_millis);
            }
            _ => {} // unknown fields are ignored
        }
        None
    }

    /// Ends the pending event: returned if it has data, dropped otherwise (per the spec).
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take().filter(|e| !e.is_empty());
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the `\n` after the last line
        Some(SseEvent {
            event,
            data,
            id: self.last_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.map(str::to_string),
            data: data.to_string(),
            id: id.map(str::to_string),
        }
    }

    fn whole(body: &[u8]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut events = p.push(body);
        events.extend(p.finish());
        events
    }

    /// Every way of cutting `body` in two, in three, and into single bytes gives the same
    /// events as the whole body.
    fn assert_any_cut_gives(body: &[u8], expected: &[SseEvent]) {
        assert_eq!(whole(body), expected, "whole body");
        let n = body.len();
        for i in 0..=n {
            for j in i..=n {
                let mut p = SseParser::new();
                let mut events = p.push(&body[..i]);
                events.extend(p.push(&body[i..j]));
                events.extend(p.push(&body[j..]));
                events.extend(p.finish());
                assert_eq!(events, expected, "cut at {i} and {j}");
            }
        }
        let mut p = SseParser::new();
        let mut events: Vec<SseEvent> = body.iter().flat_map(|b| p.push(&[*b])).collect();
        events.extend(p.finish());
        assert_eq!(events, expected, "single bytes");
    }

    #[test]
    fn every_line_ending_at_every_cut() {
        let body = "\u{FEFF}event: generating\r\ndata: [\"é 🌊\"]\r\n\r\n: keep-alive\n\nevent: error\rdata: a\rdata:b\r\rid: 7\ndata:  two spaces\n\ndata\n\n";
        assert_any_cut_gives(
            body.as_bytes(),
            &[
                ev(Some("generating"), "[\"é 🌊\"]", None),
                ev(Some("error"), "a\nb", None),
                ev(None, " two spaces", Some("7")),
                ev(None, "", Some("7")),
            ],
        );
    }

    #[test]
    fn a_cr_lf_cut_between_chunks_is_one_line_end() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: complete\r").is_empty());
        assert!(p.push(b"\ndata: [1]\r").is_empty());
        assert_eq!(p.push(b"\n\r"), vec![ev(Some("complete"), "[1]", None)]);
        // The `\n` after that last `\r` belongs to it: no second (empty) line.
        assert!(p.push(b"\n").is_empty());
        assert!(!p.has_partial());
    }

    #[test]
    fn events_without_data_are_dropped_and_partials_are_seen() {
        assert_eq!(whole(b"event: ping\n\nid: 1\n\n"), vec![]);
        let mut p = SseParser::new();
        assert!(!p.has_partial());
        p.push(b"data: {\"msg\"");
        assert!(p.has_partial());
        let mut p = SseParser::new();
        p.push(b"data: x\n");
        assert!(p.has_partial(), "a data line without its blank line");
    }

    #[test]
    fn fields_follow_the_spec() {
        let mut p = SseParser::new();
        let events = p.push(b"retry: 1500\nretry: x\nid: a\0b\nfoo: bar\nevent:\ndata:x\n\n");
        assert_eq!(events, vec![ev(None, "x", None)]);
        assert_eq!(p.retry(), Some(Duration::from_millis(1500)));
        // A byte-order mark only counts at the very start.
        // Later on it is part of a field name, so that line is ignored.
        assert_eq!(
            whole("data: a\n\n\u{FEFF}data: b\n\n".as_bytes()),
            vec![ev(None, "a", None)]
        );
    }

    #[test]
    fn a_last_event_without_a_blank_line_is_kept_by_finish() {
        assert_any_cut_gives(b"data: x\r\ndata: y", &[ev(None, "x\ny", None)]);
        assert_any_cut_gives(b"data: x\r", &[ev(None, "x", None)]);
    }
}
