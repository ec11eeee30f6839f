//! `cargo daggr run --batch inputs.jsonl`: the batch variant of `cargo daggr run`. The
//! target is built as for a single run and started with the batch handshake
//! (`daggr::RUN_BATCH_ENV` beside `DAGGR_RUN`): its first pipeline runs over the input sets
//! of the file as one worker of the batch, keeping each item's status, outputs or error in
//! the sheet database (`--sheets`, else `DAGGR_SHEETS_URL`, else `.daggr/sheets.db`). Several
//! such commands, on several machines, given the same file, batch name and database, share
//! the batch; each claims items until none is left.
//!
//! While it runs, the program appends each update (an item claimed, done, failed, or lost
//! to another worker) to a file this command reads as it grows: shown on stderr, or with
//! `--json` printed on stdout as one JSON object per line, then the summary
//! (`"event": "summary"`). Exit status: 0 when every item is done, 1 when an item failed,
//! 2 when the batch could not run (a bad file, a batch of that name with other inputs, the
//! database).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Args;
use serde_json::Value as Json;

use crate::error::CliError;
use daggr::RUN_ENV;

/// The batch flags of `cargo daggr run`.
#[derive(Clone, Debug, Args)]
pub struct BatchArgs {
    /// Run the pipeline over every input set of this JSON Lines file (one JSON object of
    /// named inputs per line) as one worker of a batch, resumable and shared with other
    /// workers; instead of --input. --timeout does not apply: a batch takes as long as its
    /// items (see --item-timeout).
    #[arg(long, value_name = "INPUTS.jsonl", conflicts_with = "inputs")]
    pub batch: Option<PathBuf>,
    /// The batch's name (default: the file's name without its extension).
    #[arg(long, value_name = "NAME", requires = "batch")]
    pub batch_name: Option<String>,
    /// This worker's name in the batch's claims (default: host:pid); workers sharing a
    /// batch need different names.
    #[arg(long, value_name = "ID", requires = "batch")]
    pub worker: Option<String>,
    /// Items this worker runs at once [default: 4].
    #[arg(long, value_name = "N", requires = "batch")]
    pub concurrency: Option<usize>,
    /// Seconds a claim lasts unless renewed: how long an item whose worker died waits for
    /// another worker [default: 60].
    #[arg(long, value_name = "SECONDS", requires = "batch")]
    pub lease: Option<f64>,
    /// Seconds one item may run here before its run is cancelled and it fails [default: no
    /// limit].
    #[arg(long, value_name = "SECONDS", requires = "batch")]
    pub item_timeout: Option<f64>,
    /// Claims an item gets when every worker that ran it stopped before it finished (it
    /// crashed or hung them); past them it is failed instead of run again [default: 3].
    #[arg(long, value_name = "N", requires = "batch")]
    pub max_claims: Option<u32>,
    /// Leave the items that failed in an earlier run failed, instead of trying them again.
    #[arg(long, requires = "batch")]
    pub keep_failed: bool,
}

/// Runs the built target `exe` (`name`) over the batch `file`; the exit status. `--timeout`
/// does not apply: a batch takes as long as its items (each node has its own timeout).
pub fn run_batch(
    args: &BatchArgs,
    sheets: Option<&str>,
    file: &Path,
    json: bool,
    name: &str,
    exe: &Path,
) -> Result<i32, CliError> {
    let inputs = std::fs::canonicalize(file)
        .map_err(|e| CliError::Io(format!("reading {}: {e}", file.display())))?;
    for (flag, seconds) in [
        ("--lease", args.lease),
        ("--item-timeout", args.item_timeout),
    ] {
        if let Some(seconds) = seconds {
            if !(seconds.is_finite() && seconds > 0.0) {
                return Err(CliError::Input(format!(
                    "{flag} {seconds}: give a number of seconds above 0"
                )));
            }
        }
    }
    let batch = match &args.batch_name {
        Some(batch) => batch.clone(),
        None => inputs
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "batch".into()),
    };
    // A private directory (0700, removed on drop) for the answer and the updates.
    let dir = tempfile::Builder::new()
        .prefix("cargo-daggr-")
        .tempdir()
        .map_err(|e| CliError::Io(format!("creating a temporary directory: {e}")))?;
    let answer_file = dir.path().join("answer.json");
    let events_file = dir.path().join("events.jsonl");
    std::fs::write(&events_file, "")
        .map_err(|e| CliError::Io(format!("creating {}: {e}", events_file.display())))?;
    let request = serde_json::json!({
        "inputs": inputs,
        "name": batch,
        "sheets": sheets,
        "worker": args.worker,
        "concurrency": args.concurrency,
        "lease_ms": args.lease.map(|s| (s * 1000.0).round() as u64),
        "item_timeout_ms": args.item_timeout.map(|s| (s * 1000.0).round() as u64),
        "max_claims": args.max_claims,
        "retry_failed": !args.keep_failed,
        "events": events_file,
    });
    let mut child = Command::new(exe)
        .env(RUN_ENV, &answer_file)
        .env(daggr::RUN_BATCH_ENV, request.to_string())
        .env("DAGGR_NO_LAUNCH", "1")
        .stdin(Stdio::null())
        // The program's own printing goes to stderr: stdout is the updates and summary.
        .stdout(std::io::stderr())
        .spawn()
        .map_err(|e| CliError::Io(format!("running {}: {e}", exe.display())))?;
    let mut updates = Updates::open(&events_file)?;
    let status = loop {
        let exited = child
            .try_wait()
            .map_err(|e| CliError::Io(format!("waiting for {}: {e}", exe.display())))?;
        for update in updates.read_new() {
            show_update(&update, json);
        }
        if let Some(status) = exited {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever it wrote before it exited.
    for update in updates.read_new() {
        show_update(&update, json);
    }
    let text = std::fs::read_to_string(&answer_file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            CliError::NoGraph(format!("the target `{name}` ({status})"))
        }
        _ => CliError::Io(format!("reading the answer `{name}` wrote: {e}")),
    })?;
    let mut summary: Json = serde_json::from_str(&text)
        .map_err(|e| CliError::Io(format!("the answer `{name}` wrote is not valid: {e}")))?;
    let code = status.code().unwrap_or(1);
    if let Some(error) = summary["error"].as_str() {
        eprintln!("error: {error}");
        return Ok(code);
    }
    for failed in summary["failed"].as_array().into_iter().flatten() {
        eprintln!(
            "error: item {} failed: {}",
            failed["item"],
            failed["error"].as_str().unwrap_or("?")
        );
    }
    if json {
        if let Some(object) = summary.as_object_mut() {
            object.insert("event".into(), "summary".into());
        }
        println!("{summary}");
    } else {
        print!("{}", summary_text(&summary));
    }
    Ok(code)
}

