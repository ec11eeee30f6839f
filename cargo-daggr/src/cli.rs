//! `cargo daggr`: the command-line tool. `cargo daggr graph` prints a pipeline's graph as
//! JSON (the IR), DOT or Mermaid, either by building the target and asking it (the
//! `DAGGR_EXPORT_GRAPH` handshake: the program writes its graph when it builds a pipeline
//! and exits before any other work) or, with `--static`, by reading the sources
//! ([`daggr_codegen::static_graph`]). Either way the graph comes with the pipeline's named
//! outputs (a program writes none: they are read from its `pipeline!`), and `--pipeline`
//! picks one of several. `cargo daggr codegen gradio` writes typed bindings
//! for a Gradio app's endpoints ([`daggr_codegen::gradio`]), from the app's live API
//! description (asked through the runtime's Gradio client, see [`crate::app`]) or a
//! saved one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::{Message, Metadata, MetadataCommand, Package, Target as CargoTarget};
use clap::{Args, Parser, Subcommand, ValueEnum};

use daggr::hf::hub::{default_hub, Target};
use daggr::hf::HfToken;
use daggr_codegen::gradio;
use daggr_codegen::ir::PipelineIr;
use daggr_codegen::static_graph::{StaticGraphError, StaticSources};

/// The environment variable of the graph handshake (the runtime reads it in `Graph::build`).
pub const EXPORT_GRAPH_ENV: &str = "DAGGR_EXPORT_GRAPH";

/// `cargo daggr …` (cargo runs this binary as `cargo-daggr daggr …`).
#[derive(Debug, Parser)]
#[command(
    name = "cargo",
    bin_name = "cargo",
    version,
    about = "daggr's cargo subcommand"
)]
pub enum Cli {
    /// daggr tools.
    Daggr(DaggrArgs),
}

/// `cargo daggr` arguments.
#[derive(Debug, Args)]
#[command(version, about = "Tools for daggr pipelines")]
pub struct DaggrArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DaggrCommand,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum DaggrCommand {
    /// Print a pipeline's graph (nodes, typed ports, edges) as JSON, DOT or Mermaid.
    Graph(GraphArgs),
    /// Run a pipeline headless on the given inputs and print its outputs, and which nodes
    /// ran or came from the cache; exit status 1 when a node failed, 2 for bad inputs.
    /// With `--batch FILE`, run it over every input set of a JSON Lines file as one worker
    /// of a resumable batch that other workers may share.
    Run(RunArgs),
    /// Generate typed Rust bindings for an app's API.
    Codegen(CodegenArgs),
    /// List, show, delete or export the project's sheets (`.daggr/sheets.db`, or
    /// `DAGGR_SHEETS_URL`), with their sizes.
    Sheets(crate::admin::SheetsArgs),
    /// The project's cache (`.daggr/cache`): its size, and collecting the results no sheet
    /// refers to.
    Cache(crate::admin::CacheArgs),
    /// Build a pipeline target and serve it: the workflow API (`POST /api/call`, `GET
    /// /api/openapi.json`), and the inspector unless `--api-only`.
    Serve(crate::serve::ServeArgs),
    /// Write a Docker Space that builds a pipeline target and serves it; with a Hugging
    /// Face write token (HF_TOKEN), create the Space and upload it.
    Deploy(crate::deploy::DeployArgs),
}

/// `cargo daggr codegen` arguments.
#[derive(Debug, Args)]
pub struct CodegenArgs {
    /// What kind of app.
    #[command(subcommand)]
    pub target: CodegenTarget,
}

/// The kinds of app `cargo daggr codegen` knows.
#[derive(Debug, Subcommand)]
pub enum CodegenTarget {
    /// One typed `GradioNode` function per endpoint of a Gradio app (a Space or a URL),
    /// from its API description (`/info`).
    Gradio(GradioArgs),
}

