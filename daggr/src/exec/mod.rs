//! A built pipeline and how it runs. The executor's layer, one file per concern:
//!
//! - `workspace`: [`Pipeline`], the state a pipeline keeps between runs (constants, each
//!   node's current result, observers, events) and where runs start;
//! - `executor`: one run's scheduling and cache look-ups;
//! - `attempt`: a node's key for its inputs, its attempts with timeout and retries;
//! - `composite`: maps and choices, evaluated part by part;
//! - `scope`: [`Scope`] and [`NodeRef`], which nodes a run evaluates;
//! - `report`: [`RunReport`], [`Outcome`], [`NodeResult`] and [`NodeFailure`];
//! - `progress`: [`TerminalProgress`], the progress bar on the terminal;
//! - `alone`: running one node on its own;
//! - `call`: a pipeline called as a function, JSON in and out (the workflow API's
//!   `POST /api/call`, `cargo daggr run`), and the serve handshake (`cargo daggr serve`).
//!
//! Each run is a `tracing` span named `run` (fields `pipeline`, `run`, `scope`, and the
//! counts `computed`, `cached`, `failed`, `skipped` and `cancelled` once it ends) with one
//! child span named `node` per node it evaluates (fields `node`, `attempt`, and `outcome`:
//! `computed`, `memory`, `disk`, `workspace`, `failed` or `skipped`, plus `error` when it
//! failed).

pub(crate) mod alone;
mod attempt;
mod call;
mod executor;
mod progress;
mod report;
mod scope;
mod state;
mod workspace;

// The workflow API (inspector) and batches (sheets) answer calls.
#[cfg(feature = "sheets")]
pub(crate) use call::CallAnswer;
// Switch variables read by the remote kinds and the inspector, as the handshake reads its.
#[cfg(any(feature = "gradio", feature = "inference", feature = "inspector"))]
pub(crate) use call::is_truthy;
#[cfg(feature = "sheets")]
pub(crate) use call::{BatchHook, SheetRunHook, SheetUsed, BATCH_HOOKS, SHEET_RUN_HOOKS};
#[cfg(feature = "inspector")]
pub(crate) use call::{ServeHook, ServeRequest, SERVE_HOOKS};
pub use call::{
    RUN_BATCH_ENV, RUN_ENV, RUN_INPUTS_ENV, RUN_SHEET_ENV, SERVE_API_ONLY_ENV, SERVE_ENV,
    SERVE_TOKEN_ENV,
};
pub use progress::TerminalProgress;
pub use report::{
    ItemOutcome, NodeFailure, NodeResult, Outcome, Parts, PersistTarget, RunReport, Unsaved,
};
mod composite;
pub use scope::{NodeRef, Scope};
#[cfg(feature = "sheets")]
pub(crate) use workspace::WeakPipeline;
pub use workspace::{Pipeline, ResultObserver, RunHandle};

use crate::error::Error;
use crate::graph::Graph;

impl Graph {
    /// Validates the graph (duplicate names, unconnected inputs, cycles; every problem
    /// at once) and returns a runnable pipeline.
    pub fn build(self) -> Result<Pipeline, Error> {
        let (graph, dag) = self.validate()?;
        let pipeline = Pipeline::new(graph, dag)?;
        call::run_if_asked(&pipeline);
        call::serve_if_asked(&pipeline);
        Ok(pipeline)
    }
}
