//! Choice (variants): one step with several interchangeable implementations — two Spaces and
//! a local function that do the same job — with the same input and output types, checked by
//! the compiler. One is selected by a value (the choice node's `variant` input, edited like
//! any constant: in a sheet, in the inspector); optionally a failing selection falls back to
//! the next variant. Each variant is keyed and cached as its own node would be, so switching
//! back to a variant that already ran is a cache hit (`exec/composite.rs`).

use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::{constant, ArgTuple, ErasedSource, Graph, IntoSource, IntoSources, TypedNode};
use crate::error::{suggest, BoxError, Error};
use crate::node::composite::{ChoicePlan, Composite, VARIANT_PORT};
use crate::node::{CachePolicy, Inputs, Node, NodeContext, NodeSpec, PortSpec};
use crate::value::Value;

/// Several interchangeable nodes for one step; add it with [`Graph::choose`].
///
/// Every variant takes the same inputs `A` and has the same outputs (handles `H`): a
/// variant of other types does not compile. The first variant is selected unless
/// [`Choice::selected`] says otherwise.
///
/// ```
/// use daggr::{Cache, Choice, FnNode, Graph, Scope};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
/// let mut g = Graph::new("greeting");
/// let name = g.input("name", "Ada".to_string());
/// let greet = Choice::new("greet", "formal", FnNode::sync("formal", |n: String| format!("Good day, {n}.")))
///     .or("casual", FnNode::sync("casual", |n: String| format!("hey {n}")))
///     .selected("casual");
/// let greeting = g.choose(greet, (name,));
/// # let g = g.cache(Cache::temporary()?);
/// let pipeline = g.build()?;
/// let report = pipeline.run(Scope::All).await?;
/// assert_eq!(*report.value(&greeting)?, "hey Ada");
/// // The selection is the node's `variant` input, a constant like any other.
/// pipeline.select_variant("greet", "formal")?;
/// let report = pipeline.run(Scope::All).await?;
/// assert_eq!(*report.value(&greeting)?, "Good day, Ada.");
/// # Ok(()) }
/// ```
pub struct Choice<A, H> {
    name: String,
    variants: Vec<(String, Arc<dyn Node>)>,
    selected: Option<String>,
    fallback: bool,
    handles: fn(usize) -> H,
    _args: PhantomData<fn(A)>,
}

impl<A: ArgTuple, H> Choice<A, H> {
    /// A choice node named `name` whose first variant is `node`, called `variant`.
    pub fn new<N>(name: impl Into<String>, variant: impl Into<String>, node: N) -> Self
    where
        N: TypedNode<Args = A, Handles = H>,
    {
        Choice {
            name: name.into(),
            variants: vec![(variant.into(), Arc::new(node) as Arc<dyn Node>)],
            selected: None,
            fallback: false,
            handles: N::handles,
            _args: PhantomData,
        }
    }

    /// Adds a variant called `variant`: `node` takes the same inputs and has the same outputs.
    pub fn or<N>(mut self, variant: impl Into<String>, node: N) -> Self
    where
        N: TypedNode<Args = A, Handles = H>,
    {
        self.variants.push((variant.into(), Arc::new(node)));
        self
    }

    /// Selects the variant called `variant` (default: the first). The selection is the
    /// choice node's `variant` input, so a sheet or the inspector can change it.
    pub fn selected(mut self, variant: impl Into<String>) -> Self {
        self.selected = Some(variant.into());
        self
    }

    /// When the selected variant fails, tries the others in the order they were added (a
    /// Space that is down → the next one). The result records which variant produced it and
    /// which failed before it.
    pub fn fallback(mut self) -> Self {
        self.fallback = true;
        self
    }
}

/// The node a choice adds to the graph.
pub(crate) struct ChoiceNode {
    spec: NodeSpec,
    composite: Composite,
}