/// `cargo daggr codegen gradio` arguments.
#[derive(Debug, Args)]
pub struct GradioArgs {
    /// The app: a Space id (`owner/name`) or a URL; the bindings call it by default.
    #[arg(value_name = "SPACE-or-URL")]
    pub src: String,
    /// Only this endpoint, e.g. `--api /predict` (repeatable; default: every named one).
    #[arg(long = "api", value_name = "NAME")]
    pub apis: Vec<String>,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Read the API description (the JSON of the app's `/info`) from this file instead of
    /// asking the app: no network.
    #[arg(long, value_name = "FILE")]
    pub info: Option<PathBuf>,
    /// Seconds each request may take (a sleeping Space takes a while to wake).
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

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

/// How `cargo daggr` picks and builds the target it runs (as `cargo run` does).
#[derive(Clone, Debug, Args)]
pub struct BuildArgs {
    /// Package to use.
    #[arg(short, long)]
    pub package: Option<String>,
    /// Example target.
    #[arg(long, conflicts_with = "bin")]
    pub example: Option<String>,
    /// Binary target (default: the package's only binary, or its `default-run`).
    #[arg(long)]
    pub bin: Option<String>,
    /// Path to Cargo.toml.
    #[arg(long)]
    pub manifest_path: Option<PathBuf>,
    /// Build in release mode.
    #[arg(long)]
    pub release: bool,
    /// Features to activate.
    #[arg(short = 'F', long)]
    pub features: Vec<String>,
    /// Activate all features.
    #[arg(long)]
    pub all_features: bool,
    /// Do not activate the default features.
    #[arg(long)]
    pub no_default_features: bool,
    /// Target directory.
    #[arg(long)]
    pub target_dir: Option<PathBuf>,
    /// Require Cargo.lock to be up to date.
    #[arg(long)]
    pub locked: bool,
    /// Run without accessing the network.
    #[arg(long)]
    pub offline: bool,
    /// Seconds the built target may take (to reach its pipeline's build for `graph`, to
    /// finish the run for `run`); past them it is stopped and the command fails.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// `cargo daggr run` arguments.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// An input value, `name=value` (repeatable). The value is read as JSON when it is
    /// valid JSON (`count=3`, `tags=["a","b"]`, `text="3"`), else as a string
    /// (`text=hello world`).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Print the whole answer as JSON (outputs, the nodes that ran, came from the cache or
    /// failed) instead of the outputs as text.
    #[arg(long)]
    pub json: bool,
    /// `--batch FILE` and its flags: a batch instead of one call (see [`crate::batch`]).
    #[command(flatten)]
    pub batch: crate::batch::BatchArgs,
    /// Which target to build and how.
    #[command(flatten)]
    pub build: BuildArgs,
}

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

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

impl BuildArgs {
    /// The cargo flags that select the package and target and configure the build.
    fn cargo_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut push = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                flags.push(k.to_string());
                flags.push(v.clone());
            }
        };
        push("--package", &self.package);
        push("--example", &self.example);
        push("--bin", &self.bin);
        if let Some(m) = &self.manifest_path {
            flags.extend(["--manifest-path".into(), m.display().to_string()]);
        }
        if let Some(t) = &self.target_dir {
            flags.extend(["--target-dir".into(), t.display().to_string()]);
        }
        if !self.features.is_empty() {
            flags.extend(["--features".into(), self.features.join(",")]);
        }
        for (on, flag) in [
            (self.release, "--release"),
            (self.all_features, "--all-features"),
            (self.no_default_features, "--no-default-features"),
            (self.locked, "--locked"),
            (self.offline, "--offline"),
        ] {
            if on {
                flags.push(flag.into());
            }
        }
        flags
    }
}

/// Runs `cargo daggr …`.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let Cli::Daggr(args) = cli;
    match args.command {
        DaggrCommand::Graph(graph) => {
            let ir = if graph.static_ {
                static_graph(&graph)?
            } else {
                built_graph(&graph)?
            };
            let text = match graph.format {
                Format::Json => ir.to_json() + "\n",
                Format::Dot => ir.to_dot(),
                Format::Mermaid => ir.to_mermaid(),
            };
            match &graph.output {
                Some(path) => std::fs::write(path, text)
                    .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display()))),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
        DaggrCommand::Codegen(CodegenArgs {
            target: CodegenTarget::Gradio(gradio),
        }) => codegen_gradio(&gradio),
        DaggrCommand::Sheets(sheets) => crate::admin::sheets(&sheets),
        DaggrCommand::Cache(cache) => crate::admin::cache(&cache),
        DaggrCommand::Serve(serve) => crate::serve::serve(&serve),
        DaggrCommand::Deploy(deploy) => crate::deploy::deploy(&deploy),
        DaggrCommand::Run(run) => {
            let code = run_headless(&run)?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
    }
}

