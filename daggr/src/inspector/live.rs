//! Per-sheet live state for the inspector: an event log with ids (so an EventSource can
//! resume with `Last-Event-ID`), each node's live status and log, and the last run's
//! timeline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::lock;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;

use crate::node::event::{CacheSource, Event, LogLine, Logs, MAX_LOG_LINES};

/// How many events a sheet keeps for reconnecting clients.
pub const LOG_CAPACITY: usize = 2000;

/// One event as sent over SSE.
#[derive(Clone, Debug)]
pub struct LiveEvent {
    /// Increasing per sheet.
    pub id: u64,
    /// The SSE `event:` name.
    pub name: &'static str,
    /// The JSON data.
    pub data: serde_json::Value,
}

/// What the page shows for a node between state fetches.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeLive {
    /// Running now.
    pub running: bool,
    /// Latest progress while running.
    pub progress: Option<serde_json::Value>,
    /// The error of the last run, if it failed.
    pub error: Option<String>,
    /// Skipped in the last run because of this node.
    pub skipped_because: Option<String>,
    /// Elapsed time of the last computation.
    pub elapsed_ms: Option<f64>,
    /// Lines in the log of its latest execution in this process (see [`LiveLog::node_log`]).
    pub log_lines: usize,
}

/// One bar of the run timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Bar {
    /// Node name.
    pub node: String,
    /// Start, ms since the run started.
    pub start_ms: f64,
    /// End, ms since the run started (`None` while running).
    pub end_ms: Option<f64>,
    /// Served from the cache.
    pub cached: bool,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    log: VecDeque<LiveEvent>,
    nodes: HashMap<String, NodeLive>,
    /// Per node, the log of its latest execution (kept apart from `nodes`, which is cloned
    /// for every state request).
    logs: HashMap<String, Logs>,
    run_started: Option<Instant>,
    timeline: Vec<Bar>,
    running: bool,
    finished_run: Option<u64>,
}

/// A sheet's live log. Cheap to clone.
#[derive(Clone)]
pub struct LiveLog {
    inner: Arc<Mutex<Inner>>,
    tx: broadcast::Sender<LiveEvent>,
}

impl Default for LiveLog {
    fn default() -> Self {
        LiveLog {
            inner: Arc::new(Mutex::new(Inner::default())),
            tx: broadcast::channel(1024).0,
        }
    }
}

impl LiveLog {
    /// Records an event and publishes it.
    pub fn push(&self, name: &'static str, data: serde_json::Value) -> LiveEvent {
        let event = append(&mut lock(&self.inner), name, data);
        let _ = self.tx.send(event.clone());
        event
    }

    /// New events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// Events after `last_id`, or `None` if some were already dropped from the log.
    pub fn since(&self, last_id: u64) -> Option<Vec<LiveEvent>> {
        let inner = lock(&self.inner);
        // `last_id` comes from the client (up to u64::MAX): no arithmetic on it. Events
        // were dropped when the log no longer starts right after it.
        let oldest = inner.log.front().map_or(inner.next_id, |e| e.id - 1);
        if last_id < oldest {
            return None;
        }
        Some(
            inner
                .log
                .iter()
                .filter(|e| e.id > last_id)
                .cloned()
                .collect(),
        )
    }

    /// The number of the last run that sent `run_finished` (it may still be saving its
    /// results).
    pub fn last_finished_run(&self) -> Option<u64> {
        lock(&self.inner).finished_run
    }

    /// The id of the newest event.
    pub fn last_id(&self) -> u64 {
        lock(&self.inner).next_id
    }

    /// A node's live state.
    pub fn node(&self, name: &str) -> NodeLive {
        let inner = lock(&self.inner);
        let mut live = inner.nodes.get(name).cloned().unwrap_or_default();
        live.log_lines = inner.logs.get(name).map_or(0, |l| l.lines.len());
        live
    }

    /// The log of the node's latest execution in this process (`None` if it has not run
    /// since the server started), and the id of the newest event, read together: a client
    /// showing this log and then applying `node_log` events after that id sees each line once.
    pub fn node_log(&self, name: &str) -> (Option<Logs>, u64) {
        let inner = lock(&self.inner);
        (inner.logs.get(name).cloned(), inner.next_id)
    }

    /// The last run's timeline.
    pub fn timeline(&self) -> Vec<Bar> {
        lock(&self.inner).timeline.clone()
    }

