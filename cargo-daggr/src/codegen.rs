//! `cargo daggr codegen gradio`: typed bindings for a Gradio app's endpoints
//! ([`daggr_codegen::gradio`]), from the app's live API description (asked through the
//! runtime's Gradio client, see [`crate::app`]) or a saved one.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use daggr::hf::hub::{default_hub, Target};
use daggr::hf::HfToken;
use daggr_codegen::gradio;

use crate::error::CliError;

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