/// Environment variable of the `cargo daggr run` handshake: where the program writes its
/// answer (the runtime's `daggr::RUN_ENV`; cargo-daggr does not link the runtime's
/// executor, so the name is repeated here and a test keeps the two equal).
pub const RUN_ENV: &str = "DAGGR_RUN";
/// Environment variable of the `cargo daggr run` handshake: the inputs, a JSON object.
pub const RUN_INPUTS_ENV: &str = "DAGGR_RUN_INPUTS";

/// The inputs of `--input name=value` flags as a JSON object: a value is JSON when it
/// parses as JSON, else a string.
pub fn parse_inputs(
    inputs: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, CliError> {
    let mut object = serde_json::Map::new();
    for input in inputs {
        let Some((name, value)) = input.split_once('=') else {
            return Err(CliError::Input(format!(
                "`--input {input}`: write it as NAME=VALUE"
            )));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(CliError::Input(format!(
                "`--input {input}`: the name is empty"
            )));
        }
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        if object.insert(name.to_string(), value).is_some() {
            return Err(CliError::Input(format!("input `{name}` is given twice")));
        }
    }
    Ok(object)
}

/// `cargo daggr run`: builds the target, runs it with the handshake variables (it runs its
/// first pipeline on the inputs and exits), prints the answer. Returns the exit status:
/// 0, 1 when a node failed, 2 when the inputs were refused.
pub fn run_headless(args: &RunArgs) -> Result<i32, CliError> {
    let inputs = parse_inputs(&args.inputs)?;
    let build = choose_target(&args.build)?;
    let (name, exe) = build_target(&build)?;
    if let Some(file) = &args.batch.batch {
        return crate::batch::run_batch(&args.batch, file, args.json, &name, &exe);
    }
    let dir = tempfile::Builder::new()
        .prefix("cargo-daggr-")
        .tempdir()
        .map_err(|e| CliError::Io(format!("creating a temporary directory: {e}")))?;
    let file = dir.path().join("answer.json");
    let mut command = Command::new(&exe);
    command
        .env(RUN_ENV, &file)
        .env(
            RUN_INPUTS_ENV,
            serde_json::Value::Object(inputs).to_string(),
        )
        .env("DAGGR_NO_LAUNCH", "1")
        .stdin(Stdio::null())
        // The program's own printing goes to stderr: stdout is the answer.
        .stdout(std::io::stderr());
    let timeout = std::time::Duration::from_secs(build.timeout);
    let status = run_with_timeout(&mut command, timeout)
        .map_err(|e| CliError::Io(format!("running {}: {e}", exe.display())))?
        .ok_or_else(|| CliError::Timeout(format!("the target `{name}`"), build.timeout))?;
    let text = std::fs::read_to_string(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            CliError::NoGraph(format!("the target `{name}` ({status})"))
        }
        _ => CliError::Io(format!("reading the answer `{name}` wrote: {e}")),
    })?;
    let answer: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Io(format!("the answer `{name}` wrote is not valid: {e}")))?;
    let code = status.code().unwrap_or(1);
    if args.json {
        println!("{answer}");
    } else {
        print!("{}", answer_text(&answer));
    }
    if let Some(error) = answer["error"].as_str() {
        eprintln!("error: {error}");
    }
    for failed in answer["failed"].as_array().into_iter().flatten() {
        eprintln!(
            "error: node `{}` failed: {}",
            failed["node"].as_str().unwrap_or("?"),
            failed["error"].as_str().unwrap_or("?")
        );
    }
    Ok(code)
}

/// The answer as text: `name = value` per output, then what ran and what was cached.
pub fn answer_text(answer: &serde_json::Value) -> String {
    let mut text = String::new();
    for (name, value) in answer["outputs"].as_object().into_iter().flatten() {
        text.push_str(&format!("{name} = {value}\n"));
    }
    for name in answer["missing_outputs"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "{} (not computed)\n",
            name.as_str().unwrap_or("?")
        ));
    }
    let list = |key: &str| -> Vec<&str> {
        answer[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect()
    };
    let (ran, cached) = (list("computed"), list("cached"));
    if answer["error"].is_null() {
        text.push_str(&format!(
            "ran: {} · from the cache: {} · {:.1} ms\n",
            if ran.is_empty() {
                "none".into()
            } else {
                ran.join(", ")
            },
            if cached.is_empty() {
                "none".into()
            } else {
                cached.join(", ")
            },
            answer["elapsed_ms"].as_f64().unwrap_or(0.0)
        ));
    }
    text
}