    /// Translates an engine event into the page's vocabulary and records it.
    pub fn record(&self, event: &Event) {
        // The state change and the event's id are made under one lock, so a snapshot (a
        // node's log, say) always matches the id it is sent with.
        let recorded = {
            let mut inner = lock(&self.inner);
            let since = |inner: &Inner| {
                inner
                    .run_started
                    .map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0)
            };
            let (name, data) = match event {
                Event::RunStarted { run, nodes } => {
                    inner.run_started = Some(Instant::now());
                    inner.timeline.clear();
                    inner.running = true;
                    ("run_started", json!({ "run": run, "nodes": nodes }))
                }
                Event::NodeStarted { name, attempt, .. } => {
                    let start = since(&inner);
                    let live = inner.nodes.entry(name.to_string()).or_default();
                    live.running = true;
                    live.progress = None;
                    live.error = None;
                    live.skipped_because = None;
                    if *attempt == 1 {
                        // A new execution starts a new log (retries add to the same one).
                        inner.logs.insert(name.to_string(), Logs::default());
                        inner.timeline.push(Bar {
                            node: name.to_string(),
                            start_ms: start,
                            end_ms: None,
                            cached: false,
                        });
                    }
                    (
                        "node_started",
                        json!({ "node": &**name, "attempt": attempt }),
                    )
                }
                Event::NodeProgress {
                    name,
                    fraction,
                    message,
                    ..
                } => {
                    let progress = json!({ "fraction": fraction, "message": message });
                    inner.nodes.entry(name.to_string()).or_default().progress = Some(progress);
                    (
                        "node_progress",
                        json!({ "node": &**name, "fraction": fraction, "message": message }),
                    )
                }
                Event::NodePartial { name, value, .. } => {
                    ("node_partial", json!({ "node": &**name, "value": value }))
                }
                Event::NodeLog {
                    name,
                    unix_ms,
                    line,
                    ..
                } => {
                    let logs = inner.logs.entry(name.to_string()).or_default();
                    if logs.lines.len() == MAX_LOG_LINES {
                        logs.lines.remove(0);
                        logs.dropped += 1;
                    }
                    logs.lines.push(LogLine {
                        unix_ms: *unix_ms,
                        line: line.clone(),
                    });
                    (
                        "node_log",
                        json!({ "node": &**name, "unix_ms": unix_ms, "line": line }),
                    )
                }
                Event::ItemFinished {
                    name,
                    item,
                    total,
                    outcome,
                    error,
                    ..
                } => (
                    "item_finished",
                    json!({ "node": &**name, "item": item, "total": total, "outcome": outcome, "error": error }),
                ),
                Event::NodeCached { name, source, .. } => {
                    let at = since(&inner);
                    let live = inner.nodes.entry(name.to_string()).or_default();
                    *live = NodeLive::default();
                    inner.timeline.push(Bar {
                        node: name.to_string(),
                        start_ms: at,
                        end_ms: Some(at),
                        cached: true,
                    });
                    let source = match source {
                        CacheSource::Memory => "memory",
                        CacheSource::Disk => "disk",
                        CacheSource::Workspace => "workspace",
                        CacheSource::Shared => "shared",
                    };
                    ("node_cached", json!({ "node": &**name, "source": source }))
                }
                Event::NodeFinished { name, elapsed, .. } => {
                    let end = since(&inner);
                    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
                    let live = inner.nodes.entry(name.to_string()).or_default();
                    *live = NodeLive {
                        elapsed_ms: Some(elapsed_ms),
                        ..NodeLive::default()
                    };
                    close_bar(&mut inner.timeline, name, end);
                    (
                        "node_finished",
                        json!({ "node": &**name, "elapsed_ms": elapsed_ms }),
                    )
                }
                Event::NodeRetrying {
                    name,
                    attempt,
                    error,
                    ..
                } => (
                    "node_progress",
                    json!({ "node": &**name, "fraction": null, "message": format!("attempt {attempt} failed: {error}; retrying") }),
                ),
                Event::NodeFailed { name, error, .. } => {
                    let end = since(&inner);
                    let live = inner.nodes.entry(name.to_string()).or_default();
                    live.running = false;
                    live.progress = None;
                    live.error = Some(error.clone());
                    close_bar(&mut inner.timeline, name, end);
                    ("node_failed", json!({ "node": &**name, "error": error }))
                }
                Event::NodeSkipped { name, because, .. } => {
                    let live = inner.nodes.entry(name.to_string()).or_default();
                    live.running = false;
                    live.skipped_because = Some(because.to_string());
                    (
                        "node_skipped",
                        json!({ "node": &**name, "because": &**because }),
                    )
                }
                // A result that was not saved (a full disk): the page hears of it by name.
                Event::PersistFailed {
                    name,
                    target,
                    error,
                    ..
                } => (
                    "persist_failed",
                    json!({ "node": &**name, "target": target, "error": error }),
                ),
                Event::RunFinished {
                    run,
                    computed,
                    cached,
                    failed,
                    skipped,
                    cancelled,
                    elapsed,
                } => {
                    inner.running = false;
                    inner.finished_run = Some(*run);
                    for live in inner.nodes.values_mut() {
                        live.running = false;
                        live.progress = None;
                    }
                    (
                        "run_finished",
                        json!({ "run": run, "computed": computed, "cached": cached, "failed": failed,
                                "skipped": skipped, "cancelled": cancelled, "elapsed_ms": elapsed.as_secs_f64() * 1000.0 }),
                    )
                }
            };
            append(&mut inner, name, data)
        };
        let _ = self.tx.send(recorded);
    }
}

