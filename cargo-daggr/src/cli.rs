//! `cargo daggr`: the command-line tool. `cargo daggr graph` prints a pipeline's graph as
//! JSON (the IR), DOT or Mermaid, either by building the target and asking it (the
//! `DAGGR_EXPORT_GRAPH` handshake: the program writes its graph when it builds a pipeline
//! and exits before any other work) or, with `--static`, by parsing the sources with syn.
//! `cargo daggr codegen gradio` writes typed bindings for a Gradio app's endpoints (see
//! [`daggr_codegen::gradio`]), from the app's live API description or a saved one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::fetch::{FetchError, Fetcher};
use daggr_codegen::gradio;
use daggr_codegen::ir::GraphIr;
use daggr::hf::hub::Target;

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
    /// Generate typed Rust bindings for an app's API.
    Codegen(CodegenArgs),
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
#[derive(Debug, Args)]
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
    /// With several `pipeline!` types, the one to print.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Package to use.
    #[arg(short, long)]
    pub package: Option<String>,
    /// Example target.
    #[arg(long, conflicts_with = "bin")]
    pub example: Option<String>,
    /// Binary target.
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
    /// Seconds the built target may take to reach its pipeline's build (it exits there);
    /// past them it is stopped and the command fails.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Errors of the command-line tool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Cargo failed or printed something unexpected.
    #[error("cargo {0}")]
    Cargo(String),
    /// The target ran but never built a pipeline.
    #[error("{0} never built a daggr pipeline (no graph was written); does it call `Graph::build`, `new()` or `build()` on a pipeline?")]
    NoGraph(String),
    /// No `pipeline!` was found in the sources.
    #[error("no `pipeline!` found in {0}")]
    NoPipeline(String),
    /// A named pipeline is not among those found.
    #[error("no pipeline named `{name}`; found: {found}")]
    UnknownPipeline {
        /// The name asked for.
        name: String,
        /// The names found.
        found: String,
    },
    /// Reading or parsing a file failed.
    #[error("{0}")]
    Io(String),
    /// The target ran past `--timeout` without building a pipeline, and was stopped.
    #[error("{0} did not build a daggr pipeline within {1} s and was stopped; does it wait for something (input, the network, a server) before building it? Raise --timeout, or use --static")]
    Timeout(String, u64),
    /// The app or its API description could not be had.
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    /// No bindings could be generated from the API description.
    #[error(transparent)]
    Codegen(#[from] gradio::CodegenError),
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

impl GraphArgs {
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
    }
}

/// `cargo daggr codegen gradio`: asks the app (or reads `--info`), generates, writes.
pub fn codegen_gradio(args: &GradioArgs) -> Result<(), CliError> {
    // The bindings name the app as the runtime parses it: a Space id, or a URL with no
    // trailing slash.
    let src = Target::parse(&args.src)
        .map_err(FetchError::Source)?
        .key()
        .to_string();
    let (info, version) = match &args.info {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Io(format!("reading {}: {e}", path.display())))?;
            let info = serde_json::from_str(&text)
                .map_err(|e| CliError::Io(format!("{} is not JSON: {e}", path.display())))?;
            (info, None)
        }
        None => {
            let api = Fetcher::new(std::time::Duration::from_secs(args.timeout)).app_api(&src)?;
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

/// Builds the target, runs it with the handshake variable, and reads the graph it wrote.
pub fn built_graph(args: &GraphArgs) -> Result<GraphIr, CliError> {
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
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(exe), Some(kinds)) = (
            message["executable"].as_str(),
            message["target"]["kind"].as_array(),
        ) else {
            continue;
        };
        let name = message["target"]["name"].as_str().unwrap_or("");
        if kinds.iter().any(|k| k == wanted_kind) && wanted_name.is_none_or(|w| w == name) {
            executables.push((name.to_string(), PathBuf::from(exe)));
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
    // A fresh private directory (mode 0700 on Unix, removed on drop): the target writes the
    // graph there, so no other user can plant or read the file.
    let dir = tempfile::Builder::new()
        .prefix("cargo-daggr-")
        .tempdir()
        .map_err(|e| CliError::Io(format!("creating a temporary directory: {e}")))?;
    let file = dir.path().join("graph.json");
    let mut command = Command::new(&exe);
    command
        .env(EXPORT_GRAPH_ENV, &file)
        .env("DAGGR_NO_LAUNCH", "1")
        .stdin(Stdio::null())
        // What the program prints (say, "set DAGGR_LLM_URL" before it exits) is shown, but
        // never mixed into the graph on stdout.
        .stdout(std::io::stderr());
    let timeout = std::time::Duration::from_secs(args.timeout);
    let status = run_with_timeout(&mut command, timeout)
        .map_err(|e| CliError::Io(format!("running {}: {e}", exe.display())))?
        .ok_or_else(|| CliError::Timeout(format!("the target `{name}`"), args.timeout))?;
    // `ExitStatus` displays as "exit status: 0" (or "signal: 9 (SIGKILL)").
    let text = std::fs::read_to_string(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            CliError::NoGraph(format!("the target `{name}` ({status})"))
        }
        _ => CliError::Io(format!("reading the graph `{name}` wrote: {e}")),
    })?;
    GraphIr::from_json(&text)
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