/// `cargo daggr codegen gradio`: asks the app (or reads `--info`), generates, writes.
pub fn codegen_gradio(args: &GradioArgs) -> Result<(), CliError> {
    // The bindings name the app as the runtime parses it: a Space id, or a URL with no
    // trailing slash.
    let target = Target::parse(&args.src).map_err(CliError::Source)?;
    let src = target.key().to_string();
    let (info, version) = match &args.info {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Io(format!("reading {}: {e}", path.display())))?;
            let info = serde_json::from_str(&text)
                .map_err(|e| CliError::Io(format!("{} is not JSON: {e}", path.display())))?;
            (info, None)
        }
        None => {
            let api = crate::app::app_api(
                &target,
                &default_hub(),
                HfToken::from_env(),
                std::time::Duration::from_secs(args.timeout),
            )?;
            (api.info, api.version)
        }
    };
    let bindings = gradio::generate(
        &info,
        &gradio::Options {
            src,
            apis: args.apis.clone(),
            gradio_version: version,
        },
    )?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &bindings.code)
                .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display())))?;
            let names: Vec<&str> = bindings
                .endpoints
                .iter()
                .map(|(api, _)| api.as_str())
                .collect();
            eprintln!(
                "cargo daggr: wrote bindings for {} endpoint(s) ({}) to {}",
                names.len(),
                names.join(", "),
                path.display()
            );
        }
        None => print!("{}", bindings.code),
    }
    Ok(())
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

/// The target to build when neither `--bin` nor `--example` names one, chosen before
/// building, as `cargo run` chooses: the package's one binary, or its `default-run`.
/// Several binaries, or none, are an error saying which there are.
pub(crate) fn choose_target(args: &BuildArgs) -> Result<BuildArgs, CliError> {
    if args.bin.is_some() || args.example.is_some() {
        return Ok(args.clone());
    }
    let meta = metadata(args)?;
    let packages = candidate_packages(&meta, args)?;
    let bins = |p: &Package| -> Vec<String> {
        p.targets
            .iter()
            .filter(|t| t.is_bin())
            .map(|t| t.name.clone())
            .collect()
    };
    let with_bins: Vec<(&Package, Vec<String>)> = packages
        .iter()
        .map(|p| (*p, bins(p)))
        .filter(|(_, b)| !b.is_empty())
        .collect();
    let chosen = match with_bins.as_slice() {
        [] => {
            let shown: Vec<String> = packages.iter().map(|p| format!("`{}`", p.name)).collect();
            let examples: Vec<&str> = packages
                .iter()
                .flat_map(|p| p.targets.iter().filter(|t| t.is_example()))
                .map(|t| t.name.as_str())
                .collect();
            let what = if packages.len() == 1 {
                format!("package {}", shown.join(""))
            } else {
                format!("packages {}", shown.join(", "))
            };
            return Err(CliError::Target(if examples.is_empty() {
                format!("{what} has no binary to build and run; use --static to read its sources")
            } else {
                format!(
                    "{what} has no binary to build and run; pass --example NAME to pick an example ({}), or use --static to read its sources",
                    examples.join(", ")
                )
            }));
        }
        [(_, bins)] if bins.len() == 1 => bins[0].clone(),
        [(package, bins)] => match &package.default_run {
            Some(default) => default.clone(),
            None => {
                return Err(CliError::Target(format!(
                    "package `{}` has {} binaries ({}); pass --bin NAME to pick one (or set `default-run` in its Cargo.toml)",
                    package.name,
                    bins.len(),
                    bins.join(", ")
                )))
            }
        },
        several => {
            let count: usize = several.iter().map(|(_, b)| b.len()).sum();
            let listed: Vec<String> = several
                .iter()
                .map(|(p, b)| format!("{} in `{}`", b.join(", "), p.name))
                .collect();
            return Err(CliError::Target(format!(
                "this workspace has {count} binaries ({}); pass --bin NAME to pick one",
                listed.join("; ")
            )));
        }
    };
    let mut chosen_args = args.clone();
    chosen_args.bin = Some(chosen);
    Ok(chosen_args)
}