impl ChoiceNode {
    fn plan(&self) -> &ChoicePlan {
        match &self.composite {
            Composite::Choice(plan) => plan,
            Composite::Map(_) => unreachable!("a choice node holds a choice plan"),
        }
    }
}

impl Node for ChoiceNode {
    fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    fn composite(&self) -> Option<&Composite> {
        Some(&self.composite)
    }

    /// Every variant is checked. Without fallback each must pass; with fallback one that
    /// passes is enough (the others' failures are what fallback is for).
    fn preflight(&self) -> Option<BoxFuture<'static, Result<(), Error>>> {
        let plan = self.plan();
        let checks: Vec<_> = plan
            .variants
            .iter()
            .filter_map(|(_, node)| node.preflight())
            .collect();
        if checks.is_empty() {
            return None;
        }
        let unchecked = checks.len() < plan.variants.len();
        let fallback = plan.fallback;
        Some(Box::pin(async move {
            let results = futures::future::join_all(checks).await;
            if fallback && (unchecked || results.iter().any(Result::is_ok)) {
                return Ok(());
            }
            results.into_iter().collect()
        }))
    }

    /// Every variant's code as learnt at run time (a Space's revision), joined as the spec's
    /// fingerprint is, so that an updated variant is not served its old result.
    fn runtime_fingerprint(&self) -> Option<BoxFuture<'static, Option<String>>> {
        let variants = &self.plan().variants;
        if variants
            .iter()
            .all(|(_, n)| n.runtime_fingerprint().is_none())
        {
            return None;
        }
        let parts: Vec<_> = variants
            .iter()
            .map(|(_, n)| (n.runtime_fingerprint(), n.spec().code_fingerprint.clone()))
            .collect();
        Some(Box::pin(async move {
            let mut codes = Vec::with_capacity(parts.len());
            for (learnt, fixed) in parts {
                let learnt = match learnt {
                    Some(f) => f.await,
                    None => None,
                };
                codes.push(learnt.unwrap_or(fixed));
            }
            Some(codes.join(" | "))
        }))
    }

    /// The executor evaluates a choice variant by variant, each cached; called directly,
    /// the selected variant runs uncached (and the others after it, with fallback).
    fn run(
        &self,
        ctx: NodeContext,
        inputs: Inputs,
    ) -> BoxFuture<'static, Result<Vec<Value>, BoxError>> {
        let plan = self.plan();
        let order = plan.order(&self.spec, inputs.values.last());
        let variants = plan.variants.clone();
        let node = self.spec.name.clone();
        let mut values = inputs.values;
        values.pop();
        Box::pin(async move {
            let mut tried = Vec::new();
            for index in order? {
                let (name, variant) = &variants[index];
                let inputs = Inputs {
                    node: ctx.node.clone(),
                    values: values.clone(),
                    names: variant
                        .spec()
                        .inputs
                        .iter()
                        .map(|p| p.name.clone())
                        .collect(),
                };
                match variant.run(ctx.clone(), inputs).await {
                    Ok(out) => return Ok(out),
                    Err(e) => tried.push((name.clone(), crate::error::error_chain(&*e))),
                }
            }
            Err(Error::VariantsFailed { node, tried }.into())
        })
    }
}

impl ChoicePlan {
    /// The variants to try, by index: the one `selection` names, then (with fallback) the
    /// others in declaration order. An unknown name is an error naming the variants.
    pub(crate) fn order(
        &self,
        spec: &NodeSpec,
        selection: Option<&Value>,
    ) -> Result<Vec<usize>, Error> {
        let selected = selection
            .and_then(|v| v.downcast_ref::<String>())
            .cloned()
            .unwrap_or_default();
        let Some(first) = self.variants.iter().position(|(n, _)| *n == selected) else {
            let names = self.variants.iter().map(|(n, _)| n.as_str());
            return Err(Error::UnknownVariant {
                node: spec.name.clone(),
                suggestion: suggest(&selected, names.clone()),
                available: names.map(str::to_string).collect(),
                variant: selected,
            });
        };
        let mut order = vec![first];
        if self.fallback {
            order.extend((0..self.variants.len()).filter(|&i| i != first));
        }
        Ok(order)
    }
}

