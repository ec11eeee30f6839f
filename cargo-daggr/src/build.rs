//! Which target `cargo daggr` builds and how (as `cargo run` picks one), building it,
//! running it under a timeout, asking it for its graph, and finding its sources.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::{Message, Metadata, MetadataCommand, Package, Target as CargoTarget};
use clap::Args;
use daggr_codegen::ir::PipelineIr;
use daggr_codegen::static_graph::StaticSources;

use crate::error::CliError;
use daggr::EXPORT_GRAPH_ENV;

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

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

impl BuildArgs {
    /// The cargo flags that select the package and target and configure the build.
    pub(crate) fn cargo_flags(&self) -> Vec<String> {
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
pub(crate) fn build_and_ask(args: &BuildArgs) -> Result<(String, PipelineIr), CliError> {
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
pub(crate) fn run_with_timeout(
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
pub(crate) fn static_sources(args: &BuildArgs) -> Result<Vec<PathBuf>, CliError> {
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
