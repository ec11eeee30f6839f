//! Nodes made of other nodes, evaluated part by part ([`Composite`]): a map's items and a
//! choice's variants. Each part is keyed exactly as its node would be on its own (its
//! identity, code, parameters and the part's input hashes), looked up in the cache, and run
//! under the pipeline's concurrency limits with its node's group, timeout and retries. The
//! map node itself holds no concurrency slot while its items wait for theirs.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};

use super::attempt::{execute, preimage_of, Attempts};
use super::report::{ItemOutcome, Parts};
use super::state::Shared;
use super::Outcome;
use crate::cache::{CacheKey, KeyPreimage};
use crate::error::{error_chain, Error};
use crate::node::composite::{ChoicePlan, Composite, ItemError, ItemFailures, MapPlan};
use crate::node::event::{CacheSource, Event};
use crate::node::{CachePolicy, Inputs, Node, NodeContext};
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
/// map of remote nodes).
pub(super) async fn evaluate(
    shared: Arc<Shared>,
    node: Arc<dyn Node>,
    code: String,
    ctx: NodeContext,
    inputs: Inputs,
    span: tracing::Span,
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
            let (result, done) = map(&shared, plan, spec, code, &ctx, inputs.values, span).await;
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

/// The variant a choice node's inputs select (`None` for other nodes).
pub(super) fn selection_of(node: &dyn Node, inputs: &[Value]) -> Option<String> {
    match node.composite() {
        Some(Composite::Choice(_)) => inputs.last()?.downcast_ref::<String>().cloned(),
        _ => None,
    }
}

/// One part's evaluation: its key, and its outputs and outcome (or error).
struct PartDone {
    key: CacheKey,
    result: Result<(Arc<[Value]>, Outcome), Error>,
    queued: bool,
}

/// Evaluates `part` on `values` (keyed by `preimage`): a cache hit, or a run under the
/// concurrency limits (then its result is stored, unless its policy says not to).
async fn run_part(
    shared: &Shared,
    part: &Arc<dyn Node>,
    preimage: KeyPreimage,
    ctx: NodeContext,
    values: Vec<Value>,
    span: tracing::Span,
) -> PartDone {
    let spec = part.spec();
    let key = preimage.key();
    let cache = &shared.s.cache;
    let policy = spec.config.cache;
    if policy == CachePolicy::Default {
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
            cache.store(key, &preimage, values.clone(), true);
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

async fn map(
    shared: &Shared,
    plan: &MapPlan,
    spec: &crate::node::NodeSpec,
    code: String,
    ctx: &NodeContext,
    values: Vec<Value>,
    span: tracing::Span,
) -> (Result<Value, Error>, Option<PartsDone>) {
    let items = match plan.split_items(spec, &values) {
        Ok(items) => items,
        Err(e) => return (Err(e), None),
    };
    let total = items.len();
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
    let mut pending: FuturesUnordered<_> = distinct
        .into_iter()
        .map(|(index, preimage, values)| {
            let (ctx, span) = (ctx.clone(), span.clone());
            async move {
                let done = run_part(shared, item, preimage, ctx, values, span).await;
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
    spec: &crate::node::NodeSpec,
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