impl Graph {
    /// Adds a choice node ([`Choice`]) wired from `sources` (one per input of the variants);
    /// returns the handles of its outputs, typed as each variant's.
    ///
    /// Its last input, `variant` (a `String`), selects the variant: a constant that a sheet,
    /// the inspector or [`Pipeline::set_constant_value`](crate::Pipeline::set_constant_value)
    /// can change. An unknown name fails the node, naming the variants.
    #[track_caller]
    pub fn choose<A: ArgTuple, H>(
        &mut self,
        choice: Choice<A, H>,
        sources: impl IntoSources<A>,
    ) -> H {
        let Choice {
            name,
            variants,
            selected,
            fallback,
            handles,
            ..
        } = choice;
        let first = variants[0].1.spec();
        let mut inputs = first.inputs.clone();
        inputs.push(PortSpec::new::<String>(VARIANT_PORT));
        let mut problems = Vec::new();
        if first.inputs.iter().any(|p| p.name == VARIANT_PORT) {
            problems.push(format!(
                "its variants have an input named `{VARIANT_PORT}`, the name of the port that selects the variant: rename that input"
            ));
        }
        let mut names: Vec<&str> = Vec::new();
        for (variant, _) in &variants {
            if names.contains(&variant.as_str()) {
                problems.push(format!(
                    "variant `{variant}` is added twice: every variant needs its own name"
                ));
            }
            names.push(variant);
        }
        let selected = selected.unwrap_or_else(|| variants[0].0.clone());
        if !names.contains(&selected.as_str()) {
            problems.push(format!(
                "the selected variant `{selected}` is not one of its variants{} (its variants: {})",
                crate::error::did_you_mean(&suggest(&selected, names.iter().copied())),
                names.join(", ")
            ));
        }
        for message in problems {
            self.problems.push(Error::Failed {
                node: name.clone(),
                message: format!("choice `{name}`: {message}"),
            });
        }
        let spec = NodeSpec {
            name,
            kind: "choice",
            identity: variants
                .iter()
                .map(|(v, n)| format!("{v}={}:{}", n.spec().kind, n.spec().identity))
                .collect::<Vec<_>>()
                .join(" | "),
            code_fingerprint: variants
                .iter()
                .map(|(_, n)| n.spec().code_fingerprint.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
            params: serde_json::json!({
                "variants": variants
                    .iter()
                    .map(|(v, n)| (v.clone(), n.spec().params.clone()))
                    .collect::<serde_json::Map<_, _>>(),
                "versions": variants
                    .iter()
                    .map(|(v, n)| (v.clone(), serde_json::json!(n.spec().config.version)))
                    .collect::<serde_json::Map<_, _>>(),
                "fallback": fallback,
            }),
            inputs,
            outputs: first.outputs.clone(),
            config: crate::node::NodeConfig {
                // A variant that must not be cached (or must run each time) keeps the whole
                // choice out of the cache; each variant still follows its own policy.
                cache: if variants
                    .iter()
                    .all(|(_, n)| n.spec().config.cache == CachePolicy::Default)
                {
                    CachePolicy::Default
                } else {
                    CachePolicy::NeverCache
                },
                ..Default::default()
            },
        };
        let mut sources: Vec<ErasedSource> = sources.into_bindings();
        let selection = constant(selected).into_source();
        sources.push(ErasedSource {
            binding: selection.binding,
            graph: selection.graph,
        });
        let node = ChoiceNode {
            spec,
            composite: Composite::Choice(ChoicePlan { variants, fallback }),
        };
        let id = self.add_erased(Arc::new(node), sources);
        self.stamped(|| handles(id))
    }
}