/// Builds the target `args` select: its name and executable.
pub(crate) fn build_target(args: &BuildArgs) -> Result<(String, PathBuf), CliError> {
    let mut build = cargo();
    build
        .arg("build")
        .arg("--message-format=json-render-diagnostics")
        .args(args.cargo_flags())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output = build
        .output()
        .map_err(|e| CliError::Cargo(format!("could not start: {e}")))?;
    if !output.status.success() {
        return Err(CliError::Cargo("build failed".into()));
    }
    let wanted_kind = if args.example.is_some() {
        "example"
    } else {
        "bin"
    };
    let wanted_name = args.example.as_ref().or(args.bin.as_ref());
    let mut executables = Vec::new();
    for message in Message::parse_stream(output.stdout.as_slice()).flatten() {
        let Message::CompilerArtifact(artifact) = message else {
            continue;
        };
        let Some(exe) = artifact.executable else {
            continue;
        };
        let target = &artifact.target;
        let kind_matches = if args.example.is_some() {
            target.is_example()
        } else {
            target.is_bin()
        };
        if kind_matches && wanted_name.is_none_or(|w| *w == target.name) {
            executables.push((target.name.clone(), exe.into_std_path_buf()));
        }
    }
    let (name, exe) = match executables.len() {
        1 => executables.remove(0),
        0 => {
            return Err(CliError::Cargo(format!(
                "built no {wanted_kind} target to run"
            )))
        }
        _ => {
            let names: Vec<String> = executables.iter().map(|(n, _)| n.clone()).collect();
            return Err(CliError::Cargo(format!(
                "several {wanted_kind} targets ({}): choose one with --{wanted_kind}",
                names.join(", ")
            )));
        }
    };
    Ok((name, exe))
}

/// Builds the target `args` select, runs it with the handshake variable, and reads the
/// graph it wrote: the target's name and the graph.
fn build_and_ask(args: &BuildArgs) -> Result<(String, PipelineIr), CliError> {
    let (name, exe) = build_target(args)?;
    let ir = ask_graph(&name, &exe, args.timeout)?;
    Ok((name, ir))
}

/// Runs the built target `name` (at `exe`) with the graph handshake variable and reads the
/// graph it wrote (within `timeout` seconds).
pub(crate) fn ask_graph(name: &str, exe: &Path, timeout: u64) -> Result<PipelineIr, CliError> {
    // A fresh private directory (mode 0700 on Unix, removed on drop): the target writes the
    // graph there, so no other user can plant or read the file.
    let dir = tempfile::Builder::new()
        .prefix("cargo-daggr-")
        .tempdir()
        .map_err(|e| CliError::Io(format!("creating a temporary directory: {e}")))?;
    let file = dir.path().join("graph.json");
    let mut command = Command::new(exe);
    command
        .env(EXPORT_GRAPH_ENV, &file)
        .env("DAGGR_NO_LAUNCH", "1")
        .stdin(Stdio::null())
        // What the program prints (say, "set DAGGR_LLM_URL" before it exits) is shown, but
        // never mixed into the graph on stdout.
        .stdout(std::io::stderr());
    let status = run_with_timeout(&mut command, std::time::Duration::from_secs(timeout))
        .map_err(|e| CliError::Io(format!("running {}: {e}", exe.display())))?
        .ok_or_else(|| CliError::Timeout(format!("the target `{name}`"), timeout))?;
    // `ExitStatus` displays as "exit status: 0" (or "signal: 9 (SIGKILL)").
    let text = std::fs::read_to_string(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            CliError::NoGraph(format!("the target `{name}` ({status})"))
        }
        _ => CliError::Io(format!("reading the graph `{name}` wrote: {e}")),
    })?;
    PipelineIr::from_json(&text)
        .map_err(|e| CliError::Io(format!("the graph `{name}` wrote is not valid: {e}")))
}

