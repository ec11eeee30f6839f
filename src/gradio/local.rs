//! `run_locally`: a Gradio Space run on this machine.
//!
//! 1. The repository: the Space's (`{hub}/spaces/{id}`, cloned with git, the token sent
//!    only to Hugging Face hosts and never on a command line), a git URL (cloned), or a
//!    local directory (used in place). A clone is reused and brought up to date with
//!    `git fetch` on each start (an offline fetch keeps the clone as it is).
//! 2. The venv: `python3 -m venv`, then `pip install gradio==<sdk_version>` (from the
//!    README front-matter; the latest gradio without one) with `-r requirements.txt`.
//!    It is reused, and reinstalled when the requirements or the SDK version change.
//! 3. The app (`app_file` from the front-matter, else `app.py`, `main.py`, `demo.py`)
//!    is launched with `GRADIO_SERVER_NAME=127.0.0.1` and `GRADIO_SERVER_PORT` set to a
//!    free port, and polled on `/config` until it answers or the timeout passes; an app
//!    that exits early fails at once with the end of its log.
//! 4. The child is stopped when the node (with the pipeline holding it) is dropped, and
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

use crate::hf::{is_hf_host, HfToken};

/// Environment variable: where clones, venvs and logs live.
pub const SPACES_DIR_ENV: &str = "DAGGR_SPACES_DIR";
/// Environment variable: seconds a local app may take to answer after launch.
pub const LOCAL_TIMEOUT_ENV: &str = "DAGGR_LOCAL_TIMEOUT";
/// Environment variable: `1` makes a failed local start an error instead of a fallback.
pub const NO_FALLBACK_ENV: &str = "DAGGR_LOCAL_NO_FALLBACK";

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
    pub python: PathBuf,
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
            python: PathBuf::from("python3"),
            pip_args: Vec::new(),
        }
    }
}

/// Whether `DAGGR_LOCAL_NO_FALLBACK` forbids falling back to the remote Space.
pub(crate) fn no_fallback_env() -> bool {
    std::env::var(NO_FALLBACK_ENV).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
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

/// Starts (or reuses) the local copy. Errors are plain messages for the caller to wrap.
pub(crate) async fn start(
    node: &str,
    space_id: Option<&str>,
    settings: &LocalSettings,
    hub: &str,
    token: Option<&HfToken>,
) -> Result<Arc<LocalApp>, String> {
    let root = settings.dir.clone().unwrap_or_else(default_root);
    let (dir, repo_source) = match &settings.source {
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
    };
    let slot = registry()
        .lock()
        .unwrap()
        .entry(dir.clone())
        .or_default()
        .clone();
    let mut current = slot.lock().await;
    if let Some(app) = current.upgrade() {
        if app.alive() {
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
    let all: Vec<&str> = text.lines().collect();
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

/// The README front-matter fields that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FrontMatter {
    pub sdk: Option<String>,
    pub sdk_version: Option<String>,
    pub app_file: Option<String>,
}

pub(crate) fn front_matter(readme: &str) -> FrontMatter {
    let mut fm = FrontMatter::default();
    let mut lines = readme.lines();
    if lines.next().map(str::trim) != Some("---") {
        return fm;
    }
    for line in lines {
        if line.trim() == "---" {
            break;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().trim_matches(['"', '\'']).to_string();
        if v.is_empty() {
            continue;
        }
        match k.trim() {
            "sdk" => fm.sdk = Some(v),
            "sdk_version" => fm.sdk_version = Some(v),
            "app_file" => fm.app_file = Some(v),
            _ => {}
        }
    }
    fm
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
    let revision = git_output(&repo, &["rev-parse", "HEAD"]).map(|head| {
        match git_output(&repo, &["status", "--porcelain"]) {
            Some(s) if !s.is_empty() => {
                let diff = git_output(&repo, &["diff", "HEAD"]).unwrap_or_default();
                format!("{head}+dirty.{}", short_hash(&format!("{s}\n{diff}")))
            }
            _ => head,
        }
    });
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
    let requirements = std::fs::read_to_string(repo.join("requirements.txt")).ok();
    let gradio = match &fm.sdk_version {
        Some(v) => format!("gradio=={v}"),
        None => "gradio".to_string(),
    };
    // 3. The venv, reinstalled when what it needs changed.
    let venv = dir.join("venv");
    let python = venv.join("bin").join("python");
    let want = short_hash(&format!(
        "{gradio}\n{}",
        requirements.as_deref().unwrap_or("")
    ));
    let stamp_file = venv.join(".daggr-installed");
    let have = std::fs::read_to_string(&stamp_file).unwrap_or_default();
    if have.trim() != want || !python.exists() {
        let log = logs.join(format!("install-{when}.log"));
        if !python.exists() {
            run_logged(
                "creating the venv",
                Command::new(&settings.python)
                    .args(["-m", "venv"])
                    .arg(&venv),
                &log,
            )?;
        }
        let mut pip = Command::new(&python);
        pip.args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(&settings.pip_args)
            .arg(&gradio);
        if requirements.is_some() {
            pip.arg("-r").arg(repo.join("requirements.txt"));
        }
        run_logged(
            &format!("pip install {gradio} -r requirements.txt"),
            &mut pip,
            &log,
        )?;
        std::fs::write(&stamp_file, &want).map_err(|e| e.to_string())?;
    }
    // 4. Launch.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))?;
    let log = logs.join(format!("app-{when}.log"));
    let mut file =
        std::fs::File::create(&log).map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    let _ = writeln!(
        file,
        "# daggr run_locally: {} on 127.0.0.1:{port}",
        repo.join(&app_file).display()
    );
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
    })
}

/// The URL the app printed, if it chose its own port.
fn printed_url(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("Running on local URL:"))?;
    let url = line.split("URL:").nth(1)?.trim();
    Some(url.trim_end_matches('/').to_string())
}

async fn wait_ready(mut launched: Launched) -> Result<LocalApp, String> {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut url = format!("http://127.0.0.1:{}", launched.port);
    loop {
        if let Some(child) = launched.child.0.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the app exited ({status}) before answering; log {}:\n{}",
                    launched.log.display(),
                    tail(&launched.log, 20)
                ));
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
            return Err(format!(
                "the app did not answer on {url} within {:?}; log {}:\n{}",
                launched.timeout,
                launched.log.display(),
                tail(&launched.log, 20)
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_is_read() {
        let readme = "---\ntitle: Demo\nsdk: gradio\nsdk_version: 5.50.0\napp_file: \"main.py\"\n---\n# Demo\nsdk: docker\n";
        assert_eq!(
            front_matter(readme),
            FrontMatter {
                sdk: Some("gradio".into()),
                sdk_version: Some("5.50.0".into()),
                app_file: Some("main.py".into()),
            }
        );
        assert_eq!(
            front_matter("# no front matter\nsdk: gradio"),
            FrontMatter::default()
        );
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
