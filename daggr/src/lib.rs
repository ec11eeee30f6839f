//! # daggr
//!
//! Typed, cached, inspectable pipelines of ML apps and Rust functions.
//!
//! A [`Graph`] holds nodes whose ports are typed: adding a node returns an
//! [`Output<T>`], and an input accepts only an output of the same `T`, so a
//! mis-wired pipeline does not compile. [`Graph::build`] validates the graph and
//! returns a [`Pipeline`], which runs independent nodes concurrently on tokio and
//! caches every result in a content-addressed store ([`Cache`]): a node whose
//! code, parameters and input contents are unchanged never runs twice, and a
//! rerun that produces byte-identical output stops invalidation there.
//!
//! ```
//! use daggr::{FnNode, Graph, Scope};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
//! let mut g = Graph::new("example");
//! let text = g.input("text", "hello daggr".to_string());
//! let words = g.add(FnNode::sync("count_words", |t: String| t.split_whitespace().count()), (text,));
//! # let g = g.cache(daggr::Cache::temporary()?);
//! let pipeline = g.build()?;
//! let report = pipeline.run(Scope::All).await?;
//! assert_eq!(*report.value(&words)?, 2);
//! # Ok(()) }
//! ```
//!
//! ## Cargo features
//!
//! All on by default. With `default-features = false`, Rust function nodes (`#[fn_node]`,
//! [`pipeline!`], the builder API) and the disk cache remain, without an HTTP client, an
//! HTTP server or SQLite.
//!
//! - `gradio`: Gradio apps as nodes (`GradioNode`); an HTTP client (reqwest, rustls).
//! - `inference`: inference endpoints as nodes (`InferenceNode`); the same client.
//! - `sheets`: named input sets and run history in SQLite (`daggr::sheet`).
//! - `inspector` (implies `sheets`): the local web UI (`launch()`); an HTTP server (axum).
//!   Without it, `launch()` returns [`Error::FeatureDisabled`].

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The docs link the remote kinds (`GradioNode`, `InferenceNode`) where they fit; a build
// without them has nothing to link to (the default build's docs are checked for broken links).
#![cfg_attr(
    not(all(feature = "gradio", feature = "inference")),
    allow(rustdoc::broken_intra_doc_links)
)]

extern crate self as daggr;

// The layers, bottom to top: `error`; `value` (values and media); `cache`; `node` (the node
// contract and its events); `graph`; `exec` (the executor, a pipeline's workspace); `kinds`
// (fn, gradio, inference, hf, http); `sheet`; `inspector`. A module names only layers below
// its own (checked by daggr/tests/layers.rs).
pub mod cache;
mod error;
mod exec;
mod graph;
#[cfg(feature = "inspector")]
#[cfg_attr(docsrs, doc(cfg(feature = "inspector")))]
pub mod inspector;
mod kinds;
mod macro_support;
mod node;
#[cfg(feature = "sheets")]
#[cfg_attr(docsrs, doc(cfg(feature = "sheets")))]
pub mod sheet;
mod value;

#[cfg(feature = "gradio")]
#[cfg_attr(docsrs, doc(cfg(feature = "gradio")))]
pub use kinds::gradio;
#[cfg(any(feature = "gradio", feature = "inference"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "gradio", feature = "inference"))))]
pub use kinds::hf;
#[cfg(feature = "inference")]
#[cfg_attr(docsrs, doc(cfg(feature = "inference")))]
pub use kinds::inference;
pub use node::composite;
pub use node::event;
/// The HTTP client crate of the remote node kinds, re-exported so that a client handed to
/// `GradioNode::http_client` or `InferenceNode::http_client` (a proxy, a custom CA) is built
/// with the same version.
#[cfg(any(feature = "gradio", feature = "inference"))]
pub use reqwest;
pub use value::media;

