//! `run_locally`: a Gradio Space run on this machine.
//!
//! 1. The repository: the Space's (`{hub}/spaces/{id}`, cloned with git, the token sent
//!    only to Hugging Face hosts and never on a command line), a git URL (cloned), or a
//!    local directory (used in place). A clone is reused and brought up to date with
//!    `git fetch` on each start (an offline fetch keeps the clone as it is).
//! 2. The machine: the venv's interpreter is the one named with `local_python`, else
//!    one on PATH matching the README's `python_version` (`python3.10`, then `python3`
//!    if it is 3.10; the same major.minor counts as a match), else `python3`: a mismatch
//!    is a warning (tracing and the app's log), never a silent choice. The Debian packages
//!    of `packages.txt` are checked with `dpkg-query` (where it exists), never installed:
//!    missing ones are a warning too. These warnings are repeated in the error when the
//!    install or the app then fails, as its likely cause.
//! 3. The venv: `<python> -m venv`, then `pip install gradio==<sdk_version>` (from the
//!    README front-matter; the latest gradio without one) with `-r requirements.txt`.
//!    It is reused, reinstalled when the requirements, the SDK version or the Python
//!    version change, and made anew when its interpreter's version is not the chosen one.
//! 4. The app (`app_file` from the front-matter, else `app.py`, `main.py`, `demo.py`)
//!    is launched with `GRADIO_SERVER_NAME=127.0.0.1` and `GRADIO_SERVER_PORT` set to a
//!    free port, and polled on `/config` until it answers or the timeout passes; an app
//!    that exits early fails at once with the end of its log.
//! 5. The child is stopped when the node (with the pipeline holding it) is dropped, and
//!    exits by itself if this process dies first. Logs of each step stay in
//!    `<dir>/<space>/logs/`.
//!
//! Clones, venvs and logs live under `$DAGGR_SPACES_DIR`, default `~/.cache/daggr/spaces`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::kinds::hf::{is_hf_host, HfToken};

/// Environment variable: where clones, venvs and logs live.
pub const SPACES_DIR_ENV: &str = "DAGGR_SPACES_DIR";
/// Environment variable: seconds a local app may take to answer after launch.
pub const LOCAL_TIMEOUT_ENV: &str = "DAGGR_LOCAL_TIMEOUT";
/// Environment variable: `1` makes a failed local start an error instead of a fallback.
pub const NO_FALLBACK_ENV: &str = "DAGGR_LOCAL_NO_FALLBACK";

/// How the warnings about the machine start in the logs.
const WARNING_PREFIX: &str = "# warning: ";

/// Runs the launched app and exits when its parent (this process) is gone.
const WATCHDOG: &str = r#"
import os, runpy, sys, threading, time
parent = os.getppid()
def watch():
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)
threading.Thread(target=watch, daemon=True).start()
app = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.getcwd())
runpy.run_path(app, run_name="__main__")
"#;

/// Where the app's code comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum LocalSource {
    /// The Space's own repository on the Hub.
    #[default]
    Space,
    /// A local directory, used in place.
    Path(PathBuf),
    /// A git URL, cloned.
    Git(String),
}

impl LocalSource {
    pub(crate) fn parse(repo: &str) -> LocalSource {
        let is_url = repo.contains("://") || repo.starts_with("git@") || repo.ends_with(".git");
        let path = Path::new(repo);
        if !is_url || path.is_dir() {
            LocalSource::Path(path.to_path_buf())
        } else {
            LocalSource::Git(repo.to_string())
        }
    }
}

/// The `run_locally` settings of a node.
#[derive(Clone, Debug)]
pub(crate) struct LocalSettings {
    pub source: LocalSource,
    pub fallback: bool,
    pub timeout: Duration,
    pub dir: Option<PathBuf>,
    /// The interpreter the user named; `None` chooses by the README's `python_version`.
    pub python: Option<PathBuf>,
    pub pip_args: Vec<String>,
}

impl Default for LocalSettings {
    fn default() -> Self {
        let timeout = std::env::var(LOCAL_TIMEOUT_ENV)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(120));
        LocalSettings {
            source: LocalSource::Space,
            fallback: true,
            timeout,
            dir: None,
            python: None,
            pip_args: Vec::new(),
        }
    }
}

/// Whether `DAGGR_LOCAL_NO_FALLBACK` forbids falling back to the remote Space.
pub(crate) fn no_fallback_env() -> bool {
    std::env::var(NO_FALLBACK_ENV).is_ok_and(|v| crate::exec::is_truthy(&v))
}

/// A running local app. Dropping the last handle stops it.
pub(crate) struct LocalApp {
    /// Its loopback URL.
    pub url: String,
    /// The repository's commit (with a hash of uncommitted changes, if any).
    pub revision: Option<String>,
    /// The app's log.
    pub log: PathBuf,
    child: Mutex<ChildGuard>,
}

struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl LocalApp {
    fn alive(&self) -> bool {
        let mut guard = self.child.lock().unwrap();
        match guard.0.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for LocalApp {
    fn drop(&mut self) {
        tracing::debug!(url = %self.url, "stopping the local app");
    }
}

type Slot = Arc<tokio::sync::Mutex<Weak<LocalApp>>>;

/// Running apps by directory, so nodes calling the same Space share one copy, and two
/// nodes never prepare the same directory at once.
fn registry() -> &'static Mutex<HashMap<PathBuf, Slot>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Slot>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Where the last revision the Hub gave for each Space is kept (`<spaces dir>/revisions`).
pub(crate) fn revisions_dir() -> PathBuf {
    default_root().join("revisions")
}

/// The file that remembers `space_id`'s last revision as `hub` gave it.
pub(crate) fn revision_file(dir: &std::path::Path, hub: &str, space_id: &str) -> PathBuf {
    dir.join(format!(
        "{}-{}",
        slug_name(space_id),
        short_hash(&format!("{hub} {space_id}"))
    ))
}

fn default_root() -> PathBuf {
    if let Some(d) = std::env::var_os(SPACES_DIR_ENV) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("daggr").join("spaces")
}

fn short_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..10].to_string()
}

fn slug_name(s: &str) -> String {
    let name = s
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', '\\', ':'])
        .next()
        .unwrap_or("app");
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "app".into()
    } else {
        clean
    }
}

/// Where a node's local copy lives (`dir`: its clone or nothing, venv and logs) and
/// where its code comes from.
fn location(
    space_id: Option<&str>,
    settings: &LocalSettings,
    hub: &str,
) -> Result<(PathBuf, RepoSource), String> {
    let root = settings.dir.clone().unwrap_or_else(default_root);
    Ok(match &settings.source {
        LocalSource::Space => {
            let id = space_id.ok_or_else(|| {
                "run_locally needs a Space id (owner/name) or run_locally_from(path or git URL)"
                    .to_string()
            })?;
            (root.join(id), RepoSource::Git(format!("{hub}/spaces/{id}")))
        }
        LocalSource::Git(url) => (
            root.join("git")
                .join(format!("{}-{}", slug_name(url), short_hash(url))),
            RepoSource::Git(url.clone()),
        ),
        LocalSource::Path(p) => {
            let abs = std::fs::canonicalize(p)
                .map_err(|e| format!("run_locally_from {}: {e}", p.display()))?;
            let key = abs.to_string_lossy().into_owned();
            (
                root.join("local")
                    .join(format!("{}-{}", slug_name(&key), short_hash(&key))),
                RepoSource::Dir(abs),
            )
        }
    })
}

/// Starts (or reuses) the local copy. A running copy is reused unless `expected` (the
/// revision a cache key was just made with) is not the revision it runs: then its code
/// changed since it started, and it is started again (the old copy stops when its last
/// node lets go of it). Errors are plain messages for the caller to wrap.
pub(crate) async fn start(
    node: &str,
    space_id: Option<&str>,
    settings: &LocalSettings,
    hub: &str,
    token: Option<&HfToken>,
    expected: Option<&str>,
) -> Result<Arc<LocalApp>, String> {
    let (dir, repo_source) = location(space_id, settings, hub)?;
    let slot = registry()
        .lock()
        .unwrap()
        .entry(dir.clone())
        .or_default()
        .clone();
    let mut current = slot.lock().await;
    if let Some(app) = current.upgrade() {
        if app.alive() && expected.is_none_or(|e| app.revision.as_deref() == Some(e)) {
            return Ok(app);
        }
    }
    let node = node.to_string();
    let settings = settings.clone();
    let token = token.cloned();
    let prepared = tokio::task::spawn_blocking(move || {
        prepare(&node, &dir, &repo_source, &settings, token.as_ref())
    })
    .await
    .map_err(|e| format!("preparing the local app panicked: {e}"))??;
    let app = Arc::new(wait_ready(prepared).await?);
    *current = Arc::downgrade(&app);
    Ok(app)
}

enum RepoSource {
    Git(String),
    Dir(PathBuf),
}

/// A launched app not known to answer yet.
struct Launched {
    child: ChildGuard,
    port: u16,
    log: PathBuf,
    revision: Option<String>,
    timeout: Duration,
    /// What the machine lacks, repeated in the error if the app does not answer.
    warnings: Vec<String>,
}

fn stamp() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{ms}")
}