/// Runs `command` to its end, or kills it after `timeout` (then `Ok(None)`).
fn run_with_timeout(
    command: &mut Command,
    timeout: std::time::Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let mut child = command.spawn()?;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        // Polling: std has no wait-with-timeout, and a target reaching its build exits at once.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `cargo metadata` of the workspace `args` point at (no dependencies).
pub(crate) fn metadata(args: &BuildArgs) -> Result<Metadata, CliError> {
    let mut command = MetadataCommand::new();
    command.no_deps();
    if let Some(cargo) = std::env::var_os("CARGO") {
        command.cargo_path(cargo);
    }
    if let Some(m) = &args.manifest_path {
        command.manifest_path(m);
    }
    let mut options = Vec::new();
    for (on, flag) in [(args.locked, "--locked"), (args.offline, "--offline")] {
        if on {
            options.push(flag.to_string());
        }
    }
    command.other_options(options);
    command
        .exec()
        .map_err(|e| CliError::Cargo(format!("metadata: {e}")))
}

/// The manifest cargo reads: `--manifest-path`, else the nearest `Cargo.toml` at or above
/// the current directory.
fn manifest(args: &BuildArgs) -> Option<PathBuf> {
    let path = match &args.manifest_path {
        Some(m) => m.clone(),
        None => std::env::current_dir()
            .ok()?
            .ancestors()
            .map(|d| d.join("Cargo.toml"))
            .find(|m| m.is_file())?,
    };
    std::fs::canonicalize(&path).ok().or(Some(path))
}

/// The packages cargo would choose without `--package`: the manifest's own package, or,
/// for a virtual manifest (a workspace root that is no package), the workspace's default
/// members.
fn current_packages<'m>(meta: &'m Metadata, manifest: Option<&Path>) -> Vec<&'m Package> {
    let members = meta.workspace_packages();
    let own = manifest.and_then(|m| {
        members.iter().copied().find(|p| {
            let path = p.manifest_path.as_std_path();
            std::fs::canonicalize(path).is_ok_and(|p| p == m) || path == m
        })
    });
    match own {
        Some(package) => vec![package],
        None if meta.workspace_default_members.is_available() => meta.workspace_default_packages(),
        None => members,
    }
}

/// The packages `args` select: `--package`, or those cargo would choose without it.
pub(crate) fn candidate_packages<'m>(
    meta: &'m Metadata,
    args: &BuildArgs,
) -> Result<Vec<&'m Package>, CliError> {
    let Some(name) = &args.package else {
        return Ok(current_packages(meta, manifest(args).as_deref()));
    };
    let package = meta
        .workspace_packages()
        .into_iter()
        .find(|p| p.name.as_str() == name.as_str())
        .ok_or_else(|| {
            let names: Vec<&str> = meta
                .workspace_packages()
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            CliError::Cargo(format!(
                "no package `{name}` in the workspace (its packages: {})",
                names.join(", ")
            ))
        })?;
    Ok(vec![package])
}

