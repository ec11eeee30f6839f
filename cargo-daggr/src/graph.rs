//! `cargo daggr graph`: a pipeline's graph as JSON (the IR), DOT or Mermaid, either by
//! building the target and asking it (the `DAGGR_EXPORT_GRAPH` handshake: the program
//! writes its graph when it builds a pipeline and exits before any other work) or, with
//! `--static`, by reading the sources ([`daggr_codegen::static_graph`]). Either way the
//! graph comes with the pipeline's named outputs (a program writes none: they are read
//! from its `pipeline!`), and `--pipeline` picks one of several.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use daggr_codegen::ir::PipelineIr;
use daggr_codegen::static_graph::{StaticGraphError, StaticSources};

use crate::build::{build_and_ask, choose_target, read_sources, BuildArgs};
use crate::error::CliError;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The graph IR as JSON.
    Json,
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

/// `cargo daggr graph` arguments.
#[derive(Clone, Debug, Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Parse the sources with syn instead of building and running the target (finds
    /// `pipeline!` invocations; graphs assembled at run time are not seen).
    #[arg(long = "static")]
    pub static_: bool,
    /// With several pipelines, the one to print (its `pipeline!` type's name, or the
    /// name given to `Graph::new`).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Which target to build and how.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Builds the target, runs it with the handshake variable, and reads the graph it wrote;
/// then honours `--pipeline` and adds the pipeline's named outputs, from the target's
/// sources (see [`choose_pipeline`]).
pub fn built_graph(args: &GraphArgs) -> Result<PipelineIr, CliError> {
    let build = choose_target(&args.build)?;
    let (name, built) = build_and_ask(&build)?;
    // The `pipeline!`s the target's sources declare: the other pipelines it defines, and
    // the named outputs, which the graph the program writes does not carry. Best effort:
    // the graph was built, whatever the sources say.
    let sources = read_sources(&build).ok();
    choose_pipeline(args, &name, built, sources.as_ref())
}

/// Honours `--pipeline` for a graph the target built (the program stops at the first
/// pipeline it builds): that graph when it is the one named; else the named `pipeline!`
/// read from the sources (with a note), or an error listing the pipelines found. Adds the
/// `pipeline!`'s named outputs to the graph.
pub fn choose_pipeline(
    args: &GraphArgs,
    target: &str,
    mut built: PipelineIr,
    sources: Option<&StaticSources>,
) -> Result<PipelineIr, CliError> {
    let built_name = built.graph.name.clone();
    let declared = sources
        .map(StaticSources::pipeline_names)
        .unwrap_or_default();
    match (&args.pipeline, sources) {
        (Some(wanted), _) if *wanted == built_name => {}
        (Some(wanted), Some(sources)) if declared.contains(wanted) => {
            eprintln!(
                "cargo daggr: the target `{target}` stops at the first pipeline it builds, `{built_name}`; `{wanted}` is read from its sources instead (as with --static)"
            );
            return Ok(sources.graph(Some(wanted))?);
        }
        (Some(wanted), _) => {
            let mut found = vec![built_name.clone()];
            found.extend(declared.into_iter().filter(|n| *n != built_name));
            return Err(StaticGraphError::UnknownPipeline {
                name: wanted.clone(),
                found: found.join(", "),
            }
            .into());
        }
        (None, _) => {
            let others: Vec<&String> = declared.iter().filter(|n| **n != built_name).collect();
            if !others.is_empty() {
                let names: Vec<&str> = others.iter().map(|n| n.as_str()).collect();
                eprintln!(
                    "cargo daggr: showing `{built_name}`, the first pipeline the target `{target}` builds; its sources also declare {} (choose with --pipeline)",
                    names.join(", ")
                );
            }
        }
    }
    if built.outputs.is_empty() {
        if let Some(sources) = sources {
            built.outputs = sources.outputs_of(&built.graph);
        }
    }
    Ok(built)
}

/// Reads the target's sources (see [`read_sources`]) and the graph of the `pipeline!`
/// asked for, or of the first one.
pub fn static_graph(args: &GraphArgs) -> Result<PipelineIr, CliError> {
    let sources = read_sources(&args.build)?;
    let names = sources.pipeline_names();
    if args.pipeline.is_none() && names.len() > 1 {
        eprintln!(
            "cargo daggr: several pipelines ({}); showing `{}` (choose with --pipeline)",
            names.join(", "),
            names[0]
        );
    }
    Ok(sources.graph(args.pipeline.as_deref())?)
}