/// The lines of a file another process appends to, read as they are completed.
struct Updates {
    reader: BufReader<std::fs::File>,
    /// A line read before its end was written.
    partial: String,
}

impl Updates {
    fn open(path: &Path) -> Result<Updates, CliError> {
        let file = std::fs::File::open(path)
            .map_err(|e| CliError::Io(format!("reading {}: {e}", path.display())))?;
        Ok(Updates {
            reader: BufReader::new(file),
            partial: String::new(),
        })
    }

    /// The updates whose lines were completed since the last call.
    fn read_new(&mut self) -> Vec<Json> {
        let mut updates = Vec::new();
        loop {
            match self.reader.read_line(&mut self.partial) {
                Ok(0) | Err(_) => break,
                Ok(_) if self.partial.ends_with('\n') => {
                    if let Ok(update) = serde_json::from_str(self.partial.trim_end()) {
                        updates.push(update);
                    }
                    self.partial.clear();
                }
                // The rest of the line is not written yet.
                Ok(_) => break,
            }
        }
        updates
    }
}

/// An update on stdout as JSON, or on stderr as a line of text.
fn show_update(update: &Json, json: bool) {
    if json {
        println!("{update}");
        return;
    }
    let item = &update["item"];
    let progress = format!(
        "{} done here, {} failed, {} already done, of {}",
        update["done_here"], update["failed_here"], update["skipped"], update["total"]
    );
    match update["event"].as_str() {
        Some("claimed") => {
            if let Some(from) = update["reclaimed_from"].as_str() {
                eprintln!("item {item}: taken over from {from}, whose claim expired");
            }
        }
        Some("done") => eprintln!(
            "item {item} done in {:.0} ms ({progress})",
            update["elapsed_ms"].as_f64().unwrap_or(0.0)
        ),
        Some("failed") => eprintln!(
            "item {item} failed: {} ({progress})",
            update["error"].as_str().unwrap_or("?")
        ),
        Some("given_up") => eprintln!(
            "item {item} given up after {} claims: each worker that ran it stopped before it finished ({progress})",
            update["claims"]
        ),
        Some("lost") => eprintln!(
            "item {item}: this worker's claim expired and another worker took the item over; its result here is dropped"
        ),
        _ => {}
    }
}

/// The summary as text.
pub fn summary_text(summary: &Json) -> String {
    let count = |key: &str| summary[key].as_array().map_or(0, Vec::len);
    let mut text = format!(
        "batch `{}` of `{}`: {} of {} items done ({} by this worker, {} already done), {} failed",
        summary["batch"].as_str().unwrap_or("?"),
        summary["pipeline"].as_str().unwrap_or("?"),
        summary["done"],
        summary["total"],
        count("done_here"),
        summary["skipped"],
        count("failed"),
    );
    let remaining = summary["remaining"].as_u64().unwrap_or(0);
    if remaining > 0 {
        text.push_str(&format!(", {remaining} left to other workers"));
    }
    text.push_str(&format!(
        " · {:.1} s\n",
        summary["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0
    ));
    text
}
