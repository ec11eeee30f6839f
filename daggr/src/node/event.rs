//! The event stream every run emits: small deltas, one per node state change, and the
//! per-node log that running nodes and the executor write to.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use crate::cache::CacheSource;
/// Where the function lives now (the lowest layer); kept here, where it always was.
pub use crate::error::error_chain;
use crate::value::ContentHash;

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One event of a run. Node events carry the node's index and name, never the graph.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A run began.
    RunStarted {
        /// Run number (per pipeline).
        run: u64,
        /// How many nodes the run will evaluate.
        nodes: usize,
    },
    /// A node started computing (attempt 1 is the first try).
    NodeStarted {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// Attempt number.
        attempt: u32,
    },
    /// A running node reported progress.
    NodeProgress {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// Fraction done, if known.
        fraction: Option<f32>,
        /// Message.
        message: String,
    },
    /// A running node published a partial output.
    NodePartial {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// The partial value as JSON.
        value: serde_json::Value,
    },
    /// A line was written to a running node's log: by the node itself
    /// ([`crate::NodeContext::log`]), or by the executor (progress, each retry, a timeout,
    /// cancellation, the final error).
    NodeLog {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// When the line was written, in milliseconds since the Unix epoch.
        unix_ms: u64,
        /// The text (see [`LogLine`] for how long lines are cut).
        line: String,
    },
    /// A node's result came from the cache; the node did not run.
    NodeCached {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// Memory or disk.
        source: CacheSource,
    },
    /// A node computed its outputs.
    NodeFinished {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// Wall time of the successful attempt.
        #[serde(with = "duration_ms")]
        elapsed: Duration,
        /// Content hashes of the outputs.
        outputs: Vec<ContentHash>,
    },
    /// One item of a map finished: computed, served from the cache, or failed.
    ItemFinished {
        /// Run number.
        run: u64,
        /// The map node's index.
        node: usize,
        /// The map node's name.
        name: Arc<str>,
        /// The item's position in the list.
        item: usize,
        /// How many items the map has.
        total: usize,
        /// `computed`, `memory`, `disk`, `shared` or `failed`.
        outcome: &'static str,
        /// The error with its cause chain, when it failed.
        error: Option<String>,
    },
    /// A node attempt failed and will be retried.
    NodeRetrying {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
    },
    /// A node failed for good.
    NodeFailed {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// The error with its cause chain.
        error: String,
        /// Time the node spent, from its first attempt (zero if it failed before running).
        #[serde(with = "duration_ms")]
        elapsed: Duration,
    },
    /// A node was not run because something it needs failed or was cancelled.
    NodeSkipped {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// The upstream node that failed.
        because: Arc<str>,
    },
    /// A node's result (computed or adopted in this run) could not be saved: it is in
    /// memory and in the run's report, but not on disk (see `RunReport::unsaved`). Sent
    /// once the run's writes are done, so after [`Event::RunFinished`].
    PersistFailed {
        /// Run number.
        run: u64,
        /// Node index.
        node: usize,
        /// Node name.
        name: Arc<str>,
        /// Where it was not saved: `cache` or `sheet`.
        target: String,
        /// Why, with the cause chain (e.g. `No space left on device`).
        error: String,
    },
    /// A run ended.
    RunFinished {
        /// Run number.
        run: u64,
        /// Nodes computed.
        computed: usize,
        /// Nodes served from the cache.
        cached: usize,
        /// Nodes failed.
        failed: usize,
        /// Nodes skipped.
        skipped: usize,
        /// Whether the run was cancelled.
        cancelled: bool,
        /// Wall time.
        #[serde(with = "duration_ms")]
        elapsed: Duration,
    },
}

mod duration_ms {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }
}

/// The sending side of a pipeline's event stream (cheap when nobody listens).
#[derive(Clone)]
pub(crate) struct EventSender(broadcast::Sender<Event>);

impl EventSender {
    pub(crate) fn new(capacity: usize) -> Self {
        EventSender(broadcast::channel(capacity).0)
    }

    pub(crate) fn send(&self, event: Event) {
        if self.0.receiver_count() > 0 {
            let _ = self.0.send(event);
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }
}

/// How many lines a node's log keeps per result: the last ones. Earlier lines are only
/// counted, in [`Logs::dropped`], so a node logging in a tight loop cannot grow a result (or
/// the sheet storing it) without bound.
pub const MAX_LOG_LINES: usize = 1000;

/// Log lines longer than this many bytes are cut (at a character boundary) and end in `…`.
pub const MAX_LOG_LINE_BYTES: usize = 8 * 1024;

/// Progress is logged at most this often per node: streamed tokens report progress per
/// token, and a line each would bury the node's own lines. An update that comes sooner is
/// held back: a later line supersedes it, and if it is the node's last word it is written
/// when the node ends.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// One line of a node's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When it was written, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The text, without a trailing newline, at most [`MAX_LOG_LINE_BYTES`] (plus `…`).
    pub line: String,
}

/// The log of one node execution, kept with the result it produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// The last [`MAX_LOG_LINES`] lines, oldest first.
    pub lines: Vec<LogLine>,
    /// How many earlier lines were written but not kept.
    #[serde(default)]
    pub dropped: u64,
}

impl Logs {
    /// Whether nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped == 0
    }
}