pub use cache::{Cache, CacheKey, KeyPreimage};
pub use error::{BoxError, Error};
pub use event::{CacheSource, Event};
pub use exec::alone::run_alone;
pub use exec::{
    ItemOutcome, NodeFailure, NodeRef, NodeResult, Outcome, Parts, PersistTarget, Pipeline,
    ResultObserver, RunHandle, RunReport, Scope, TerminalProgress, Unsaved, RUN_BATCH_ENV, RUN_ENV,
    RUN_INPUTS_ENV, RUN_SHEET_ENV, SERVE_API_ONLY_ENV, SERVE_ENV, SERVE_TOKEN_ENV,
};
#[cfg(feature = "gradio")]
#[cfg_attr(docsrs, doc(cfg(feature = "gradio")))]
pub use gradio::GradioNode;
pub use graph::{
    constant, each, generated, now_unix_ms, random_seed, ArgTuple, Choice, Each, Gather, Generator,
    Graph, InputGroup, IntoMapSources, IntoSource, IntoSources, Map, MapSource, NamedOutput,
    NodeId, OneOutputPort, Output, Results, Source, TypedNode, Values, EXPORT_GRAPH_ENV,
    INPUT_KIND,
};
#[cfg(feature = "inference")]
#[cfg_attr(docsrs, doc(cfg(feature = "inference")))]
pub use inference::InferenceNode;
pub use kinds::fn_node::{AsyncCtxFn, AsyncFn, FnNode, NodeCore, SyncCtxFn, SyncFn};
pub use media::{Audio, File, Image, Video};
pub use node::composite::{ItemError, ItemFailures};
pub use node::{
    CachePolicy, Configure, InputHint, Inputs, Node, NodeConfig, NodeContext, NodeSpec, PortSpec,
    RetryPolicy,
};
pub use value::{ContentHash, PortType, PortValue, Value};

/// Turns a function into a typed node whose inputs are its parameters and whose
/// outputs are its return value; the function stays callable as itself.
///
/// ```
/// use daggr::{fn_node, Graph, Scope};
///
/// #[fn_node]
/// fn shout(text: String, times: u32) -> String {
///     vec![text.to_uppercase(); times as usize].join(" ")
/// }
///
/// #[fn_node(outputs(words, chars), version = "2")]
/// fn count(text: String) -> (usize, usize) {
///     (text.split_whitespace().count(), text.chars().count())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
/// assert_eq!(shout("hi".into(), 2), "HI HI"); // still a plain function
/// let mut g = Graph::new("doc");
/// let text = g.input("text", "hello there".to_string());
/// let loud = g.add(ShoutNode::new(), ShoutNode::inputs().text(text).times(daggr::constant(2)).finish());
/// let counts = g.add(CountNode::new(), (loud.output,));
/// # let dir = tempfile::tempdir().unwrap();
/// # let g = g.cache(daggr::Cache::open(dir.path())?);
/// let report = g.build()?.run(Scope::All).await?;
/// assert_eq!(*report.value(&counts.words)?, 4);
/// # Ok(()) }
/// ```
///
/// Options: `name = "…"` (default node name), `version = "…"` (manual cache bump),
/// `cache = "default" | "always" | "never"`, `group = "…"` (concurrency group),
/// `timeout = "30s"`, `retries = 3`, `outputs(a, b)` (names for a returned tuple's
/// elements), `fields` (a returned struct's fields are the ports; see [`Outputs`]),
/// `inline` (run a cheap sync function on the scheduler thread).
/// A function returning `Result<T, E>` fails the node on `Err`. The function's
/// tokens are hashed into the cache key, so editing its body invalidates its results.
pub use daggr_macros::fn_node;