/// Runs a command with its output in `log`; a failure names the log and quotes its end.
fn run_logged(what: &str, cmd: &mut Command, log: &Path) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let mut err = file.try_clone().map_err(|e| e.to_string())?;
    // The command line, without the environment (where a token may be).
    let _ = writeln!(
        err,
        "$ {:?} {:?}",
        cmd.get_program(),
        cmd.get_args().collect::<Vec<_>>()
    );
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .status()
        .map_err(|e| format!("{what}: cannot start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({status}); log {}:\n{}",
            log.display(),
            tail(log, 15)
        ))
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // The warnings daggr wrote at the top of a log are listed on their own after it.
    let all: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(WARNING_PREFIX))
        .collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn git_output(repo: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A git command that may talk to `url`: the token goes in an extra header through git's
/// environment configuration, only for Hugging Face hosts, and never in arguments.
fn git(url: &str, token: Option<&HfToken>) -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    if let Some(t) = token.filter(|_| is_hf_host(url)) {
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Bearer {}", t.expose()),
            );
    }
    cmd
}

/// Names left out of a directory's revision: what running and installing the app writes
/// beside its code (venvs, logs, caches, Gradio's own files), and git's database.
const NOT_CODE: &[&str] = &[
    ".git",
    "venv",
    ".venv",
    "logs",
    "__pycache__",
    ".gradio",
    "flagged",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".pytest_cache",
    "node_modules",
];

fn is_code(relative: &Path) -> bool {
    relative.extension().is_none_or(|e| e != "pyc")
        && !relative
            .components()
            .any(|c| NOT_CODE.iter().any(|n| c.as_os_str() == *n))
}

/// The revision of the code a node runs locally, as it is now, without starting it:
/// for a directory, [`dir_revision`]; for a git URL, the commit its `HEAD` names now
/// (what the next start fetches), or offline the clone's own; `None` for a Space's
/// repository (its revision is the Hub's) or when it cannot be told.
pub(crate) fn source_revision(settings: &LocalSettings, token: Option<&HfToken>) -> Option<String> {
    match &settings.source {
        LocalSource::Space => None,
        LocalSource::Path(p) => dir_revision(&std::fs::canonicalize(p).ok()?),
        LocalSource::Git(url) => {
            let out = git(url, token)
                .args(["ls-remote", url, "HEAD"])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success());
            let remote = out.and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.split_whitespace().next().map(str::to_string)
            });
            remote.or_else(|| {
                let (dir, _) = location(None, settings, "").ok()?;
                dir_revision(&dir.join("repo"))
            })
        }
    }
}

/// The revision of the code in `dir`: in a git work tree, `HEAD`'s commit, followed by
/// `+dirty.<hash>` of the uncommitted changes and untracked files under `dir` when there
/// are any; elsewhere `files.<hash>` of every file's path and content. Venvs, `.git`,
/// logs and caches ([`NOT_CODE`]) are left out, and in a work tree what `.gitignore`
/// ignores, so running the app does not change its revision.
pub(crate) fn dir_revision(dir: &Path) -> Option<String> {
    if !dir.is_dir() {
        return None;
    }
    let Some(head) = git_output(dir, &["rev-parse", "HEAD"]) else {
        return files_revision(dir);
    };
    let mut hasher = blake3::Hasher::new();
    let mut dirty = false;
    if let Some(diff) = git_output(dir, &["diff", "HEAD", "--binary", "--", "."]) {
        dirty |= !diff.is_empty();
        hasher.update(diff.as_bytes());
    }
    let untracked = git_output(
        dir,
        &[
            "ls-files",
            "--others",
            "--exclude-standard",
            "-z",
            "--",
            ".",
        ],
    )
    .unwrap_or_default();
    let mut paths: Vec<&str> = untracked
        .split('\0')
        .filter(|p| !p.is_empty() && is_code(Path::new(p)))
        .collect();
    paths.sort_unstable();
    for p in paths {
        dirty = true;
        hash_file(&mut hasher, p, &dir.join(p));
    }
    Some(if dirty {
        format!("{head}+dirty.{}", &hasher.finalize().to_hex()[..16])
    } else {
        head
    })
}

fn hash_file(hasher: &mut blake3::Hasher, name: &str, path: &Path) {
    hasher.update(name.as_bytes());
    hasher.update(b"\0");
    match std::fs::read(path) {
        Ok(bytes) => {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
        Err(_) => {
            hasher.update(b"unreadable");
        }
    }
}

/// A plain directory's revision: a hash of its files' relative paths and contents.
fn files_revision(dir: &Path) -> Option<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            if !is_code(relative) {
                continue;
            }
            // Not following links to directories: no cycles, no walking off elsewhere.
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(root, &path, out),
                Ok(_) if path.is_file() => out.push(relative.to_path_buf()),
                _ => {}
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    let mut hasher = blake3::Hasher::new();
    for f in &files {
        hash_file(&mut hasher, &f.to_string_lossy(), &dir.join(f));
    }
    Some(format!("files.{}", &hasher.finalize().to_hex()[..16]))
}

