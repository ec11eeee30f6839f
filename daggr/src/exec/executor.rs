//! One run: [`Executor`] schedules a scope's nodes in dependency order, settles cache hits,
//! runs the rest under the concurrency limits with their timeouts and retries, and hands
//! each result (or failure) to the workspace that started it.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::attempt::{execute, preimage_of, Attempts};
use super::composite::PartsDone;
use super::state::{Current, Shared};
use super::{NodeFailure, NodeResult, Outcome, RunReport};
use crate::cache::{CacheKey, KeyPreimage};
use crate::error::Error;
use crate::graph::Binding;
use crate::node::event::{error_chain, unix_ms, CacheSource, Event, LogBuffer, Logs};
use crate::node::{CachePolicy, Inputs, NodeContext};
use crate::value::Value;

/// The outcome of one node task.
struct TaskDone {
    result: Result<(Arc<[Value]>, Outcome), Error>,
    /// The key made again with a fingerprint learnt at run time ([`Node::runtime_fingerprint`]).
    rekeyed: Option<(CacheKey, KeyPreimage)>,
    /// What a map's items or a choice's variants did.
    parts: Option<PartsDone>,
}

/// Everything one node's evaluation needs, prepared by the scheduler.
struct Prepared {
    preimage: KeyPreimage,
    key: CacheKey,
    inputs: Vec<Value>,
    generated: Vec<(String, Value)>,
}

/// Where a node is in a run (eight bytes a node; its values are kept apart, for the report).
#[derive(Clone, Copy)]
enum Slot {
    /// Not started: how many of its upstream nodes in scope have not finished.
    Waiting(u32),
    Running,
    /// Finished; its values are in [`Executor::values`].
    Done,
    /// Failed, or skipped because node `root` failed.
    Failed {
        root: u32,
    },
}

/// One run of a workspace: its scope, each node's slot, and what it has produced so far.
pub(super) struct Executor {
    shared: Arc<Shared>,
    run: u64,
    in_scope: Vec<bool>,
    cancel: CancellationToken,
    /// Each node's state in this run.
    slots: Vec<Slot>,
    /// The values of the nodes done in this run, by node: the report's.
    values: Vec<Option<Arc<[Value]>>>,
    /// Values of out-of-scope upstream nodes, resolved on demand.
    provided: HashMap<usize, Option<Arc<[Value]>>>,
    outcomes: Vec<(usize, Outcome)>,
    prepared: HashMap<usize, Prepared>,
    /// The nodes running now: what the executor still needs when one fails or is cancelled
    /// (by then its task may have been dropped).
    running: HashMap<usize, RunningNode>,
    started: Instant,
    /// The run's span, parent of the node spans.
    span: tracing::Span,
    /// Each started node's span, until the node ends and its outcome is recorded (the
    /// nodes in flight only: a run over a big graph keeps no span per node).
    spans: HashMap<usize, tracing::Span>,
    /// The computed results queued for the cache (node, key), for the report: whoever
    /// waits for the cache's writer asks it which of them failed.
    queued: Vec<(usize, CacheKey)>,
    /// What the parts of composite nodes (maps, choices) did, until the node finishes.
    parts: HashMap<usize, PartsDone>,
    /// The map node and item this run computes again whatever the cache holds
    /// ([`Scope::Item`](super::Scope::Item)).
    force: Option<(usize, usize)>,
}

impl Executor {
    pub(super) fn new(
        shared: Arc<Shared>,
        run: u64,
        in_scope: Vec<bool>,
        cancel: CancellationToken,
        span: tracing::Span,
    ) -> Self {
        let n = shared.s.nodes.len();
        let slots = (0..n)
            .map(|i| {
                let upstream = shared.s.upstream.of(i);
                Slot::Waiting(upstream.iter().filter(|u| in_scope[**u as usize]).count() as u32)
            })
            .collect();
        Executor {
            shared,
            run,
            in_scope,
            cancel,
            slots,
            values: vec![None; n],
            provided: HashMap::new(),
            outcomes: Vec::new(),
            prepared: HashMap::new(),
            running: HashMap::new(),
            started: Instant::now(),
            span,
            spans: HashMap::new(),
            queued: Vec::new(),
            parts: HashMap::new(),
            force: None,
        }
    }

    /// Makes item `.1` of map node `.0` compute again, bypassing its cache entry and the
    /// map's (see [`Scope::Item`](super::Scope::Item)).
    pub(super) fn force_item(mut self, force: Option<(usize, usize)>) -> Self {
        self.force = force;
        self
    }