/// Declares a pipeline type from `#[fn_node]` functions; expands to the builder API.
///
/// ```
/// use daggr::{fn_node, pipeline};
///
/// #[fn_node]
/// fn words(text: String) -> Vec<String> {
///     text.split_whitespace().map(str::to_string).collect()
/// }
///
/// #[fn_node]
/// fn longest(words: Vec<String>, min_len: usize) -> Option<String> {
///     words.into_iter().filter(|w| w.len() >= min_len).max_by_key(|w| w.len())
/// }
///
/// pipeline! {
///     /// Finds the longest word.
///     pub struct Longest {
///         inputs {
///             text: String = "typed pipelines are pleasant".to_string(),
///         }
///         nodes {
///             split = words(text: text);
///             best = longest(words: split, min_len: 3);
///         }
///         outputs {
///             best: Option<String> = best,
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let flow = Longest::build(daggr::Cache::open(dir.path())?)?;
/// let report = flow.run().await?;
/// assert_eq!(report.value(&flow.outputs.best)?.as_deref(), Some("pipelines"));
/// flow.set_text("a much longer sentence".to_string())?;
/// let report = flow.run().await?;
/// assert_eq!(report.value(&flow.outputs.best)?.as_deref(), Some("sentence"));
/// # Ok(()) }
/// ```
///
/// Sections: `inputs { name: Type = default, … }`, `nodes { name = function(port: source, …); … }`
/// (also `name = [node_expression](source, …);` for any other typed node, such as an
/// [`InferenceNode`], wired positionally)
/// and `outputs { name: Type = source, … }`. A source is an input, a node (its only output),
/// `node.port`, a literal or `{ expr }` (a constant), or any `Source<T>` expression such as
/// `daggr::random_seed()`. The generated type has `graph()`, `new()`, `build(cache)`, `run()`,
/// `preflight()`, `launch()`, `graph_ir()`/`graph_json()` and a `set_<input>` method per
/// input. Wiring mistakes are compile errors on your tokens: wrong types, unknown nodes or
/// ports, missing or doubly wired inputs, duplicate names and cycles.
pub use daggr_macros::pipeline;

/// Makes a struct's named fields the output ports of a `#[fn_node(fields)]` function
/// returning it; generates `<Name>Ports` with one `Output<T>` per field.
///
/// ```
/// use daggr::{fn_node, Outputs};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Outputs, Serialize, Deserialize)]
/// pub struct Split {
///     pub head: String,
///     pub rest: Vec<String>,
/// }
///
/// #[fn_node(fields)]
/// fn split(text: String) -> Split {
///     let mut words = text.split_whitespace().map(str::to_string);
///     Split { head: words.next().unwrap_or_default(), rest: words.collect() }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), daggr::Error> {
/// let mut g = daggr::Graph::new("doc");
/// let text = g.input("text", "one two three".to_string());
/// let parts = g.add(SplitNode::new(), (text,));
/// # let dir = tempfile::tempdir().unwrap();
/// # let g = g.cache(daggr::Cache::open(dir.path())?);
/// let report = g.build()?.run(daggr::Scope::All).await?;
/// assert_eq!(*report.value(&parts.head)?, "one");
/// assert_eq!(report.value(&parts.rest)?.len(), 2);
/// # Ok(()) }
/// ```
pub use daggr_macros::Outputs;

/// The graph IR shared with `cargo daggr` and the inspector.
pub use daggr_codegen::ir;

/// Re-exports for code generated by daggr's macros. Not a public API.
// Hidden from the docs only (`cfg(doc)`): rustc prints the items of a `#[doc(hidden)]`
// module by their full path, so every diagnostic about generated code would name
// `daggr::__private::…`; compiled without it, they print as `SoleOutput`, `port`, `Unset`.
#[cfg_attr(doc, doc(hidden))]
pub mod __private {
    pub use crate::kinds::fn_node::{encode_output, NodeReturn, NotAResult, ReturnProbe};
    pub use crate::macro_support::*;
    pub use crate::{
        cache::Cache, constant, BoxError, CachePolicy, Configure, Error, Graph, Inputs, IntoSource,
        IntoSources, Node, NodeConfig, NodeContext, NodeCore, NodeSpec, Output, Pipeline, PortSpec,
        RetryPolicy, RunReport, Scope, Source, TypedNode, Value,
    };
    pub use daggr_codegen::ir::GraphIr;
    pub use futures::future::BoxFuture;
    pub use std::sync::Arc;
    // No crate is re-exported whole: rustc would count its items when it shortens names in
    // diagnostics (serde_json's `Value::String` made it print `String` as
    // `std::string::String` everywhere) and show them by a path through here.
}