/// The README front-matter fields that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FrontMatter {
    pub sdk: Option<String>,
    pub sdk_version: Option<String>,
    pub app_file: Option<String>,
    pub python_version: Option<String>,
}

/// Reads the top-level keys of the README's YAML front matter, line by line: a full
/// YAML parser would be a dependency for four flat keys.
pub(crate) fn front_matter(readme: &str) -> FrontMatter {
    let mut fm = FrontMatter::default();
    // Editors on Windows may start the file with a byte-order mark.
    let mut lines = readme.trim_start_matches('\u{feff}').lines();
    if lines.next().map(str::trim) != Some("---") {
        return fm;
    }
    for line in lines {
        let line = line.trim_end();
        if line == "---" || line == "..." {
            break;
        }
        // An indented line belongs to a nested value (a list of models, a mapping), where
        // a key of the same name means something else.
        if line.starts_with([' ', '\t', '#']) {
            continue;
        }
        let Some((key, raw)) = line.split_once(':') else {
            continue;
        };
        let Some(value) = scalar(raw) else {
            continue;
        };
        match key.trim() {
            "sdk" => fm.sdk = Some(value),
            "sdk_version" => fm.sdk_version = Some(value),
            "app_file" => fm.app_file = Some(value),
            "python_version" => fm.python_version = Some(value),
            _ => {}
        }
    }
    fm
}

/// A one-line YAML scalar as text: quoted (up to the closing quote) or plain (up to a
/// `#` comment that follows a space). Kept as text, so `python_version: 3.10` stays
/// "3.10" where a YAML parser would read the number 3.1.
fn scalar(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let value = match raw.chars().next() {
        Some(quote @ ('"' | '\'')) => raw[1..].split(quote).next().unwrap_or(""),
        _ => {
            let comment = raw
                .char_indices()
                .find(|&(i, c)| c == '#' && (i == 0 || raw[..i].ends_with([' ', '\t'])))
                .map_or(raw.len(), |(i, _)| i);
            &raw[..comment]
        }
    };
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// The interpreter a venv is made with.
#[derive(Debug, PartialEq, Eq)]
struct Interpreter {
    /// A name looked up on PATH (`python3.10`) or a path.
    program: PathBuf,
    /// Its version, e.g. `3.10.12`.
    version: String,
    /// Why it is not the Python the Space asks for, when it is not.
    mismatch: Option<String>,
}

/// The version of a Python interpreter, or `None` when it does not run.
fn python_version(program: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !version.is_empty()).then_some(version)
}

/// `(major, minor)` of a version such as `3.10`, `3.10.13` or `3.11.7`.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Chooses the venv's interpreter: the one the user named, else one on PATH with the
/// major.minor of `wanted` (patch releases are compatible, and the exact patch a Space
/// names is rarely installed), else `python3` with a mismatch note. `version_of` runs
/// an interpreter ([`python_version`] outside tests).
fn choose_python(
    given: Option<&Path>,
    wanted: Option<&str>,
    version_of: impl Fn(&Path) -> Option<String>,
) -> Result<Interpreter, String> {
    let wanted_minor = wanted.and_then(major_minor);
    let matches = |version: &str| wanted_minor.is_some() && major_minor(version) == wanted_minor;
    let python3 = PathBuf::from("python3");
    let (program, version) = match given {
        Some(program) => {
            let version = version_of(program)
                .ok_or_else(|| format!("local_python {} does not run", program.display()))?;
            (program.to_path_buf(), version)
        }
        None => {
            let named = wanted_minor.map(|(major, minor)| format!("python{major}.{minor}"));
            let found = named.map(PathBuf::from).and_then(|program| {
                let version = version_of(&program).filter(|v| matches(v))?;
                Some((program, version))
            });
            match found {
                Some(found) => found,
                None => {
                    let version = version_of(&python3)
                        .ok_or("python3 does not run; name a Python with local_python")?;
                    (python3, version)
                }
            }
        }
    };
    let mismatch = wanted
        .filter(|_| !matches(&version))
        .map(|w| match (given, wanted_minor) {
            (Some(_), _) => format!(
                "the Space asks for Python {w} (python_version); the venv uses the given \
                 local_python {} ({version})",
                program.display()
            ),
            (None, Some((major, minor))) => format!(
                "the Space asks for Python {w} (python_version), but there is no \
                 python{major}.{minor} on PATH and python3 is {version}: the venv uses \
                 python3 ({version}); install Python {major}.{minor} or name one with \
                 local_python"
            ),
            (None, None) => format!(
                "the Space asks for Python {w:?} (python_version), which is not a version: \
                 the venv uses python3 ({version})"
            ),
        });
    Ok(Interpreter {
        program,
        version,
        mismatch,
    })
}