/// The package and target files `--static` reads: the selected example or binary (all
/// binaries when none is named) and the package's library, whose `#[fn_node]`
/// functions give port types.
fn static_sources(args: &BuildArgs) -> Result<Vec<PathBuf>, CliError> {
    let meta = metadata(args)?;
    let candidates = candidate_packages(&meta, args)?;
    let (kind, wanted) = match (&args.example, &args.bin) {
        (Some(e), _) => ("example", Some(e.as_str())),
        (_, Some(b)) => ("bin", Some(b.as_str())),
        _ => ("bin", None),
    };
    let selected = |t: &CargoTarget| {
        let kind_matches = if kind == "example" {
            t.is_example()
        } else {
            t.is_bin()
        };
        kind_matches && wanted.is_none_or(|w| t.name == w)
    };
    let mut found: Vec<(&Package, Vec<&CargoTarget>)> = candidates
        .iter()
        .map(|p| (*p, p.targets.iter().filter(|t| selected(t)).collect()))
        .filter(|(_, targets): &(&Package, Vec<&CargoTarget>)| !targets.is_empty())
        .collect();
    let shown = |packages: &[&Package]| {
        packages
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (package, targets) = match found.len() {
        1 => found.remove(0),
        // No binary to read, only a library: its `pipeline!`s.
        0 if wanted.is_none() && candidates.len() == 1 => (candidates[0], Vec::new()),
        0 => {
            let what = match wanted {
                Some(w) => format!("{kind} target `{w}`"),
                None => "bin target".to_string(),
            };
            return Err(CliError::Cargo(format!(
                "no {what} in package {}",
                shown(&candidates)
            )));
        }
        _ => {
            let packages: Vec<&Package> = found.iter().map(|(p, _)| *p).collect();
            return Err(CliError::Cargo(format!(
                "several packages have {kind} targets ({}): choose one with --package",
                shown(&packages)
            )));
        }
    };
    let mut files: Vec<PathBuf> = targets
        .iter()
        .map(|t| t.src_path.clone().into_std_path_buf())
        .collect();
    // `#[fn_node]` functions may live in the library: read it too, for port types.
    let lib = package
        .targets
        .iter()
        .find(|t| t.is_lib() || t.is_rlib() || t.is_proc_macro());
    if let Some(dir) = lib.and_then(|t| t.src_path.parent()) {
        let mut library = Vec::new();
        collect_rs(dir.as_std_path(), &mut library);
        // A library beside other targets' files (`lib.rs` and the examples in one
        // directory): only the targets chosen are read.
        let others: Vec<&Path> = package
            .targets
            .iter()
            .filter(|t| !t.is_lib() && !t.is_rlib() && !t.is_proc_macro())
            .map(|t| t.src_path.as_std_path())
            .collect();
        for file in library {
            if !files.contains(&file) && !others.contains(&file.as_path()) {
                files.push(file);
            }
        }
    }
    Ok(files)
}

fn collect_rs(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = read.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rs(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// Reads the target's sources for `#[fn_node]` functions, `Outputs` structs and
/// `pipeline!` invocations, named as the user would name them (relative to the current
/// directory when under it), with errors saying where they are.
pub fn read_sources(args: &BuildArgs) -> Result<StaticSources, CliError> {
    let files = static_sources(args)?;
    let mut sources = StaticSources::new();
    // This crate enables proc-macro2's `span-locations`: tokens know their place.
    sources.locate_with(|span| {
        let start = span.start();
        Some((start.line, start.column + 1))
    });
    let here = std::env::current_dir().ok();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CliError::Io(format!("reading {}: {e}", file.display())))?;
        let shown = here
            .as_ref()
            .and_then(|d| file.strip_prefix(d).ok())
            .unwrap_or(file);
        sources.add_source(&shown.display().to_string(), &text)?;
    }
    Ok(sources)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[cfg(unix)]
    #[test]
    fn a_target_past_its_timeout_is_stopped() {
        let timeout = std::time::Duration::from_millis(300);
        let started = std::time::Instant::now();
        let status = run_with_timeout(Command::new("sleep").arg("30"), timeout).unwrap();
        assert!(status.is_none(), "stopped, not waited for");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        let status = run_with_timeout(&mut Command::new("true"), timeout).unwrap();
        assert!(status.unwrap().success());
    }

    #[test]
    fn cargo_flags_are_forwarded() {
        let Cli::Daggr(args) = Cli::parse_from([
            "cargo-daggr",
            "daggr",
            "graph",
            "--example",
            "quickstart",
            "--format",
            "mermaid",
            "--release",
            "-F",
            "a",
            "-F",
            "b",
            "--locked",
        ]);
        let DaggrCommand::Graph(graph) = args.command else {
            panic!("parsed as graph");
        };
        assert_eq!(graph.format, Format::Mermaid);
        assert_eq!(
            graph.build.cargo_flags(),
            [
                "--example",
                "quickstart",
                "--features",
                "a,b",
                "--release",
                "--locked"
            ]
        );
    }

    #[test]
    fn codegen_gradio_arguments() {
        let Cli::Daggr(args) = Cli::parse_from([
            "cargo-daggr",
            "daggr",
            "codegen",
            "gradio",
            "owner/space",
            "--api",
            "/upper",
            "--api",
            "predict",
            "-o",
            "src/space.rs",
            "--info",
            "info.json",
        ]);
        let DaggrCommand::Codegen(CodegenArgs {
            target: CodegenTarget::Gradio(gradio),
        }) = args.command
        else {
            panic!("parsed as codegen gradio");
        };
        assert_eq!(gradio.src, "owner/space");
        assert_eq!(gradio.apis, ["/upper", "predict"]);
        assert_eq!(gradio.output, Some(PathBuf::from("src/space.rs")));
        assert_eq!(gradio.info, Some(PathBuf::from("info.json")));
        assert_eq!(gradio.timeout, 120);
    }

    fn graph_args(args: &[&str]) -> GraphArgs {
        let Cli::Daggr(parsed) = Cli::parse_from(
            ["cargo-daggr", "daggr", "graph"]
                .iter()
                .chain(args)
                .copied(),
        );
        let DaggrCommand::Graph(graph) = parsed.command else {
            panic!("parsed as graph");
        };
        graph
    }

    const TWO_PIPELINES: &str = r#"
        #[fn_node] fn shout(text: String) -> String { text }
        pipeline! {
            struct First {
                inputs { text: String = String::new() }
                nodes { loud = shout(text: text); }
                outputs { loud: String = loud }
            }
        }
        pipeline! {
            struct Second {
                inputs { text: String = String::new() }
                nodes { quiet = shout(text: text); }
            }
        }
    "#;

    #[test]
    fn the_pipeline_asked_for_is_the_one_given() {
        let mut sources = StaticSources::new();
        sources.add_source("main.rs", TWO_PIPELINES).unwrap();
        // What the program writes: the graph, without its named outputs.
        let built = PipelineIr::from(sources.graph(Some("First")).unwrap().graph);
        let choose = |pipeline: Option<&str>| {
            let mut args = graph_args(&[]);
            args.pipeline = pipeline.map(str::to_string);
            choose_pipeline(&args, "app", built.clone(), Some(&sources))
        };
        for pipeline in [None, Some("First")] {
            let ir = choose(pipeline).unwrap();
            assert_eq!(ir.graph.name, "First");
            assert_eq!(ir.outputs.len(), 1, "the outputs come from the sources");
            assert_eq!(
                (ir.outputs[0].from.as_str(), ir.outputs[0].ty.as_str()),
                ("loud", "String")
            );
        }
        assert_eq!(choose(Some("Second")).unwrap().graph.name, "Second");
        assert_eq!(
            choose(Some("Nope")).unwrap_err().to_string(),
            "no pipeline named `Nope`; found: First, Second"
        );
        // Sources that could not be read: the built graph is all there is.
        let mut args = graph_args(&[]);
        args.pipeline = Some("Second".into());
        assert_eq!(
            choose_pipeline(&args, "app", built.clone(), None)
                .unwrap_err()
                .to_string(),
            "no pipeline named `Second`; found: First"
        );
    }

    /// A package `demo` in a temporary directory, with `bins` binaries.
    fn package(bins: &[&str], extra: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("Cargo.toml"),
            format!(
                "[package]\nname = \"demo\"\nversion = \"0.0.0\"\nedition = \"2021\"\n{extra}\n[workspace]\n"
            ),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("src/bin")).unwrap();
        std::fs::write(root.join("src/lib.rs"), "").unwrap();
        for bin in bins {
            std::fs::write(root.join(format!("src/bin/{bin}.rs")), "fn main() {}").unwrap();
        }
        dir
    }

    fn chosen(dir: &Path, args: &[&str]) -> Result<Option<String>, String> {
        let manifest = dir.join("Cargo.toml");
        let mut all = vec!["--manifest-path", manifest.to_str().unwrap()];
        all.extend(args);
        choose_target(&graph_args(&all).build)
            .map(|a| a.bin)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_binary_is_chosen_before_building() {
        let three = package(&["a", "b", "c"], "");
        assert_eq!(
            chosen(three.path(), &[]).unwrap_err(),
            "package `demo` has 3 binaries (a, b, c); pass --bin NAME to pick one (or set `default-run` in its Cargo.toml)"
        );
        assert_eq!(
            chosen(three.path(), &["--bin", "b"]).unwrap().as_deref(),
            Some("b")
        );
        let example = chosen(three.path(), &["--example", "x"]).unwrap();
        assert_eq!(example, None, "an example is no binary");

        let default_run = package(&["a", "b"], "default-run = \"b\"");
        assert_eq!(
            chosen(default_run.path(), &[]).unwrap().as_deref(),
            Some("b")
        );

        let one = package(&["only"], "");
        assert_eq!(chosen(one.path(), &[]).unwrap().as_deref(), Some("only"));

        let none = package(&[], "");
        assert_eq!(
            chosen(none.path(), &[]).unwrap_err(),
            "package `demo` has no binary to build and run; use --static to read its sources"
        );
    }

    #[test]
    fn static_sources_in_a_virtual_workspace() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let manifest = root.join("Cargo.toml");
        let manifest = manifest.to_str().unwrap();
        let args = graph_args(&[
            "--static",
            "--example",
            "quickstart",
            "--manifest-path",
            manifest,
        ]);
        let files = static_sources(&args.build).unwrap();
        assert!(files[0].ends_with("examples/quickstart.rs"), "{files:?}");
        assert!(
            files.iter().any(|f| f.ends_with("examples/lib.rs")),
            "{files:?}"
        );
        assert!(
            !files.iter().any(|f| f.ends_with("examples/llm_chain.rs")),
            "other examples are not read: {files:?}"
        );

        let args = graph_args(&["--static", "--example", "nope", "--manifest-path", manifest]);
        let err = static_sources(&args.build).unwrap_err().to_string();
        assert!(
            err.starts_with("cargo no example target `nope` in package "),
            "{err}"
        );
        assert!(err.contains("daggr-examples"), "{err}");

        let args = graph_args(&["--static", "-p", "nope", "--manifest-path", manifest]);
        let err = static_sources(&args.build).unwrap_err().to_string();
        assert!(
            err.starts_with("cargo no package `nope` in the workspace (its packages: "),
            "{err}"
        );
    }
}
