//! Per-sheet live state for the inspector: an event log with ids (so an EventSource can
//! resume with `Last-Event-ID`), each node's live status, and the last run's timeline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;

use crate::event::{CacheSource, Event};

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
    run_started: Option<Instant>,
    timeline: Vec<Bar>,
    running: bool,
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
        let mut inner = self.inner.lock().unwrap();
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
        drop(inner);
        let _ = self.tx.send(event.clone());
        event
    }

    /// New events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// Events after `last_id`, or `None` if some were already dropped from the log.
    pub fn since(&self, last_id: u64) -> Option<Vec<LiveEvent>> {
        let inner = self.inner.lock().unwrap();
        let oldest = inner.log.front().map_or(inner.next_id + 1, |e| e.id);
        if last_id + 1 < oldest && last_id < inner.next_id {
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

    /// The id of the newest event.
    pub fn last_id(&self) -> u64 {
        self.inner.lock().unwrap().next_id
    }

    /// Whether a run is in progress.
    pub fn running(&self) -> bool {
        self.inner.lock().unwrap().running
    }

    /// A node's live state.
    pub fn node(&self, name: &str) -> NodeLive {
        self.inner
            .lock()
            .unwrap()
            .nodes
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// The last run's timeline.
    pub fn timeline(&self) -> Vec<Bar> {
        self.inner.lock().unwrap().timeline.clone()
    }

    /// Translates an engine event into the page's vocabulary and records it.
    pub fn record(&self, event: &Event) {
        let (name, data) = {
            let mut inner = self.inner.lock().unwrap();
            let since = |inner: &Inner| {
                inner
                    .run_started
                    .map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0)
            };
            match event {
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
            }
        };
        self.push(name, data);
    }
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
}