/// The Debian packages a `packages.txt` lists (whitespace-separated, `#` comments),
/// without the version pins `name=1.2` that apt accepts.
fn packages_txt(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .map(|p| p.split('=').next().unwrap_or(p).to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether a Debian package is installed; `None` when dpkg-query cannot run here.
fn dpkg_installed(package: &str) -> Option<bool> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\n", package])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    // `install ok installed`, once per architecture; a removed package keeps
    // `deinstall ok config-files`, and an unknown one makes dpkg-query fail.
    let status = String::from_utf8_lossy(&out.stdout);
    Some(out.status.success() && status.lines().any(|l| l.ends_with(" installed")))
}

/// The warning about `packages`, if any: the missing ones (run_locally installs none),
/// or all of them when they cannot be checked. `installed` is [`dpkg_installed`]
/// outside tests.
fn packages_warning(
    packages: &[String],
    installed: impl Fn(&str) -> Option<bool>,
) -> Option<String> {
    let mut missing = Vec::new();
    for package in packages {
        match installed(package) {
            Some(true) => {}
            Some(false) => missing.push(package.as_str()),
            None => {
                return Some(format!(
                    "packages.txt lists Debian packages that could not be checked (no \
                     dpkg-query here) and that run_locally does not install: {}",
                    packages.join(" ")
                ))
            }
        }
    }
    (!missing.is_empty()).then(|| {
        format!(
            "packages.txt lists Debian packages that are not installed: {} (run_locally \
             installs none; e.g. `sudo apt-get install {}`)",
            missing.join(" "),
            missing.join(" ")
        )
    })
}

/// An error with the environment warnings that may explain it.
fn with_warnings(error: String, warnings: &[String]) -> String {
    if warnings.is_empty() {
        return error;
    }
    let list: Vec<String> = warnings.iter().map(|w| format!("- {w}")).collect();
    format!("{error}\nthis may be why:\n{}", list.join("\n"))
}

fn prepare(
    node: &str,
    dir: &Path,
    source: &RepoSource,
    settings: &LocalSettings,
    token: Option<&HfToken>,
) -> Result<Launched, String> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let when = stamp();
    // 1. The code.
    let repo = match source {
        RepoSource::Dir(p) => p.clone(),
        RepoSource::Git(url) => {
            let repo = dir.join("repo");
            let log = logs.join(format!("git-{when}.log"));
            if repo.join(".git").is_dir() {
                let fetched = run_logged(
                    "git fetch",
                    git(url, token)
                        .arg("-C")
                        .arg(&repo)
                        .args(["fetch", "--depth", "1", "origin", "HEAD"]),
                    &log,
                )
                .and_then(|_| {
                    run_logged(
                        "git reset",
                        Command::new("git").arg("-C").arg(&repo).args([
                            "reset",
                            "--hard",
                            "FETCH_HEAD",
                        ]),
                        &log,
                    )
                });
                if let Err(e) = fetched {
                    tracing::warn!(
                        node,
                        "could not update the clone of {url}; using it as it is: {e}"
                    );
                }
            } else {
                let _ = std::fs::remove_dir_all(&repo);
                run_logged(
                    "git clone",
                    git(url, token)
                        .args(["clone", "--depth", "1", url])
                        .arg(&repo),
                    &log,
                )?;
            }
            repo
        }
    };
    // Computed as `source_revision` computes it before a run, so the two agree.
    let revision = dir_revision(&repo);
    // 2. What to install and run.
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap_or_default();
    let fm = front_matter(&readme);
    if let Some(sdk) = fm.sdk.as_deref().filter(|s| *s != "gradio") {
        return Err(format!(
            "the Space's README says `sdk: {sdk}`; run_locally runs Gradio Spaces only"
        ));
    }
    let app_file = match &fm.app_file {
        Some(f) => f.clone(),
        None => ["app.py", "main.py", "demo.py"]
            .iter()
            .find(|f| repo.join(f).is_file())
            .map(|f| f.to_string())
            .ok_or_else(|| format!("no app.py, main.py or demo.py in {}", repo.display()))?,
    };
    if !repo.join(&app_file).is_file() {
        return Err(format!(
            "the app file {app_file} is missing from {}",
            repo.display()
        ));
    }
    let requirements = repo.join("requirements.txt");
    let gradio = match &fm.sdk_version {
        Some(v) => format!("gradio=={v}"),
        None => "gradio".to_string(),
    };
    // 3. The machine: what the Space expects of it that pip cannot install.
    let interpreter = choose_python(
        settings.python.as_deref(),
        fm.python_version.as_deref(),
        python_version,
    )?;
    let packages = std::fs::read_to_string(repo.join("packages.txt"))
        .map(|text| packages_txt(&text))
        .unwrap_or_default();
    let warnings: Vec<String> = interpreter
        .mismatch
        .clone()
        .into_iter()
        .chain(packages_warning(&packages, dpkg_installed))
        .collect();
    for warning in &warnings {
        tracing::warn!(node, "run_locally: {warning}");
    }
    // 4. The venv.
    let python = install(
        dir,
        &logs.join(format!("install-{when}.log")),
        &interpreter,
        &gradio,
        requirements.is_file().then_some(requirements.as_path()),
        settings,
        &warnings,
    )
    .map_err(|e| with_warnings(e, &warnings))?;
    // 5. Launch.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))?;
    let log = logs.join(format!("app-{when}.log"));
    let mut file =
        std::fs::File::create(&log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let _ = writeln!(
        file,
        "# daggr run_locally: {} on 127.0.0.1:{port} with Python {}",
        repo.join(&app_file).display(),
        interpreter.version
    );
    for warning in &warnings {
        let _ = writeln!(file, "{WARNING_PREFIX}{warning}");
    }
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(&python)
        .args(["-u", "-c", WATCHDOG, &app_file])
        .current_dir(&repo)
        .env("GRADIO_SERVER_NAME", "127.0.0.1")
        .env("GRADIO_SERVER_PORT", port.to_string())
        .env("GRADIO_ANALYTICS_ENABLED", "False")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("cannot launch {app_file}: {e}"))?;
    Ok(Launched {
        child: ChildGuard(Some(child)),
        port,
        log,
        revision,
        timeout: settings.timeout,
        warnings,
    })
}