/// A running node's log: each line is sent as an [`Event::NodeLog`] and the last
/// [`MAX_LOG_LINES`] are kept for the node's result. Clones share the log.
#[derive(Clone)]
pub(crate) struct LogBuffer {
    run: u64,
    node: usize,
    name: Arc<str>,
    events: EventSender,
    state: Arc<Mutex<LogState>>,
}

#[derive(Default)]
struct LogState {
    lines: VecDeque<LogLine>,
    dropped: u64,
    /// When the last progress line was written.
    last_progress: Option<Instant>,
    /// The latest progress line held back by [`PROGRESS_LOG_INTERVAL`], while no other line
    /// came after it.
    held: Option<LogLine>,
}

impl LogBuffer {
    pub(crate) fn new(run: u64, node: usize, name: Arc<str>, events: EventSender) -> Self {
        LogBuffer {
            run,
            node,
            name,
            events,
            state: Arc::default(),
        }
    }

    /// Writes a line (a held-back progress update is superseded by it).
    pub(crate) fn write(&self, line: impl Into<String>) {
        let line = LogLine {
            unix_ms: unix_ms(),
            line: clip(line.into()),
        };
        let mut state = self.state.lock().unwrap();
        state.held = None;
        self.emit(&mut state, line);
    }

    /// Writes the node's last line (after a held-back progress update: the state it ended in).
    pub(crate) fn end(&self, line: impl Into<String>) {
        self.flush_held();
        self.write(line);
    }

    /// Writes a progress update as a line, `progress 50%: message`, at most once per
    /// [`PROGRESS_LOG_INTERVAL`] (the latest update in between is held back).
    pub(crate) fn progress(&self, fraction: Option<f32>, message: &str) {
        let mut text = match fraction {
            Some(f) => format!("progress {:.0}%", f * 100.0),
            None => "progress".to_string(),
        };
        if !message.is_empty() {
            text.push_str(": ");
            text.push_str(message);
        }
        let line = LogLine {
            unix_ms: unix_ms(),
            line: clip(text),
        };
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        if state
            .last_progress
            .is_some_and(|t| now.duration_since(t) < PROGRESS_LOG_INTERVAL)
        {
            state.held = Some(line);
            return;
        }
        state.last_progress = Some(now);
        state.held = None;
        self.emit(&mut state, line);
    }

    /// The node ended: its log (a held-back progress update written last), leaving it empty.
    pub(crate) fn take(&self) -> Logs {
        self.flush_held();
        let mut state = self.state.lock().unwrap();
        Logs {
            lines: state.lines.drain(..).collect(),
            dropped: std::mem::take(&mut state.dropped),
        }
    }

    fn flush_held(&self) {
        let mut state = self.state.lock().unwrap();
        if let Some(held) = state.held.take() {
            self.emit(&mut state, held);
        }
    }

    fn emit(&self, state: &mut LogState, line: LogLine) {
        self.events.send(Event::NodeLog {
            run: self.run,
            node: self.node,
            name: self.name.clone(),
            unix_ms: line.unix_ms,
            line: line.line.clone(),
        });
        if state.lines.len() == MAX_LOG_LINES {
            state.lines.pop_front();
            state.dropped += 1;
        }
        state.lines.push_back(line);
    }
}

/// A log line without its trailing newline, cut to [`MAX_LOG_LINE_BYTES`].
fn clip(mut line: String) -> String {
    line.truncate(line.trim_end_matches(['\n', '\r']).len());
    if line.len() > MAX_LOG_LINE_BYTES {
        let mut end = MAX_LOG_LINE_BYTES;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer() -> (LogBuffer, broadcast::Receiver<Event>) {
        let events = EventSender::new(4096);
        let rx = events.subscribe();
        (LogBuffer::new(1, 0, Arc::from("n"), events), rx)
    }

    #[test]
    fn a_log_keeps_its_last_lines_and_counts_the_rest() {
        let (log, _rx) = buffer();
        for i in 0..MAX_LOG_LINES + 5 {
            log.write(format!("line {i}\n"));
        }
        let logs = log.take();
        assert_eq!(logs.lines.len(), MAX_LOG_LINES);
        assert_eq!(logs.dropped, 5);
        assert_eq!(logs.lines[0].line, "line 5", "the oldest lines go first");
        assert_eq!(
            logs.lines.last().unwrap().line,
            format!("line {}", MAX_LOG_LINES + 4)
        );
        let long = log_line_of("é".repeat(MAX_LOG_LINE_BYTES));
        assert!(long.len() <= MAX_LOG_LINE_BYTES + '…'.len_utf8() && long.ends_with('…'));
    }

    fn log_line_of(text: String) -> String {
        let (log, _rx) = buffer();
        log.write(text);
        log.take().lines.remove(0).line
    }

    #[test]
    fn progress_is_logged_at_most_once_a_second_and_a_last_update_is_kept() {
        let (log, mut rx) = buffer();
        log.progress(Some(0.25), "step 1");
        log.progress(Some(0.5), "step 2");
        log.progress(None, "step 3");
        log.write("mine");
        log.progress(Some(0.9), "");
        log.progress(Some(1.0), "");
        let lines: Vec<String> = log.take().lines.into_iter().map(|l| l.line).collect();
        assert_eq!(lines, ["progress 25%: step 1", "mine", "progress 100%"]);
        let mut sent = Vec::new();
        while let Ok(Event::NodeLog { line, .. }) = rx.try_recv() {
            sent.push(line);
        }
        assert_eq!(sent, lines, "every kept line was also sent, in order");
    }
}
