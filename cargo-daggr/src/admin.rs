//! `cargo daggr sheets …` and `cargo daggr cache …`: the project's sheets and cache as the
//! runtime keeps them, read and collected through its public API ([`SheetStore`],
//! [`Cache`]), so the counts and sizes printed are the library's own.
//!
//! Where they are is found as a program run in the project finds them: the flags, else
//! the runtime's variables (`DAGGR_CACHE_DIR`, `DAGGR_CACHE_URL`, `DAGGR_SHEETS_URL`,
//! `DAGGR_SHEETS_DB`), else `.daggr/` in the project (the directory of `--manifest-path`,
//! else the nearest one above the current directory holding a `.daggr` directory or a
//! `Cargo.toml`). Reading never creates a database or a cache directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value as Json};

use daggr::cache::{CacheStats, GcReport, PushReport, CACHE_DIR_ENV, CACHE_URL_ENV};
use daggr::sheet::{SheetInfo, SheetRecord, SheetStore, SheetUsage, SHEETS_DB_ENV, SHEETS_URL_ENV};
use daggr::Cache;

use crate::error::CliError;

/// Where the project's sheets and cache are.
#[derive(Clone, Debug, Default, Args)]
pub struct StoreArgs {
    /// The project: the directory of this `Cargo.toml` (its `.daggr/`). Default: the
    /// nearest directory at or above the current one holding `.daggr` or `Cargo.toml`.
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// The sheets database: an SQLite file's path, or a URL (`postgres://…`,
    /// `sqlite://…`). Default: `$DAGGR_SHEETS_URL`, `$DAGGR_SHEETS_DB`, else `sheets.db`
    /// beside the cache directory.
    #[arg(long, global = true, value_name = "PATH-or-URL")]
    pub sheets: Option<String>,
    /// The cache directory. Default: `$DAGGR_CACHE_DIR`, else the project's
    /// `.daggr/cache`.
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The shared store behind the cache (`s3://bucket/prefix`, `gs://…`, `az://…`,
    /// `file:///path`). Default:
    /// `$DAGGR_CACHE_URL`.
    #[arg(long, global = true, value_name = "URL")]
    pub cache_url: Option<String>,
}

/// `cargo daggr sheets` arguments.
#[derive(Debug, Args)]
pub struct SheetsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SheetsCommand,
    /// Where the sheets are.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `cargo daggr sheets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SheetsCommand {
    /// Every sheet of every pipeline, with its counts and size.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One sheet: its stored inputs, and each node's results.
    Show {
        /// The sheet.
        name: String,
        /// The pipeline, when several have a sheet of that name.
        #[arg(long)]
        pipeline: Option<String>,
        /// Print JSON (as `export` writes it) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a sheet with its inputs and history (its results stay in the cache until
    /// `cargo daggr cache gc`).
    Delete {
        /// The sheet.
        name: String,
        /// The pipeline, when several have a sheet of that name.
        #[arg(long)]
        pipeline: Option<String>,
    },
    /// Write a sheet: its inputs, and every node's history with outputs and provenance.
    Export {
        /// The sheet.
        name: String,
        /// The pipeline, when several have a sheet of that name.
        #[arg(long)]
        pipeline: Option<String>,
        /// The format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// Formats of `cargo daggr sheets export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// The sheet as one JSON document.
    Json,
}

/// `cargo daggr cache` arguments.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CacheCommand,
    /// Where the cache (and the sheets, whose references `gc` keeps) are.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `cargo daggr cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Results, content files and bytes on disk.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove the results and media that no sheet refers to (a result only a headless
    /// run or `cargo daggr run` made is computed again when next needed).
    Gc {
        /// Say what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upload the results of the local directory that the shared store (`--cache-url`, else
    /// `$DAGGR_CACHE_URL`) does not have, with their media: what was computed before the
    /// store was set up, or while it could not be reached.
    Push {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Where the sheets are: an SQLite file, or a database server's URL.
enum SheetsAt {
    File(PathBuf),
    Url(String),
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl StoreArgs {
    /// The project directory `--manifest-path` names, if it does.
    fn project(&self) -> Option<PathBuf> {
        let manifest = self.manifest_path.as_ref()?;
        let dir = manifest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Some(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()))
    }

    /// The cache directory, found as the runtime finds it ([`Cache::open_default`]).
    fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        if let Some(dir) = env(CACHE_DIR_ENV) {
            return PathBuf::from(dir);
        }
        match self.project() {
            Some(project) => project.join(".daggr").join("cache"),
            None => daggr::cache::default_dir(),
        }
    }

    /// The sheets database, found as [`SheetStore::open_default`] finds it.
    fn sheets_at(&self) -> SheetsAt {
        let named = self
            .sheets
            .clone()
            .or_else(|| env(SHEETS_URL_ENV))
            .map(|s| s.trim().to_string());
        if let Some(url) = named {
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                return SheetsAt::Url(url);
            }
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(&url);
            return SheetsAt::File(PathBuf::from(path));
        }
        if let Some(path) = env(SHEETS_DB_ENV) {
            return SheetsAt::File(PathBuf::from(path));
        }
        let cache = self.cache_dir();
        let dir = cache.parent().map(Path::to_path_buf).unwrap_or(cache);
        SheetsAt::File(dir.join("sheets.db"))
    }

    /// Opens the sheets database; `None` when it is a file that does not exist (no sheet
    /// was ever stored there: nothing to create).
    fn open_sheets(&self) -> Result<(Option<SheetStore>, String), CliError> {
        let store = match self.sheets_at() {
            SheetsAt::File(path) if !path.is_file() => {
                return Ok((None, path.display().to_string()))
            }
            SheetsAt::File(path) => SheetStore::open(path)?,
            SheetsAt::Url(url) => SheetStore::open_url(&url)?,
        };
        // The runtime's name for it (a URL without its password).
        let shown = store.location().to_string();
        Ok((Some(store), shown))
    }

    /// Opens the cache (in front of its shared store, if one is configured); `None` when
    /// the directory does not exist.
    fn open_cache(&self) -> Result<(Option<Cache>, PathBuf), CliError> {
        let dir = self.cache_dir();
        if !dir.is_dir() {
            return Ok((None, dir));
        }
        let url = self.cache_url.clone().or_else(|| env(CACHE_URL_ENV));
        let cache = match url {
            Some(url) => Cache::open_url(&dir, url.trim())?,
            None => Cache::open(&dir)?,
        };
        Ok((Some(cache), dir))
    }
}

/// `512 B`, `12.3 KiB`, `4.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How long ago `unix_ms` was: `12 s ago`, `5 min ago`, `3 h ago`, `2 days ago`.
fn ago(unix_ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let s = (now - unix_ms).max(0) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// A value for a line of text: compact JSON, cut at 80 characters.
fn short(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() <= 80 {
        return text;
    }
    let cut: String = text.chars().take(77).collect();
    format!("{cut}…")
}

/// Prints rows as columns, the first row a header.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A sheet as `list --json` prints it.
fn sheet_json(info: &SheetInfo, usage: &SheetUsage) -> Json {
    json!({
        "pipeline": info.pipeline,
        "name": info.name,
        "id": info.id,
        "created_ms": info.created_ms,
        "updated_ms": info.updated_ms,
        "inputs": usage.inputs,
        "results": usage.results,
        "failures": usage.failures,
        "bytes": usage.bytes,
    })
}

/// The one sheet called `name` (of `pipeline`, when given): its pipeline. An unknown name
/// is an error naming the closest one; a name several pipelines use asks for
/// `--pipeline`.
fn find_sheet(
    sheets: &[(SheetInfo, SheetUsage)],
    name: &str,
    pipeline: Option<&str>,
    db: &str,
) -> Result<String, CliError> {
    let in_scope: Vec<&SheetInfo> = sheets
        .iter()
        .map(|(info, _)| info)
        .filter(|info| pipeline.is_none_or(|p| info.pipeline == p))
        .collect();
    let found: Vec<&SheetInfo> = in_scope
        .iter()
        .copied()
        .filter(|i| i.name == name)
        .collect();
    match found.as_slice() {
        [one] => Ok(one.pipeline.clone()),
        [] => {
            let names: Vec<&str> = in_scope.iter().map(|i| i.name.as_str()).collect();
            let hint = daggr_codegen::suggest(name, names.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            let of = pipeline
                .map(|p| format!(" of pipeline `{p}`"))
                .unwrap_or_default();
            let listed = if names.is_empty() {
                "there are none".to_string()
            } else {
                let mut unique: Vec<&str> = names.clone();
                unique.sort_unstable();
                unique.dedup();
                format!("the sheets: {}", unique.join(", "))
            };
            Err(CliError::Sheet(format!(
                "no sheet `{name}`{of} in {db}{hint} ({listed})"
            )))
        }
        several => {
            let pipelines: Vec<&str> = several.iter().map(|i| i.pipeline.as_str()).collect();
            Err(CliError::Sheet(format!(
                "several pipelines have a sheet `{name}` ({}): choose one with --pipeline",
                pipelines.join(", ")
            )))
        }
    }
}

/// `cargo daggr sheets …`.
pub fn sheets(args: &SheetsArgs) -> Result<(), CliError> {
    let (store, db) = args.store.open_sheets()?;
    let sheets = match &store {
        Some(store) => store.inventory()?,
        None => Vec::new(),
    };
    // A command on one sheet, in a project with no database: say where it was looked for.
    let one = |name: &str, pipeline: &Option<String>| -> Result<(&SheetStore, String), CliError> {
        let Some(store) = &store else {
            return Err(CliError::Sheet(format!(
                "no sheet `{name}`: there is no sheets database at {db} (no pipeline stored a sheet in this project yet; --sheets or DAGGR_SHEETS_URL name another)"
            )));
        };
        Ok((store, find_sheet(&sheets, name, pipeline.as_deref(), &db)?))
    };
    match &args.command {
        SheetsCommand::List { json } => {
            if *json {
                let list: Vec<Json> = sheets.iter().map(|(i, u)| sheet_json(i, u)).collect();
                println!("{}", json!({ "database": db, "sheets": list }));
                return Ok(());
            }
            print!("{}", list_text(&sheets, &db, store.is_some()));
        }
        SheetsCommand::Show {
            name,
            pipeline,
            json,
        } => {
            let (store, pipeline) = one(name, pipeline)?;
            let record = store.read_sheet(&pipeline, name)?;
            if *json {
                println!("{}", record_json(&record, &db));
            } else {
                print!("{}", show_text(&record, &db));
            }
        }
        SheetsCommand::Delete { name, pipeline } => {
            let (store, pipeline) = one(name, pipeline)?;
            let usage = sheets
                .iter()
                .find(|(i, _)| i.pipeline == pipeline && i.name == *name)
                .map(|(_, u)| *u)
                .unwrap_or_default();
            store.delete(&pipeline, name)?;
            println!(
                "deleted sheet `{name}` of `{pipeline}` ({} results, {} failed, {}) from {db}; `cargo daggr cache gc` frees the cache entries only it referred to",
                usage.results,
                usage.failures,
                human_bytes(usage.bytes)
            );
        }
        SheetsCommand::Export {
            name,
            pipeline,
            format: ExportFormat::Json,
            output,
        } => {
            let (store, pipeline) = one(name, pipeline)?;
            let record = store.read_sheet(&pipeline, name)?;
            let text = serde_json::to_string_pretty(&record_json(&record, &db))
                .map_err(|e| CliError::Io(format!("writing the sheet as JSON: {e}")))?
                + "\n";
            match output {
                Some(path) => {
                    std::fs::write(path, text)
                        .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display())))?;
                    eprintln!(
                        "cargo daggr: wrote sheet `{name}` of `{pipeline}` to {}",
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}

/// A sheet as `show --json` and `export` write it: the runtime's record, and where it is.
fn record_json(record: &SheetRecord, db: &str) -> Json {
    let mut value = serde_json::to_value(record).unwrap_or(Json::Null);
    if let Json::Object(map) = &mut value {
        map.insert("database".into(), json!(db));
    }
    value
}

fn list_text(sheets: &[(SheetInfo, SheetUsage)], db: &str, exists: bool) -> String {
    if !exists {
        return format!("no sheets: there is no sheets database at {db}\n");
    }
    if sheets.is_empty() {
        return format!("no sheets in {db}\n");
    }
    let mut rows = vec![[
        "PIPELINE", "SHEET", "INPUTS", "RESULTS", "FAILED", "SIZE", "UPDATED",
    ]
    .map(String::from)
    .to_vec()];
    for (info, usage) in sheets {
        rows.push(vec![
            info.pipeline.clone(),
            info.name.clone(),
            usage.inputs.to_string(),
            usage.results.to_string(),
            usage.failures.to_string(),
            human_bytes(usage.bytes),
            ago(info.updated_ms),
        ]);
    }
    let results: usize = sheets.iter().map(|(_, u)| u.results).sum();
    let bytes: u64 = sheets.iter().map(|(_, u)| u.bytes).sum();
    format!(
        "sheets in {db}\n{}{} sheet(s), {results} result(s), {}\n",
        table(&rows),
        sheets.len(),
        human_bytes(bytes)
    )
}

fn show_text(record: &SheetRecord, db: &str) -> String {
    let (info, usage) = (&record.info, &record.usage);
    let mut text = format!(
        "sheet `{}` of pipeline `{}` (id {}) in {db}\ncreated {}, updated {}; {} input(s), {} result(s), {} failed, {}\n",
        info.name,
        info.pipeline,
        info.id,
        ago(info.created_ms),
        ago(info.updated_ms),
        usage.inputs,
        usage.results,
        usage.failures,
        human_bytes(usage.bytes)
    );
    if !record.inputs.is_empty() {
        text.push_str("\ninputs:\n");
        for input in &record.inputs {
            text.push_str(&format!(
                "  {}.{} = {}\n",
                input.node,
                input.port,
                short(&input.value)
            ));
        }
    }
    if record.history.is_empty() {
        text.push_str("\nno results yet\n");
        return text;
    }
    let mut rows = vec![["NODE", "RESULTS", "FAILED", "CURRENT"]
        .map(String::from)
        .to_vec()];
    for (node, entries) in &record.history {
        let results = entries.iter().filter(|e| !e.is_failure()).count();
        let current = entries
            .iter()
            .find(|e| e.selected)
            .map(|e| {
                let took = e
                    .elapsed_ms
                    .map(|ms| format!(", {ms:.1} ms"))
                    .unwrap_or_default();
                format!("#{} (run {}, {}{took})", e.id, e.run, e.outcome)
            })
            .unwrap_or_else(|| "none".into());
        rows.push(vec![
            node.clone(),
            results.to_string(),
            (entries.len() - results).to_string(),
            current,
        ]);
    }
    text.push_str("\nnodes:\n");
    for line in table(&rows).lines() {
        text.push_str(&format!("  {line}\n"));
    }
    text
}

/// `cargo daggr cache …`.
pub fn cache(args: &CacheArgs) -> Result<(), CliError> {
    let (cache, dir) = args.store.open_cache()?;
    match &args.command {
        CacheCommand::Stats { json } => {
            let stats = match &cache {
                Some(cache) => cache.stats()?,
                None => CacheStats::default(),
            };
            let shared = cache.as_ref().and_then(Cache::shared_location);
            if *json {
                println!(
                    "{}",
                    json!({
                        "dir": dir.display().to_string(),
                        "exists": cache.is_some(),
                        "entries": stats.entries,
                        "content_files": stats.content_files,
                        "content_bytes": stats.content_bytes,
                        "log_bytes": stats.log_bytes,
                        "total_bytes": stats.content_bytes + stats.log_bytes,
                        "shared": shared,
                    })
                );
                return Ok(());
            }
            if cache.is_none() {
                println!(
                    "no cache at {} (nothing has run in this project yet)",
                    dir.display()
                );
                return Ok(());
            }
            println!("cache {}", dir.display());
            println!("  results:        {}", stats.entries);
            println!(
                "  content files:  {} ({})",
                stats.content_files,
                human_bytes(stats.content_bytes)
            );
            println!("  record log:     {}", human_bytes(stats.log_bytes));
            println!(
                "  total:          {}",
                human_bytes(stats.content_bytes + stats.log_bytes)
            );
            if let Some(shared) = shared {
                println!("  shared store:   {shared} (not counted here)");
            }
        }
        CacheCommand::Gc { dry_run, json } => {
            let Some(cache) = cache else {
                println!("no cache at {}: nothing to collect", dir.display());
                return Ok(());
            };
            let (store, db) = args.store.open_sheets()?;
            let (report, sheets) = match &store {
                Some(store) => {
                    let sheets = store.inventory()?.len();
                    let report = if *dry_run {
                        store.gc_cache_dry_run(&cache)?
                    } else {
                        store.gc_cache(&cache)?
                    };
                    (report, sheets)
                }
                // No database: no sheet refers to anything.
                None => {
                    let none = HashSet::new();
                    let report = if *dry_run {
                        cache.gc_dry_run(&none, &HashSet::new())?
                    } else {
                        cache.gc(&none, &HashSet::new())?
                    };
                    (report, 0)
                }
            };
            if *json {
                println!(
                    "{}",
                    json!({
                        "dir": dir.display().to_string(),
                        "sheets_database": db,
                        "sheets": sheets,
                        "dry_run": dry_run,
                        "removed_entries": report.removed_entries,
                        "removed_files": report.removed_files,
                        "freed_bytes": report.freed_bytes,
                    })
                );
                return Ok(());
            }
            print!("{}", gc_text(&report, *dry_run, &dir, &db, sheets));
            if let Some(shared) = cache.shared_location() {
                println!("the shared store {shared} is not collected here");
            }
        }
        CacheCommand::Push { json } => {
            let Some(cache) = cache else {
                println!("no cache at {}: nothing to push", dir.display());
                return Ok(());
            };
            let Some(shared) = cache.shared_location() else {
                return Err(CliError::Input(format!(
                    "no shared store to push to: give --cache-url (s3://…, gs://…, az://…) or set {CACHE_URL_ENV}"
                )));
            };
            let report = cache.push_shared()?;
            if *json {
                let mut answer = serde_json::to_value(&report).unwrap_or_default();
                answer["dir"] = dir.display().to_string().into();
                answer["shared"] = shared.into();
                println!("{answer}");
            } else {
                print!("{}", push_text(&report, &dir, &shared));
            }
            if !report.failed.is_empty() {
                return Err(CliError::Io(format!(
                    "{} result(s) could not be uploaded (they stay local; push again to retry)",
                    report.failed.len()
                )));
            }
        }
    }
    Ok(())
}

fn push_text(report: &PushReport, dir: &Path, shared: &str) -> String {
    let mut text = format!(
        "pushed {} result(s) ({}) from {} to {shared}; {} already there\n",
        report.uploaded,
        human_bytes(report.bytes),
        dir.display(),
        report.already_there
    );
    if report.unreadable > 0 {
        text.push_str(&format!(
            "{} result(s) could not be read back (damaged) and were not pushed\n",
            report.unreadable
        ));
    }
    for failure in &report.failed {
        text.push_str(&format!("failed: {}: {}\n", failure.object, failure.error));
    }
    text
}

fn gc_text(report: &GcReport, dry_run: bool, dir: &Path, db: &str, sheets: usize) -> String {
    let (verb, freeing) = if dry_run {
        ("would remove", "freeing")
    } else {
        ("removed", "freed")
    };
    let kept = if sheets == 0 {
        format!("no sheet in {db} refers to any")
    } else {
        format!("kept what the {sheets} sheet(s) in {db} refer to")
    };
    let mut text = format!(
        "{verb} {} result(s) and {} file(s), {freeing} {}, from {} ({kept})\n",
        report.removed_entries,
        report.removed_files,
        human_bytes(report.freed_bytes),
        dir.display()
    );
    if dry_run {
        text.push_str("nothing was removed (--dry-run)\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pipeline: &str, name: &str) -> (SheetInfo, SheetUsage) {
        (
            SheetInfo {
                id: 1,
                pipeline: pipeline.into(),
                name: name.into(),
                created_ms: 0,
                updated_ms: 0,
            },
            SheetUsage::default(),
        )
    }

    #[test]
    fn sheets_are_found_by_name_with_clear_errors() {
        let sheets = [
            info("A", "default"),
            info("A", "experiment"),
            info("B", "default"),
        ];
        assert_eq!(find_sheet(&sheets, "experiment", None, "db").unwrap(), "A");
        assert_eq!(
            find_sheet(&sheets, "default", Some("B"), "db").unwrap(),
            "B"
        );
        assert_eq!(
            find_sheet(&sheets, "default", None, "db")
                .unwrap_err()
                .to_string(),
            "several pipelines have a sheet `default` (A, B): choose one with --pipeline"
        );
        assert_eq!(
            find_sheet(&sheets, "experimnet", None, "db")
                .unwrap_err()
                .to_string(),
            "no sheet `experimnet` in db; did you mean `experiment`? (the sheets: default, experiment)"
        );
        assert_eq!(
            find_sheet(&sheets, "experiment", Some("B"), "db")
                .unwrap_err()
                .to_string(),
            "no sheet `experiment` of pipeline `B` in db (the sheets: default)"
        );
    }

    #[test]
    fn sizes_and_tables_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_595), "12.3 KiB");
        assert_eq!(human_bytes(4 << 20), "4.0 MiB");
        assert_eq!(
            table(&[
                vec!["A".into(), "BB".into()],
                vec!["ccc".into(), "d".into()]
            ]),
            "A    BB\nccc  d\n"
        );
        let long = json!("x".repeat(100));
        assert_eq!(short(&long).chars().count(), 78);
    }
}