/// Makes (or reuses) `<dir>/venv` with `interpreter` and installs `gradio` and the
/// requirements; returns the venv's Python. The install log starts with `warnings`.
fn install(
    dir: &Path,
    log: &Path,
    interpreter: &Interpreter,
    gradio: &str,
    requirements: Option<&Path>,
    settings: &LocalSettings,
    warnings: &[String],
) -> Result<PathBuf, String> {
    let venv = dir.join("venv");
    let python = venv.join("bin").join("python");
    let requirements_text = requirements
        .and_then(|r| std::fs::read_to_string(r).ok())
        .unwrap_or_default();
    let want = short_hash(&format!(
        "python {}\n{gradio}\n{requirements_text}",
        interpreter.version
    ));
    let stamp_file = venv.join(".daggr-installed");
    let have = std::fs::read_to_string(&stamp_file).unwrap_or_default();
    // Asked of the venv itself, so a venv made by another interpreter (or whose
    // interpreter is gone) is made anew rather than mixed with this one's packages.
    let venv_version = python_version(&python);
    if have.trim() == want && venv_version.as_deref() == Some(interpreter.version.as_str()) {
        return Ok(python);
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    for warning in warnings {
        let _ = writeln!(file, "{WARNING_PREFIX}{warning}");
    }
    if venv_version.as_deref() != Some(interpreter.version.as_str()) {
        if venv.exists() {
            let _ = writeln!(
                file,
                "# the venv's Python is {}; making it anew with {} ({})",
                venv_version.as_deref().unwrap_or("missing or broken"),
                interpreter.program.display(),
                interpreter.version
            );
            std::fs::remove_dir_all(&venv)
                .map_err(|e| format!("cannot remove {}: {e}", venv.display()))?;
        }
        run_logged(
            "creating the venv",
            Command::new(&interpreter.program)
                .args(["-m", "venv"])
                .arg(&venv),
            log,
        )?;
    }
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--disable-pip-version-check"])
        .args(&settings.pip_args)
        .arg(gradio);
    if let Some(r) = requirements {
        pip.arg("-r").arg(r);
    }
    run_logged(
        &format!("pip install {gradio} -r requirements.txt"),
        &mut pip,
        log,
    )?;
    std::fs::write(&stamp_file, &want).map_err(|e| e.to_string())?;
    Ok(python)
}

/// The URL the app printed, if it chose its own port.
fn printed_url(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("Running on local URL:"))?;
    let url = line.split("URL:").nth(1)?.trim();
    Some(url.trim_end_matches('/').to_string())
}