    pub(super) async fn run(mut self) -> RunReport {
        let total = self.in_scope.iter().filter(|s| **s).count();
        self.outcomes.reserve_exact(total);
        self.shared.events.send(Event::RunStarted {
            run: self.run,
            nodes: total,
        });
        let mut ready: Vec<usize> = self
            .shared
            .s
            .topo
            .iter()
            .map(|&n| n as usize)
            .filter(|&n| self.in_scope[n] && matches!(self.slots[n], Slot::Waiting(0)))
            .collect();
        ready.reverse(); // pop() then yields topological order
                         // Node futures run on this run's own task rather than as spawned tasks: no
                         // cross-thread wake-up per node, which keeps the engine's overhead per node in
                         // microseconds. Synchronous nodes still run on the blocking pool (or inline when
                         // marked cheap), so they overlap; async node bodies should await, not compute.
        let mut tasks = FuturesUnordered::new();
        let mut running: HashSet<usize> = HashSet::new();
        let mut cancelled = false;
        loop {
            while let Some(n) = ready.pop() {
                if self.cancel.is_cancelled() {
                    cancelled = true;
                    break;
                }
                match self.start(n) {
                    Started::Done(values, outcome) => {
                        self.finish(n, Ok((values, outcome)), &mut ready)
                    }
                    Started::Failed(error) => self.finish(n, Err(error), &mut ready),
                    Started::Skipped(root) => self.skip(n, root, &mut ready),
                    Started::Spawn(fut) => {
                        self.slots[n] = Slot::Running;
                        running.insert(n);
                        tasks.push(AssertUnwindSafe(fut).catch_unwind().map(move |r| (n, r)));
                    }
                }
            }
            if cancelled || tasks.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    cancelled = true;
                    break;
                }
                joined = tasks.next() => {
                    let Some((n, joined)) = joined else { break };
                    running.remove(&n);
                    let result = match joined {
                        Ok(done) => {
                            if let (Some((key, preimage)), Some(p)) =
                                (done.rekeyed, self.prepared.get_mut(&n))
                            {
                                p.key = key;
                                p.preimage = preimage;
                            }
                            if let Some(parts) = done.parts {
                                self.parts.insert(n, parts);
                            }
                            done.result
                        }
                        Err(panic) => Err(Error::NodeFailed {
                            node: self.shared.s.names[n].to_string(),
                            source: format!("panicked: {}", crate::error::panic_message(panic)).into(),
                        }),
                    };
                    self.finish(n, result, &mut ready);
                }
            }
        }
        if cancelled {
            // Dropping the futures cancels the in-flight async nodes.
            drop(tasks);
            let mut in_flight: Vec<usize> = running.into_iter().collect();
            in_flight.sort_unstable();
            for n in in_flight {
                let error = Error::Cancelled {
                    node: self.shared.s.names[n].to_string(),
                };
                self.finish(n, Err(error), &mut Vec::new());
            }
        }
        let count = |f: fn(&Outcome) -> bool| self.outcomes.iter().filter(|(_, o)| f(o)).count();
        let elapsed = self.started.elapsed();
        let computed = count(|o| matches!(o, Outcome::Computed { .. }));
        let cached = count(|o| matches!(o, Outcome::Cached(_)));
        let failed = count(|o| matches!(o, Outcome::Failed(_)));
        let skipped = count(|o| matches!(o, Outcome::Skipped { .. }));
        self.span.record("computed", computed);
        self.span.record("cached", cached);
        self.span.record("failed", failed);
        self.span.record("skipped", skipped);
        self.span.record("cancelled", cancelled);
        self.shared.events.send(Event::RunFinished {
            run: self.run,
            computed,
            cached,
            failed,
            skipped,
            cancelled,
            elapsed,
        });
        RunReport {
            run: self.run,
            elapsed,
            cancelled,
            names: self.shared.s.names.clone(),
            pipeline: (
                Arc::from(self.shared.s.name.as_str()),
                self.shared.s.graph_id,
            ),
            outcomes: self.outcomes,
            values: self.values,
            queued: self.queued,
            unsaved: Vec::new(),
        }
    }

    /// Values of an upstream node for node inputs: from this run, or (out of scope) its
    /// current result, or failing that a cache hit. `Err(root)` when it failed in this run.
    fn upstream_values(&mut self, up: usize) -> Result<Option<Arc<[Value]>>, usize> {
        if self.in_scope[up] {
            return match self.slots[up] {
                Slot::Done => Ok(self.values[up].clone()),
                Slot::Failed { root } => Err(root as usize),
                _ => unreachable!("in-scope upstream nodes finish first"),
            };
        }
        if !self.provided.contains_key(&up) {
            self.provide(up);
        }
        Ok(self.provided[&up].clone())
    }

    /// Resolves out-of-scope node `top` for `provided`: its current result, or failing that
    /// a cache hit, for which the out-of-scope nodes it reads are resolved first. An explicit
    /// stack, not recursion: a node alone at the end of a 100 000-node chain resolves its
    /// whole ancestry on a small stack.
    fn provide(&mut self, top: usize) {
        // (node, whether what it reads was already pushed)
        let mut stack = vec![(top, false)];
        while let Some((n, expanded)) = stack.pop() {
            if self.provided.contains_key(&n) {
                continue;
            }
            if expanded {
                let values = self.cached_without_running(n);
                self.provided.insert(n, values);
                continue;
            }
            let current = self.shared.state.lock().unwrap()[n]
                .as_ref()
                .map(|r| r.outputs.clone());
            if current.is_some()
                || self.shared.s.nodes[n].spec().config.cache != CachePolicy::Default
            {
                self.provided.insert(n, current);
                continue;
            }
            stack.push((n, true));
            let bindings = self.shared.bindings.lock().unwrap();
            for binding in &bindings[n] {
                if let Binding::Port { node, .. } = binding {
                    if !self.in_scope[*node] && !self.provided.contains_key(node) {
                        stack.push((*node, false));
                    }
                }
            }
        }
    }

    /// A cache hit for an out-of-scope node whose own out-of-scope inputs were resolved
    /// ([`Executor::provide`]).
    fn cached_without_running(&mut self, n: usize) -> Option<Arc<[Value]>> {
        let node = self.shared.s.nodes[n].clone();
        let spec = node.spec();
        if spec.config.cache != CachePolicy::Default {
            return None;
        }
        let prepared = match self.prepare(n) {
            Ok(Ok(p)) => p,
            _ => return None,
        };
        if !prepared.generated.is_empty() {
            return None;
        }
        let types: Vec<_> = spec.outputs.iter().map(|p| p.ty).collect();
        let (values, _) = self.shared.s.cache.lookup(&prepared.key, &types, false)?;
        Some(values)
    }

    /// Gathers a node's inputs and computes its key. `Ok(Err(root))`: an upstream failed.
    fn prepare(&mut self, n: usize) -> Result<Result<Prepared, usize>, Error> {
        let bindings: Vec<Binding> = self.shared.bindings.lock().unwrap()[n].to_vec();
        let node = self.shared.s.nodes[n].clone();
        let spec = node.spec();
        let mut inputs = Vec::with_capacity(bindings.len());
        let mut generated = Vec::new();
        for (port, binding) in bindings.iter().enumerate() {
            let value = match binding {
                Binding::Port { node, port: out } => match self.upstream_values(*node) {
                    Ok(Some(values)) => values[*out].clone(),
                    Ok(None) => {
                        return Err(Error::MissingUpstream {
                            node: spec.name.clone(),
                            port: spec.inputs[port].name.clone(),
                            upstream: self.shared.s.names[*node].to_string(),
                        })
                    }
                    Err(root) => return Ok(Err(root)),
                },
                Binding::Const(v) => v.clone(),
                Binding::Generated(g) => {
                    let v = (g.make)().map_err(|source| Error::Codec {
                        node: spec.name.clone(),
                        port: spec.inputs[port].name.clone(),
                        type_name: spec.inputs[port].ty.name(),
                        source,
                    })?;
                    generated.push((spec.inputs[port].name.clone(), v.clone()));
                    let _ = &g.label;
                    v
                }
                Binding::Unbound => unreachable!("unbound inputs are rejected by build()"),
            };
            inputs.push(value);
        }
        let preimage = preimage_of(spec, spec.code_fingerprint.clone(), &inputs);
        Ok(Ok(Prepared {
            key: preimage.key(),
            preimage,
            inputs,
            generated,
        }))
    }

    fn start(&mut self, n: usize) -> Started {
        // The node's span covers its whole evaluation: gathering inputs and the cache
        // look-ups here, then its task (waiting for a slot, every attempt). Its outcome is
        // recorded when the node ends (`finish`, `skip`).
        let span = tracing::info_span!(
            parent: &self.span,
            "node",
            node = %self.shared.s.names[n],
            attempt = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        self.spans.insert(n, span.clone());
        let _entered = span.enter();
        let prepared = match self.prepare(n) {
            Ok(Ok(p)) => p,
            Ok(Err(root)) => return Started::Skipped(root),
            Err(e) => return Started::Failed(e),
        };
        let node = self.shared.s.nodes[n].clone();
        let spec = node.spec();
        let policy = spec.config.cache;
        let types: Vec<_> = spec.outputs.iter().map(|p| p.ty).collect();
        let cache = self.shared.s.cache.clone();
        // A fingerprint learnt at run time re-keys the node in its task, before any look-up.
        let rekey = match policy {
            CachePolicy::NeverCache => None,
            _ => node
                .runtime_fingerprint()
                .map(|fingerprint| (fingerprint, prepared.preimage.clone())),
        };
        // A forced item's map looks nothing up: its other items are looked up one by one.
        let forced = self.force.and_then(|(f, item)| (f == n).then_some(item));
        let looks_up = policy == CachePolicy::Default && forced.is_none();
        match (looks_up, &rekey) {
            (true, None) => {
                // The workspace's own current result, then memory hits, are settled here
                // without a task: that keeps a fully cached rerun to a hash and a look-up
                // per node.
                if let Some(values) = current_outputs(&self.shared, n, &prepared.key) {
                    self.prepared.insert(n, prepared);
                    return Started::Done(values, Outcome::Cached(CacheSource::Workspace));
                }
                if let Some((values, source)) = cache.lookup(&prepared.key, &types, true) {
                    self.prepared.insert(n, prepared);
                    return Started::Done(values, Outcome::Cached(source));
                }
            }
            (true, Some(_)) => {} // looked up in the task
            _ => cache.count_miss(),
        }
        let key = prepared.key;
        let code = prepared.preimage.code.clone();
        let composite = node.composite().is_some();
        let inputs = Inputs {
            node: self.shared.s.names[n].clone(),
            values: prepared.inputs.clone(),
            names: spec.inputs.iter().map(|p| p.name.clone()).collect(),
        };
        self.prepared.insert(n, prepared);
        let name = self.shared.s.names[n].clone();
        let log = LogBuffer::new(self.run, n, name.clone(), self.shared.events.clone());
        let attempts = Arc::new(Attempts::default());
        self.running.insert(
            n,
            RunningNode {
                log: log.clone(),
                attempts: attempts.clone(),
            },
        );
        let ctx = NodeContext {
            node: name,
            index: n,
            run: self.run,
            cancel: self.cancel.child_token(),
            events: self.shared.events.clone(),
            log,
        };
        let global = self.shared.s.global.clone();
        let group = spec
            .config
            .group
            .as_ref()
            .and_then(|g| self.shared.s.groups.get(g).cloned());
        let shared = self.shared.clone();
        let task_span = span.clone();
        Started::Spawn(Box::pin(
            async move {
                let mut key = key;
                let mut rekeyed = None;
                if let Some((fingerprint, mut preimage)) = rekey {
                    if let Some(code) = fingerprint.await {
                        preimage.code = code;
                        key = preimage.key();
                    }
                    rekeyed = Some((key, preimage));
                    if looks_up {
                        if let Some(values) = current_outputs(&shared, n, &key) {
                            return TaskDone {
                                result: Ok((values, Outcome::Cached(CacheSource::Workspace))),
                                rekeyed,
                                parts: None,
                            };
                        }
                    }
                }
                if looks_up {
                    if let Some((values, source)) = cache.lookup_async(&key, &types).await {
                        return TaskDone {
                            result: Ok((values, Outcome::Cached(source))),
                            rekeyed,
                            parts: None,
                        };
                    }
                }
                if composite {
                    let code = rekeyed
                        .as_ref()
                        .map_or(code, |(_, p): &(CacheKey, KeyPreimage)| p.code.clone());
                    let (result, parts) = super::composite::evaluate(
                        shared, node, code, ctx, inputs, task_span, forced,
                    )
                    .await;
                    return TaskDone {
                        result,
                        rekeyed,
                        parts,
                    };
                }
                // The group's slot first: a node waiting for its group holds none of the
                // pipeline's slots, which unrelated nodes can use meanwhile.
                let _group = match group {
                    Some(g) => Some(
                        g.acquire_owned()
                            .await
                            .expect("semaphores are never closed"),
                    ),
                    None => None,
                };
                let _global = global
                    .acquire_owned()
                    .await
                    .expect("semaphores are never closed");
                TaskDone {
                    result: execute(node, ctx, inputs, attempts, task_span, false).await,
                    rekeyed,
                    parts: None,
                }
            }
            .instrument(span.clone()),
        ))
    }

    fn finish(
        &mut self,
        n: usize,
        result: Result<(Arc<[Value]>, Outcome), Error>,
        ready: &mut Vec<usize>,
    ) {
        let name = self.shared.s.names[n].clone();
        let prepared = self.prepared.remove(&n);
        let running = self.running.remove(&n);
        // What the parts did: as evaluated, or for a node found whole in the cache, what the
        // hit stands for (a choice's selection, a map's items, each a hit as well).
        let evaluated = self.parts.remove(&n);
        let part_by_part = evaluated.is_some();
        let parts = evaluated.or_else(|| {
            let prepared = prepared.as_ref()?;
            let Ok((_, outcome)) = &result else {
                return None;
            };
            super::composite::whole_hit_parts(
                &self.shared,
                n,
                &prepared.inputs,
                &prepared.preimage.code,
                outcome,
            )
        });
        if let Some(parts) = &parts {
            self.queued.extend(parts.queued.iter().map(|key| (n, *key)));
        }
        // A map with failed items, a choice that fell back: not stored under the node's key,
        // so the next run tries the failed parts again.
        let complete = parts.as_ref().is_none_or(|p| p.complete);
        // Dropped at the end of this call: the node's span closes once it is adopted.
        let span = self.spans.remove(&n).unwrap_or_else(tracing::Span::none);
        match result {
            Ok((values, outcome)) => {
                let prepared = prepared.expect("a finished node was prepared");
                let spec = self.shared.s.nodes[n].spec();
                // Taken before the events below: a held-back progress line is sent first.
                let logs = match &outcome {
                    Outcome::Computed { .. } => running.map(|r| shared_logs(r.log.take())),
                    // The same result as before, so the same log.
                    Outcome::Cached(CacheSource::Workspace) => {
                        let state = self.shared.state.lock().unwrap();
                        state[n].as_ref().map(|r| r.logs.clone())
                    }
                    _ => None,
                }
                .unwrap_or_else(|| shared_logs(Logs::default()));
                let stores = match &outcome {
                    Outcome::Computed { .. } => true,
                    // A map whose items were all cache hits: the list itself is new.
                    Outcome::Cached(_) => part_by_part,
                    _ => false,
                };
                if stores && complete && spec.config.cache != CachePolicy::NeverCache {
                    let cache = &self.shared.s.cache;
                    let (key, preimage) = (prepared.key, &prepared.preimage);
                    // A map with a forced item may have a new list under its old key.
                    if self.force.is_some_and(|(f, _)| f == n) {
                        cache.store_replacing(key, preimage, values.clone());
                    } else {
                        cache.store(key, preimage, values.clone(), true);
                    }
                    self.queued.push((n, prepared.key));
                }
                let result = NodeResult {
                    key: prepared.key,
                    inputs: prepared.inputs.iter().map(|v| v.hash()).collect(),
                    generated: prepared.generated,
                    outputs: values.clone(),
                    outcome: outcome.clone(),
                    run: self.run,
                    finished_unix_ms: unix_ms(),
                    logs,
                    parts: parts.map(|p| Arc::new(p.parts)),
                };
                for observer in self.shared.observers.lock().unwrap().iter() {
                    observer.on_result(n, &name, &result);
                }
                {
                    // Both under the state's lock, as `stale_set` reads them.
                    let mut state = self.shared.state.lock().unwrap();
                    state[n] = Some(Current::from(result));
                    self.shared.other_key.lock().unwrap().remove(&n);
                }
                // After the observers and the state: whoever sees the event finds the result
                // current and handed to them (a sheet's flush then covers it).
                match &outcome {
                    Outcome::Cached(source) => self.shared.events.send(Event::NodeCached {
                        run: self.run,
                        node: n,
                        name,
                        source: *source,
                    }),
                    Outcome::Computed { elapsed, .. } => {
                        self.shared.events.send(Event::NodeFinished {
                            run: self.run,
                            node: n,
                            name,
                            elapsed: *elapsed,
                            outputs: values.iter().map(|v| v.hash()).collect(),
                        })
                    }
                    _ => {}
                }
                span.record("outcome", outcome.span_label());
                self.slots[n] = Slot::Done;
                self.values[n] = Some(values);
                self.outcomes.push((n, outcome));
            }
            Err(error) => {
                let cancelled = matches!(error, Error::Cancelled { .. });
                let text = error_chain(&error);
                if let Some(running) = &running {
                    if cancelled {
                        running.log.end("cancelled");
                    } else {
                        running.log.end(format!("failed: {text}"));
                    }
                }
                // Observers only: the cache and the node's current result stay as they were.
                let failure = NodeFailure {
                    run: self.run,
                    cancelled,
                    error: text,
                    attempts: running.as_ref().map_or(0, |r| r.attempts.started()),
                    elapsed: running
                        .as_ref()
                        .map_or(Duration::ZERO, |r| r.attempts.elapsed()),
                    finished_unix_ms: unix_ms(),
                    key: prepared.as_ref().map(|p| p.key),
                    inputs: prepared
                        .as_ref()
                        .map(|p| p.inputs.iter().map(|v| v.hash()).collect())
                        .unwrap_or_default(),
                    generated: prepared.map(|p| p.generated).unwrap_or_default(),
                    logs: shared_logs(running.map(|r| r.log.take()).unwrap_or_default()),
                };
                for observer in self.shared.observers.lock().unwrap().iter() {
                    observer.on_failure(n, &name, &failure);
                }
                // After the observers: whoever sees the event knows the failure was handed
                // to them (a sheet's flush then covers it).
                span.record("error", failure.error.as_str());
                self.shared.events.send(Event::NodeFailed {
                    run: self.run,
                    node: n,
                    name,
                    error: failure.error,
                    elapsed: failure.elapsed,
                });
                let outcome = Outcome::Failed(Arc::new(error));
                span.record("outcome", outcome.span_label());
                self.slots[n] = Slot::Failed { root: n as u32 };
                self.outcomes.push((n, outcome));
            }
        }
        self.release_downstream(n, ready);
    }

    fn skip(&mut self, n: usize, root: usize, ready: &mut Vec<usize>) {
        self.prepared.remove(&n);
        let because = self.shared.s.names[root].clone();
        self.shared.events.send(Event::NodeSkipped {
            run: self.run,
            node: n,
            name: self.shared.s.names[n].clone(),
            because: because.clone(),
        });
        self.slots[n] = Slot::Failed { root: root as u32 };
        let outcome = Outcome::Skipped {
            because: because.to_string(),
        };
        if let Some(span) = self.spans.remove(&n) {
            span.record("outcome", outcome.span_label());
        }
        self.outcomes.push((n, outcome));
        self.release_downstream(n, ready);
    }

    fn release_downstream(&mut self, n: usize, ready: &mut Vec<usize>) {
        for &d in self.shared.s.downstream.of(n) {
            let d = d as usize;
            if self.in_scope[d] {
                let Slot::Waiting(left) = &mut self.slots[d] else {
                    unreachable!("a node in scope waits until its upstream nodes finish")
                };
                *left -= 1;
                if *left == 0 {
                    ready.push(d);
                }
            }
        }
    }
}

