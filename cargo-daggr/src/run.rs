//! `cargo daggr run`: builds the target and runs its pipeline headless on the given inputs
//! (or, with `--batch`, over a file of input sets: see [`crate::batch`]).

use std::process::{Command, Stdio};

use clap::Args;

use crate::build::{build_target, choose_target, run_with_timeout, BuildArgs};
use crate::error::CliError;
use daggr::sheet::SHEETS_URL_ENV;
use daggr::{RUN_ENV, RUN_INPUTS_ENV, RUN_SHEET_ENV};

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
    /// Run on this sheet of the pipeline (created when absent) instead of a fresh
    /// workspace: the inputs given are stored in it, the ones not given keep the sheet's,
    /// and the run is in its history (as a run from the inspector).
    #[arg(long, value_name = "NAME", conflicts_with = "batch")]
    pub sheet: Option<String>,
    /// Where the sheets (and batches) are kept: an SQLite file's path, or a URL
    /// (`postgres://…`, `sqlite://PATH`). Default: `DAGGR_SHEETS_URL`, else
    /// `.daggr/sheets.db`.
    #[arg(long, value_name = "PATH-or-URL")]
    pub sheets: Option<String>,
    /// `--batch FILE` and its flags: a batch instead of one call (see [`crate::batch`]).
    #[command(flatten)]
    pub batch: crate::batch::BatchArgs,
    /// Which target to build and how.
    #[command(flatten)]
    pub build: BuildArgs,
}

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
        return crate::batch::run_batch(
            &args.batch,
            args.sheets.as_deref(),
            file,
            args.json,
            &name,
            &exe,
        );
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
    if let Some(sheet) = &args.sheet {
        command.env(RUN_SHEET_ENV, sheet);
    }
    if let Some(sheets) = &args.sheets {
        command.env(SHEETS_URL_ENV, sheets);
    }
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
    for unsaved in answer["unsaved"].as_array().into_iter().flatten() {
        eprintln!(
            "error: node `{}`: {}",
            unsaved["node"].as_str().unwrap_or("?"),
            unsaved["error"].as_str().unwrap_or("?")
        );
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
    let sheet = &answer["sheet"];
    if let Some(name) = sheet["name"].as_str() {
        let created = if sheet["created"].as_bool() == Some(true) {
            " (created)"
        } else {
            ""
        };
        text.push_str(&format!(
            "sheet: {name}{created} in {}\n",
            sheet["location"].as_str().unwrap_or("?")
        ));
    }
    text
}
