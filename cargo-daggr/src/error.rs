//! The command-line tool's one error type.

use daggr_codegen::gradio;
use daggr_codegen::static_graph::StaticGraphError;

/// Errors of the command-line tool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Cargo failed or printed something unexpected.
    #[error("cargo {0}")]
    Cargo(String),
    /// Which target to build is not clear (several binaries and no `--bin`), or there is
    /// none.
    #[error("{0}")]
    Target(String),
    /// The target ran but never built a pipeline.
    #[error("{0} never built a daggr pipeline (no graph was written); does it call `Graph::build`, `new()` or `build()` on a pipeline?")]
    NoGraph(String),
    /// The sources could not be read, or hold no (such) pipeline.
    #[error(transparent)]
    Static(#[from] StaticGraphError),
    /// Reading or parsing a file failed.
    #[error("{0}")]
    Io(String),
    /// The target ran past `--timeout` without building a pipeline, and was stopped.
    #[error("{0} did not build a daggr pipeline within {1} s and was stopped; does it wait for something (input, the network, a server) before building it? Raise --timeout, or use --static")]
    Timeout(String, u64),
    /// The app is neither a Space id nor a URL.
    #[error("{0}")]
    Source(String),
    /// A `--input` flag is not `NAME=VALUE`, or names an input twice.
    #[error("{0}")]
    Input(String),
    /// The runtime refused (opening the sheets or the cache, reading a sheet).
    #[error(transparent)]
    Daggr(#[from] daggr::Error),
    /// No such sheet, or a sheet name that several pipelines have.
    #[error("{0}")]
    Sheet(String),
    /// The Hub refused a request of `cargo daggr deploy`, or could not be reached.
    #[error("{0}")]
    Hub(String),
    /// The app or its API description could not be had.
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    /// No bindings could be generated from the API description.
    #[error(transparent)]
    Codegen(#[from] gradio::CodegenError),
}
