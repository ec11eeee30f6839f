//! Nodes made of other nodes, evaluated part by part ([`Composite`]): a map's items and a
//! choice's variants. Each part is keyed exactly as its node would be on its own (its
//! identity, code, parameters and the part's input hashes), looked up in the cache, and run
//! under the pipeline's concurrency limits with its node's group, timeout and retries. The
//! map node itself holds no concurrency slot while its items wait for theirs.
//!
//! One item of a map can be computed again on request ([`Scope::Item`]): it bypasses its
//! cache entry, which its new result replaces; the other items are looked up as usual.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};

use super::attempt::{execute, preimage_of, Attempts};
use super::report::{ItemOutcome, Parts};
use super::state::Shared;
#[cfg(doc)]
use super::Scope;
use super::{NodeRef, Outcome, Pipeline};
use crate::cache::{CacheKey, KeyPreimage};
use crate::error::{error_chain, Error};
use crate::graph::Binding;
use crate::node::composite::{ChoicePlan, Composite, ItemError, ItemFailures, MapPlan};
use crate::node::event::{CacheSource, Event};
use crate::node::{CachePolicy, Inputs, Node, NodeContext, NodeSpec};
use crate::value::Value;

/// What evaluating a composite node left besides its result.
pub(super) struct PartsDone {
    /// What each part did.
    pub(super) parts: Parts,
    /// Keys of the parts' results queued for the cache (for the run's report).
    pub(super) queued: Vec<CacheKey>,
    /// Whether the whole result may be stored under the node's own key: not when an item
    /// failed or a choice fell back (a later run should try those parts again).
    pub(super) complete: bool,
}