/// The package directory and the source files to parse for `--static`.
fn static_sources(args: &GraphArgs) -> Result<Vec<PathBuf>, CliError> {
    let mut meta = cargo();
    meta.args(["metadata", "--no-deps", "--format-version", "1"]);
    if let Some(m) = &args.manifest_path {
        meta.arg("--manifest-path").arg(m);
    }
    let output = meta
        .output()
        .map_err(|e| CliError::Cargo(format!("metadata: {e}")))?;
    if !output.status.success() {
        return Err(CliError::Cargo(format!(
            "metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| CliError::Cargo(format!("metadata: {e}")))?;
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let package = match &args.package {
        Some(p) => packages.iter().find(|x| x["name"] == p.as_str()),
        None => {
            let root = meta["resolve"]["root"].as_str().unwrap_or("");
            packages
                .iter()
                .find(|x| x["id"] == root)
                .or_else(|| packages.iter().find(|x| x["name"] == "daggr"))
                .or_else(|| packages.first())
        }
    }
    .ok_or_else(|| CliError::Cargo("no such package".into()))?;
    let mut files = Vec::new();
    let mut lib_dir = None;
    for target in package["targets"].as_array().into_iter().flatten() {
        let kinds: Vec<&str> = target["kind"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str())
            .collect();
        let path = PathBuf::from(target["src_path"].as_str().unwrap_or(""));
        let name = target["name"].as_str().unwrap_or("");
        let selected = match (&args.example, &args.bin) {
            (Some(e), _) => kinds.contains(&"example") && name == e,
            (_, Some(b)) => kinds.contains(&"bin") && name == b,
            _ => kinds.contains(&"bin"),
        };
        if kinds.contains(&"lib") {
            lib_dir = path.parent().map(Path::to_path_buf);
        }
        if selected {
            files.push(path);
        }
    }
    if files.is_empty() && (args.example.is_some() || args.bin.is_some()) {
        return Err(CliError::Cargo("no such target".into()));
    }
    // `#[fn_node]` functions may live in the library: parse it too, for port types.
    if let Some(dir) = lib_dir {
        collect_rs(&dir, &mut files);
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
        } else if path.extension().is_some_and(|e| e == "rs") && !into.contains(&path) {
            into.push(path);
        }
    }
}

/// Parses the target's sources for `#[fn_node]` functions and `pipeline!` invocations.
pub fn static_graph(args: &GraphArgs) -> Result<GraphIr, CliError> {
    let files = static_sources(args)?;
    static_graph_of_files(&files, args.pipeline.as_deref())
}

/// The static graph of the `pipeline!` found in `files` (the one named `pipeline`, if given).
pub fn static_graph_of_files(
    files: &[PathBuf],
    pipeline: Option<&str>,
) -> Result<GraphIr, CliError> {
    use syn::visit::Visit;

    struct Finder {
        signatures: HashMap<String, daggr_codegen::fn_node::FnSignature>,
        pipelines: Vec<daggr_codegen::pipeline::PipelineDef>,
        errors: Vec<String>,
    }
    impl<'ast> Visit<'ast> for Finder {
        fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
            if let Some(sig) = daggr_codegen::fn_node::signature(item) {
                self.signatures.insert(item.sig.ident.to_string(), sig);
            }
            syn::visit::visit_item_fn(self, item);
        }
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            if mac
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "pipeline")
            {
                match syn::parse2::<daggr_codegen::pipeline::PipelineDef>(mac.tokens.clone()) {
                    Ok(def) => self.pipelines.push(def),
                    Err(e) => self.errors.push(e.to_string()),
                }
            }
        }
    }
    let mut finder = Finder {
        signatures: HashMap::new(),
        pipelines: Vec::new(),
        errors: Vec::new(),
    };
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CliError::Io(format!("reading {}: {e}", file.display())))?;
        let ast = syn::parse_file(&text)
            .map_err(|e| CliError::Io(format!("parsing {}: {e}", file.display())))?;
        finder.visit_file(&ast);
    }
    let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    if finder.pipelines.is_empty() {
        let why = if finder.errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", finder.errors.join("; "))
        };
        return Err(CliError::NoPipeline(format!("{}{why}", shown.join(", "))));
    }
    let names: Vec<String> = finder
        .pipelines
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    let def = match pipeline {
        Some(name) => finder
            .pipelines
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| CliError::UnknownPipeline {
                name: name.to_string(),
                found: names.join(", "),
            })?,
        None => {
            if finder.pipelines.len() > 1 {
                eprintln!(
                    "cargo daggr: several pipelines ({}); showing `{}` (choose with --pipeline)",
                    names.join(", "),
                    names[0]
                );
            }
            &finder.pipelines[0]
        }
    };
    let signatures = &finder.signatures;
    Ok(def.static_ir(&|path| {
        let name = path.segments.last()?.ident.to_string();
        signatures.get(&name).cloned()
    }))
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
            graph.cargo_flags(),
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

    #[test]
    fn static_parsing_finds_pipelines_and_port_types() {
        let dir = std::env::temp_dir().join(format!("daggr-static-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("main.rs");
        std::fs::write(
            &file,
            r#"
            #[fn_node] fn shout(text: String) -> String { text }
            #[fn_node(outputs(n, m))] fn pair(text: String) -> (u32, Vec<u8>) { (text.len() as u32, text.into_bytes()) }
            daggr::pipeline! {
                pub struct Flow {
                    inputs { text: String = String::new() }
                    nodes { loud = shout(text: text); p = pair(text: loud); }
                }
            }
            fn main() {}
            "#,
        )
        .unwrap();
        let ir = static_graph_of_files(std::slice::from_ref(&file), None).unwrap();
        assert_eq!(ir.name, "Flow");
        let p = ir.nodes.iter().find(|n| n.name == "p").unwrap();
        assert_eq!(p.outputs[1].ty, "Vec<u8>");
        assert_eq!(ir.edges.len(), 2);
        assert_eq!(ir.edges[1].ty, "String");
        assert!(matches!(
            static_graph_of_files(&[file], Some("Other")),
            Err(CliError::UnknownPipeline { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