async fn wait_ready(mut launched: Launched) -> Result<LocalApp, String> {
    let http = crate::kinds::http::client::shared().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut url = format!("http://127.0.0.1:{}", launched.port);
    loop {
        if let Some(child) = launched.child.0.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let error = format!(
                    "the app exited ({status}) before answering; log {}:\n{}",
                    launched.log.display(),
                    tail(&launched.log, 20)
                );
                return Err(with_warnings(error, &launched.warnings));
            }
        }
        if let Some(printed) = printed_url(&launched.log) {
            url = printed
                .replace("://localhost", "://127.0.0.1")
                .replace("://0.0.0.0", "://127.0.0.1");
        }
        if let Ok(r) = http
            .get(format!("{url}/config"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            if r.status().is_success() || r.status().as_u16() == 401 {
                return Ok(LocalApp {
                    url,
                    revision: launched.revision.take(),
                    log: launched.log.clone(),
                    child: Mutex::new(ChildGuard(launched.child.0.take())),
                });
            }
        }
        if started.elapsed() > launched.timeout {
            let error = format!(
                "the app did not answer on {url} within {:?}; log {}:\n{}",
                launched.timeout,
                launched.log.display(),
                tail(&launched.log, 20)
            );
            return Err(with_warnings(error, &launched.warnings));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_is_read() {
        let readme = "---\ntitle: Demo\nsdk: gradio\nsdk_version: 5.50.0\napp_file: \"main.py\"\npython_version: \"3.10\"\n---\n# Demo\nsdk: docker\n";
        assert_eq!(
            front_matter(readme),
            FrontMatter {
                sdk: Some("gradio".into()),
                sdk_version: Some("5.50.0".into()),
                app_file: Some("main.py".into()),
                python_version: Some("3.10".into()),
            }
        );
        assert_eq!(
            front_matter("# no front matter\nsdk: gradio"),
            FrontMatter::default()
        );
    }

    #[test]
    fn front_matter_takes_quotes_comments_and_odd_spacing() {
        let readme = "\u{feff}---  \r\n\
            # a comment line\r\n\
            sdk :   gradio   # the SDK\r\n\
            sdk_version: '5.50.0' # pinned\r\n\
            python_version:3.10.13\r\n\
            app_file: \"src/app #1.py\"  # quoted: the # is part of it\r\n\
            models:\r\n\
            \x20 - app_file: nested.py\r\n\
            \x20 sdk: docker\r\n\
            emoji: 🚀\r\n\
            ---\r\n";
        assert_eq!(
            front_matter(readme),
            FrontMatter {
                sdk: Some("gradio".into()),
                sdk_version: Some("5.50.0".into()),
                app_file: Some("src/app #1.py".into()),
                python_version: Some("3.10.13".into()),
            }
        );
        // Unquoted, a version stays text (YAML would read 3.10 as the number 3.1); an
        // empty or comment-only value is no value; a key inside the body is not read.
        let readme = "---\npython_version: 3.10\nsdk_version:   # to do\napp_file: \"\"\n---\nsdk_version: 1\n";
        assert_eq!(
            front_matter(readme),
            FrontMatter {
                python_version: Some("3.10".into()),
                ..FrontMatter::default()
            }
        );
        assert_eq!(scalar(" a#b "), Some("a#b".into()));
    }

    /// A PATH holding the given interpreters and their versions.
    fn path_with(pythons: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let pythons: HashMap<PathBuf, String> = pythons
            .iter()
            .map(|(p, v)| (PathBuf::from(p), v.to_string()))
            .collect();
        move |p: &Path| pythons.get(p).cloned()
    }

    #[test]
    fn the_python_matching_python_version_is_chosen() {
        let path = path_with(&[("python3", "3.12.3"), ("python3.10", "3.10.12")]);
        let chosen = choose_python(None, Some("3.10.13"), &path).unwrap();
        assert_eq!(chosen.program, PathBuf::from("python3.10"));
        assert_eq!(chosen.version, "3.10.12");
        assert_eq!(chosen.mismatch, None);
        // python3 itself, when it is the wanted version.
        let chosen = choose_python(None, Some("3.12"), &path).unwrap();
        assert_eq!(
            (chosen.program, chosen.mismatch),
            (PathBuf::from("python3"), None)
        );
        // No python_version: python3, nothing to say.
        let chosen = choose_python(None, None, &path).unwrap();
        assert_eq!(
            (chosen.program, chosen.mismatch),
            (PathBuf::from("python3"), None)
        );
    }

    #[test]
    fn an_absent_python_falls_back_to_python3_and_says_so() {
        let path = path_with(&[("python3", "3.12.3"), ("python3.9", "3.9.0")]);
        let chosen = choose_python(None, Some("3.10"), &path).unwrap();
        assert_eq!(chosen.program, PathBuf::from("python3"));
        assert_eq!(chosen.version, "3.12.3");
        let message = chosen.mismatch.unwrap();
        assert!(
            message.contains("asks for Python 3.10")
                && message.contains("no python3.10 on PATH")
                && message.contains("the venv uses python3 (3.12.3)")
                && message.contains("local_python"),
            "{message}"
        );
        // A python3.10 that is not 3.10 (a stray link) does not count.
        let path = path_with(&[("python3", "3.12.3"), ("python3.10", "3.12.3")]);
        let chosen = choose_python(None, Some("3.10"), &path).unwrap();
        assert_eq!(chosen.program, PathBuf::from("python3"));
        assert!(chosen.mismatch.is_some());
        // Not a version at all.
        let chosen = choose_python(None, Some("latest"), &path).unwrap();
        assert!(chosen.mismatch.unwrap().contains("not a version"));
        // No python3 either: an error, not a guess.
        let err = choose_python(None, Some("3.10"), path_with(&[])).unwrap_err();
        assert!(err.contains("python3 does not run"), "{err}");
    }

    #[test]
    fn a_given_python_is_used_as_given() {
        let path = path_with(&[("python3", "3.12.3"), ("/opt/py/bin/python", "3.11.9")]);
        let given = Path::new("/opt/py/bin/python");
        let chosen = choose_python(Some(given), Some("3.11"), &path).unwrap();
        assert_eq!((chosen.program.as_path(), chosen.mismatch), (given, None));
        let chosen = choose_python(Some(given), Some("3.10"), &path).unwrap();
        assert_eq!(chosen.program, given);
        assert!(chosen
            .mismatch
            .unwrap()
            .contains("uses the given local_python /opt/py/bin/python (3.11.9)"));
        let err = choose_python(Some(Path::new("/nope/python")), None, &path).unwrap_err();
        assert!(err.contains("/nope/python does not run"), "{err}");
    }

    #[test]
    fn a_real_absent_python_falls_back_to_the_real_python3() {
        // Python 2.0 is on no PATH; python3 is wherever these tests run (else skip).
        let Some(version) = python_version(Path::new("python3")) else {
            return;
        };
        let chosen = choose_python(None, Some("2.0"), python_version).unwrap();
        assert_eq!(chosen.program, PathBuf::from("python3"));
        assert!(chosen
            .mismatch
            .unwrap()
            .contains(&format!("the venv uses python3 ({version})")),);
    }

    #[test]
    fn packages_txt_is_read_and_checked() {
        let text = "ffmpeg\n# a comment\n  libgl1 libsm6  # two on a line\n\nlibx=1.2\n";
        let packages = packages_txt(text);
        assert_eq!(packages, ["ffmpeg", "libgl1", "libsm6", "libx"]);
        let installed = |p: &str| Some(p != "libgl1" && p != "libx");
        let warning = packages_warning(&packages, installed).unwrap();
        assert!(
            warning.contains("not installed: libgl1 libx") && !warning.contains("ffmpeg"),
            "{warning}"
        );
        assert_eq!(packages_warning(&packages, |_| Some(true)), None);
        assert_eq!(packages_warning(&[], |_| None), None);
        // Without dpkg-query: all named, as unchecked.
        let warning = packages_warning(&packages, |_| None).unwrap();
        assert!(warning.contains("could not be checked") && warning.contains("ffmpeg libgl1"));
        // The failure that follows names them.
        let error = with_warnings("the app exited".into(), &[warning]);
        assert!(error.starts_with("the app exited\nthis may be why:\n- packages.txt"));
    }

    #[test]
    fn dpkg_query_tells_installed_from_missing() {
        // Where dpkg-query runs, a package that does not exist is not installed.
        if let Some(installed) = dpkg_installed("daggr-no-such-package") {
            assert!(!installed);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_venv_of_another_python_is_made_anew() {
        let Some(version) = python_version(Path::new("python3")) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        // A venv whose Python says it is 3.9.0, with the stamp of a finished install.
        let bin = dir.path().join("venv/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("python");
        std::fs::write(&fake, "#!/bin/sh\necho 3.9.0\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let interpreter = Interpreter {
            program: "python3".into(),
            version: version.clone(),
            mismatch: None,
        };
        let log = dir.path().join("install.log");
        // Offline: pip is only asked for a distribution that does not exist.
        let settings = LocalSettings {
            pip_args: vec!["--no-index".into()],
            ..LocalSettings::default()
        };
        let err = install(
            dir.path(),
            &log,
            &interpreter,
            "daggr-no-such-dist",
            None,
            &settings,
            &["a warning".into()],
        )
        .unwrap_err();
        assert!(err.contains("pip install daggr-no-such-dist"), "{err}");
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(log.starts_with("# warning: a warning\n"), "{log}");
        assert!(
            log.contains(&format!(
                "the venv's Python is 3.9.0; making it anew with python3 ({version})"
            )),
            "{log}"
        );
        assert_eq!(python_version(&fake).as_deref(), Some(version.as_str()));
    }

    #[test]
    fn sources_are_told_apart() {
        assert_eq!(
            LocalSource::parse("https://example.com/a/b.git"),
            LocalSource::Git("https://example.com/a/b.git".into())
        );
        assert_eq!(
            LocalSource::parse("./my-space"),
            LocalSource::Path("./my-space".into())
        );
        assert_eq!(slug_name("https://example.com/a/b.git"), "b");
        assert_eq!(slug_name("/tmp/x y/"), "x-y");
    }
}