/// Evaluates composite node `node` on `inputs` (the map's lists, or the choice's inputs and
/// selection). `code` is the fingerprint the node was keyed with (learnt at run time, for a
/// map of remote nodes). `force`: the item of a map to compute whatever the cache holds.
pub(super) async fn evaluate(
    shared: Arc<Shared>,
    node: Arc<dyn Node>,
    code: String,
    ctx: NodeContext,
    inputs: Inputs,
    span: tracing::Span,
    force: Option<usize>,
) -> (Result<(Arc<[Value]>, Outcome), Error>, Option<PartsDone>) {
    let started = std::time::Instant::now();
    let spec = node.spec();
    ctx.events.send(Event::NodeStarted {
        run: ctx.run,
        node: ctx.index,
        name: ctx.node.clone(),
        attempt: 1,
    });
    match node.composite() {
        Some(Composite::Map(plan)) => {
            let (result, done) =
                map(&shared, plan, spec, code, &ctx, inputs.values, span, force).await;
            // No item ran (all were cache hits): the map did not compute either.
            let cached = done.as_ref().and_then(|d| match &d.parts {
                Parts::Items(items) => items
                    .iter()
                    .map(|i| match i.outcome {
                        Outcome::Cached(source) => Some(source),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .and_then(|sources| {
                        // The farthest source says the most about where the result was.
                        let far = sources.iter().copied().find(|s| *s != CacheSource::Memory);
                        far.or_else(|| sources.first().copied())
                    }),
                Parts::Variant { .. } => None,
            });
            let result = result.map(|value| {
                let outcome = match cached {
                    Some(source) => Outcome::Cached(source),
                    None => Outcome::Computed {
                        elapsed: started.elapsed(),
                        attempts: 1,
                    },
                };
                (Arc::from(vec![value]), outcome)
            });
            (result, done)
        }
        Some(Composite::Choice(plan)) => {
            let (result, done) = choice(&shared, plan, spec, &ctx, inputs.values, span).await;
            (result, done)
        }
        _ => (
            Err(Error::NodeFailed {
                node: spec.name.clone(),
                source: "is not a node made of other nodes".into(),
            }),
            None,
        ),
    }
}

/// What the parts of composite node `n` did when the node itself was found whole in the
/// cache (`outcome`) for `inputs`, keyed with `code`: a choice's selection produced it, and
/// each of a map's items was a hit too (only a map whose items all succeeded is stored
/// under its own key). `None` for other nodes, and when a map's lists do not split.
pub(super) fn whole_hit_parts(
    shared: &Shared,
    n: usize,
    inputs: &[Value],
    code: &str,
    outcome: &Outcome,
) -> Option<PartsDone> {
    let node = &shared.s.nodes[n];
    let parts = match node.composite()? {
        Composite::Choice(_) => Parts::Variant {
            used: inputs.last()?.downcast_ref::<String>()?.clone(),
            failed: Vec::new(),
        },
        Composite::Map(plan) => {
            let Outcome::Cached(source) = outcome else {
                return None;
            };
            // The workspace's own result: its items have the keys it recorded. Otherwise
            // each item's key is made again from its inputs.
            let recorded: Option<Vec<CacheKey>> = match source {
                CacheSource::Workspace => shared.state.lock().unwrap()[n].as_ref().and_then(|r| {
                    match r.parts.as_deref() {
                        Some(Parts::Items(items)) => Some(items.iter().map(|i| i.key).collect()),
                        _ => None,
                    }
                }),
                _ => None,
            };
            let keys = match recorded {
                Some(keys) => keys,
                None => {
                    let item = plan.item_node().spec();
                    plan.split_items(node.spec(), inputs)
                        .ok()?
                        .iter()
                        .map(|values| preimage_of(item, code.to_string(), values).key())
                        .collect()
                }
            };
            Parts::Items(
                keys.into_iter()
                    .map(|key| ItemOutcome {
                        key,
                        outcome: Outcome::Cached(*source),
                    })
                    .collect(),
            )
        }
    };
    Some(PartsDone {
        parts,
        queued: Vec::new(),
        complete: true,
    })
}

/// The error for item `item` of map `spec` when it has `count` items.
fn no_such_item(spec: &NodeSpec, item: usize, count: usize) -> Error {
    let range = match count {
        0 => "none".to_string(),
        1 => "only item 0".to_string(),
        _ => format!("items 0 to {}", count - 1),
    };
    Error::Failed {
        node: spec.name.clone(),
        message: format!(
            "map `{}` has {count} item{} ({range}): there is no item {item}",
            spec.name,
            if count == 1 { "" } else { "s" }
        ),
    }
}

impl Pipeline {
    /// Checks that `item` (numbered from 0) is an item of map node `node`, as a run of
    /// [`Scope::Item`] does before it starts. A node that is not a map, or an item past the
    /// end of the lists the map has now (its constants and its upstream nodes' current
    /// results), is an error naming the node and how many items it has. When a list is not
    /// known yet (its upstream node has no result), the run itself checks, and fails the map
    /// with the same error.
    pub fn check_item(&self, node: impl Into<NodeRef>, item: usize) -> Result<(), Error> {
        let n = self.resolve(&node.into())?;
        let node = &self.0.s.nodes[n];
        let spec = node.spec();
        let Some(Composite::Map(plan)) = node.composite() else {
            return Err(Error::Failed {
                node: spec.name.clone(),
                message: format!(
                    "node `{}` has no items to run: it is not a map (made with `Graph::map`)",
                    spec.name
                ),
            });
        };
        match self.item_count(n, plan) {
            Some(count) if item >= count => Err(no_such_item(spec, item, count)),
            _ => Ok(()),
        }
    }

    /// How many items map node `n` has with its current inputs: the length of its first
    /// list (zipped lists have one length, or the run fails). `None` when that list is not
    /// known before a run.
    fn item_count(&self, n: usize, plan: &MapPlan) -> Option<usize> {
        let port = (0..self.0.s.nodes[n].spec().inputs.len()).find(|&p| plan.is_mapped(p))?;
        let split = plan.split[port]?;
        let binding = self.0.bindings.lock().unwrap()[n][port].clone();
        let list = match binding {
            Binding::Const(value) => value,
            Binding::Port { node, port } => {
                self.0.state.lock().unwrap()[node].as_ref()?.outputs[port].clone()
            }
            Binding::Generated(_) | Binding::Unbound => return None,
        };
        split(&list).ok().map(|items| items.len())
    }
}

/// One part's evaluation: its key, and its outputs and outcome (or error).
struct PartDone {
    key: CacheKey,
    result: Result<(Arc<[Value]>, Outcome), Error>,
    queued: bool,
}

/// Evaluates `part` on `values` (keyed by `preimage`): a cache hit, or a run under the
/// concurrency limits (then its result is stored, unless its policy says not to). A `forced`
/// part is not looked up, and its result replaces what the cache held under its key.
async fn run_part(
    shared: &Shared,
    part: &Arc<dyn Node>,
    preimage: KeyPreimage,
    ctx: NodeContext,
    values: Vec<Value>,
    span: tracing::Span,
    forced: bool,
) -> PartDone {
    let spec = part.spec();
    let key = preimage.key();
    let cache = &shared.s.cache;
    let policy = spec.config.cache;
    if policy == CachePolicy::Default && !forced {
        let types: Vec<_> = spec.outputs.iter().map(|p| p.ty).collect();
        if let Some((values, source)) = cache.lookup_async(&key, &types).await {
            return PartDone {
                key,
                result: Ok((values, Outcome::Cached(source))),
                queued: false,
            };
        }
    } else {
        cache.count_miss();
    }
    // The group's slot first: a part waiting for its group holds no slot of the pipeline's
    // that unrelated nodes could use.
    let _group = match spec
        .config
        .group
        .as_ref()
        .and_then(|g| shared.s.groups.get(g))
    {
        Some(g) => Some(
            g.clone()
                .acquire_owned()
                .await
                .expect("semaphores are never closed"),
        ),
        None => None,
    };
    let _global = shared
        .s
        .global
        .clone()
        .acquire_owned()
        .await
        .expect("semaphores are never closed");
    let inputs = Inputs {
        node: ctx.node.clone(),
        values,
        names: spec.inputs.iter().map(|p| p.name.clone()).collect(),
    };
    let result = execute(
        part.clone(),
        ctx,
        inputs,
        Arc::new(Attempts::default()),
        span,
        true,
    )
    .await;
    let mut queued = false;
    if let Ok((values, Outcome::Computed { .. })) = &result {
        if policy != CachePolicy::NeverCache {
            if forced {
                cache.store_replacing(key, &preimage, values.clone());
            } else {
                cache.store(key, &preimage, values.clone(), true);
            }
            queued = true;
        }
    }
    PartDone {
        key,
        result,
        queued,
    }
}

/// The fingerprint `part` is keyed with: learnt at run time when the node learns it then.
async fn part_code(part: &Arc<dyn Node>) -> String {
    match part.runtime_fingerprint() {
        Some(learnt) => learnt.await,
        None => None,
    }
    .unwrap_or_else(|| part.spec().code_fingerprint.clone())
}

#[allow(clippy::too_many_arguments)] // the evaluation's context, passed down once
async fn map(
    shared: &Shared,
    plan: &MapPlan,
    spec: &NodeSpec,
    code: String,
    ctx: &NodeContext,
    values: Vec<Value>,
    span: tracing::Span,
    force: Option<usize>,
) -> (Result<Value, Error>, Option<PartsDone>) {
    let items = match plan.split_items(spec, &values) {
        Ok(items) => items,
        Err(e) => return (Err(e), None),
    };
    let total = items.len();
    // Checked before the run too (`Pipeline::check_item`), but the lists may have been
    // unknown then (an upstream node without a result).
    if let Some(item) = force.filter(|&item| item >= total) {
        return (Err(no_such_item(spec, item, total)), None);
    }
    let item = plan.item_node();
    // Items with the same inputs have the same key: each distinct key runs once, and its
    // result goes to every item that has it.
    let mut first_of: std::collections::HashMap<CacheKey, usize> = Default::default();
    let mut same_as: Vec<usize> = Vec::with_capacity(total);
    let mut distinct = Vec::new();
    for (index, values) in items.into_iter().enumerate() {
        let preimage = preimage_of(item.spec(), code.clone(), &values);
        let first = *first_of.entry(preimage.key()).or_insert(index);
        same_as.push(first);
        if first == index {
            distinct.push((index, preimage, values));
        }
    }
    // The forced item's key: the first item that has it runs for all that have it.
    let forced = force.map(|item| same_as[item]);
    let mut pending: FuturesUnordered<_> = distinct
        .into_iter()
        .map(|(index, preimage, values)| {
            let (ctx, span) = (ctx.clone(), span.clone());
            let force = forced == Some(index);
            async move {
                let done = run_part(shared, item, preimage, ctx, values, span, force).await;
                (index, done)
            }
        })
        .collect();
    let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; total];
    let mut results: Vec<Option<Result<Value, ItemError>>> = vec![None; total];
    let mut queued = Vec::new();
    let mut finished = 0;
    while let Some((first, done)) = pending.next().await {
        if done.queued {
            queued.push(done.key);
        }
        let (outcome, value, error) = match done.result {
            Ok((values, outcome)) => match values.first().cloned() {
                Some(value) => (outcome, Some(value), None),
                None => {
                    let e = Error::NodeFailed {
                        node: spec.name.clone(),
                        source: "an item returned no output".into(),
                    };
                    let text = error_chain(&e);
                    (Outcome::Failed(Arc::new(e)), None, Some(text))
                }
            },
            Err(e) => {
                let text = error_chain(&e);
                (Outcome::Failed(Arc::new(e)), None, Some(text))
            }
        };
        for index in (first..total).filter(|&i| same_as[i] == first) {
            finished += 1;
            let result = match (&value, &error) {
                (Some(value), None) => Ok(value.clone()),
                _ => Err(ItemError {
                    index,
                    error: error.clone().unwrap_or_default(),
                }),
            };
            ctx.events.send(Event::ItemFinished {
                run: ctx.run,
                node: ctx.index,
                name: ctx.node.clone(),
                item: index,
                total,
                outcome: outcome.span_label(),
                error: error.clone(),
            });
            if let Some(error) = &error {
                ctx.log(format!("item {index} failed: {error}"));
            }
            outcomes[index] = Some(ItemOutcome {
                key: done.key,
                outcome: outcome.clone(),
            });
            results[index] = Some(result);
        }
        ctx.progress(
            Some(finished as f32 / total as f32),
            format!("{finished} of {total} items"),
        );
    }
    let results: Vec<Result<Value, ItemError>> = results.into_iter().flatten().collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    let done = PartsDone {
        parts: Parts::Items(outcomes.into_iter().flatten().collect()),
        queued,
        complete: failed == 0,
    };
    if failed > 0 && plan.failures() == ItemFailures::Skip {
        ctx.log(format!("{failed} of {total} items failed and are left out"));
    }
    (plan.gather_items(spec, results), Some(done))
}

async fn choice(
    shared: &Shared,
    plan: &ChoicePlan,
    spec: &NodeSpec,
    ctx: &NodeContext,
    mut values: Vec<Value>,
    span: tracing::Span,
) -> (Result<(Arc<[Value]>, Outcome), Error>, Option<PartsDone>) {
    let order = match plan.order(spec, values.last()) {
        Ok(order) => order,
        Err(e) => return (Err(e), None),
    };
    values.pop(); // the selection: not an input of the variants
    let variants: Vec<_> = plan.variants().collect();
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut queued = Vec::new();
    for (position, index) in order.iter().enumerate() {
        let (name, variant) = variants[*index];
        let preimage = preimage_of(variant.spec(), part_code(variant).await, &values);
        let done = run_part(
            shared,
            variant,
            preimage,
            ctx.clone(),
            values.clone(),
            span.clone(),
            false,
        )
        .await;
        if done.queued {
            queued.push(done.key);
        }
        match done.result {
            Ok((values, outcome)) => {
                if !failed.is_empty() {
                    ctx.log(format!(
                        "variant `{name}` answered after {} failed",
                        failed.len()
                    ));
                }
                let complete = failed.is_empty();
                let done = PartsDone {
                    parts: Parts::Variant {
                        used: name.to_string(),
                        failed,
                    },
                    queued,
                    complete,
                };
                return (Ok((values, outcome)), Some(done));
            }
            Err(Error::Cancelled { node }) => return (Err(Error::Cancelled { node }), None),
            Err(error) => {
                let text = error_chain(&error);
                if let Some(next) = order.get(position + 1) {
                    ctx.log(format!(
                        "variant `{name}` failed, trying `{}`: {text}",
                        variants[*next].0
                    ));
                }
                failed.push((name.to_string(), text));
            }
        }
    }
    (
        Err(Error::VariantsFailed {
            node: spec.name.clone(),
            tried: failed,
        }),
        None,
    )
}
