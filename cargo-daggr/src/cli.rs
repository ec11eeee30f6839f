//! `cargo daggr`'s command line: the subcommands, and which module does each.

use clap::{Args, Parser, Subcommand};

use crate::codegen::{codegen_gradio, CodegenArgs, CodegenTarget};
use crate::error::CliError;
use crate::graph::{built_graph, static_graph, Format, GraphArgs};
use crate::run::{run_headless, RunArgs};

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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use daggr_codegen::ir::PipelineIr;
    use daggr_codegen::static_graph::StaticSources;

    use super::*;
    use crate::build::{choose_target, run_with_timeout, static_sources};
    use crate::graph::choose_pipeline;
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