/// Gives the event the next id and keeps it for reconnecting clients.
fn append(inner: &mut Inner, name: &'static str, data: serde_json::Value) -> LiveEvent {
    inner.next_id += 1;
    let event = LiveEvent {
        id: inner.next_id,
        name,
        data,
    };
    if inner.log.len() == LOG_CAPACITY {
        inner.log.pop_front();
    }
    inner.log.push_back(event.clone());
    event
}

fn close_bar(timeline: &mut [Bar], node: &str, end: f64) {
    if let Some(bar) = timeline
        .iter_mut()
        .rev()
        .find(|b| b.node == node && b.end_ms.is_none())
    {
        bar.end_ms = Some(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnecting_clients_get_what_they_missed_or_a_resync() {
        let log = LiveLog::default();
        for i in 0..10 {
            log.push("node_started", json!({ "i": i }));
        }
        let missed = log.since(7).unwrap();
        assert_eq!(missed.iter().map(|e| e.id).collect::<Vec<_>>(), [8, 9, 10]);
        assert!(log.since(10).unwrap().is_empty());
        for i in 0..LOG_CAPACITY {
            log.push("node_started", json!({ "i": i }));
        }
        assert!(log.since(3).is_none(), "too old: the client must resync");
    }

    #[test]
    fn any_client_id_is_answered_without_overflow() {
        let log = LiveLog::default();
        assert!(log.since(u64::MAX).unwrap().is_empty());
        assert!(log.since(0).unwrap().is_empty());
        log.push("node_started", json!({}));
        assert!(log.since(u64::MAX).unwrap().is_empty(), "ahead of the log");
        assert_eq!(log.since(0).unwrap().len(), 1);
        assert_eq!(log.last_id(), 1);
    }

    #[test]
    fn a_node_log_is_kept_per_execution_with_the_id_it_was_read_at() {
        let log = LiveLog::default();
        let name: Arc<str> = Arc::from("n");
        let started = |attempt| Event::NodeStarted {
            run: 1,
            node: 0,
            name: name.clone(),
            attempt,
        };
        let line = |text: &str| Event::NodeLog {
            run: 1,
            node: 0,
            name: name.clone(),
            unix_ms: 5,
            line: text.into(),
        };
        assert_eq!(log.node_log("n").0, None, "not run yet");
        log.record(&started(1));
        log.record(&line("first try"));
        log.record(&started(2));
        log.record(&line("second try"));
        let (logs, id) = log.node_log("n");
        let lines: Vec<String> = logs.unwrap().lines.into_iter().map(|l| l.line).collect();
        assert_eq!(
            lines,
            ["first try", "second try"],
            "a retry adds to the log"
        );
        assert_eq!(id, log.last_id());
        assert_eq!(log.node("n").log_lines, 2);
        let sent = log.since(0).unwrap();
        assert_eq!(sent[1].name, "node_log");
        assert_eq!(
            sent[1].data,
            json!({ "node": "n", "unix_ms": 5, "line": "first try" })
        );
        log.record(&started(1));
        assert_eq!(
            log.node_log("n").0.unwrap().lines.len(),
            0,
            "a new run, a new log"
        );
    }
}