/// The outputs of node `n`'s current result if it was made under `key` and the media it
/// names are still in the cache directory (or on their way there). A current result
/// whose blobs were deleted (the cache directory removed while serving) is not reused:
/// its previews would be broken and nothing would repair them; the node runs again.
fn current_outputs(shared: &Shared, n: usize, key: &CacheKey) -> Option<Arc<[Value]>> {
    let values = shared.current_outputs(n, key)?;
    shared.s.cache.blobs_present(key, &values).then_some(values)
}

/// A result's log: one shared allocation for every empty log (most nodes log nothing,
/// and a 100 000-node run would otherwise hold 100 000 empty ones).
fn shared_logs(logs: Logs) -> Arc<Logs> {
    static EMPTY: OnceLock<Arc<Logs>> = OnceLock::new();
    if logs.is_empty() {
        EMPTY.get_or_init(Arc::default).clone()
    } else {
        Arc::new(logs)
    }
}

type NodeFuture = std::pin::Pin<Box<dyn std::future::Future<Output = TaskDone> + Send>>;

/// What the executor keeps of a node while it runs.
struct RunningNode {
    log: LogBuffer,
    attempts: Arc<Attempts>,
}

enum Started {
    Done(Arc<[Value]>, Outcome),
    Failed(Error),
    Skipped(usize),
    Spawn(NodeFuture),
}
