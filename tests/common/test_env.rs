//! Where the test environments live and how the browser's is made ready: one copy for the
//! server harnesses (LLM, S3) and the browser tests, each of which includes this file.

// Each includer uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Where the test environments live (`$DAGGR_TEST_ENV`, default `~/.cache/daggr-test-env`).
pub fn test_env() -> PathBuf {
    std::env::var_os("DAGGR_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/daggr-test-env")
        })
}

/// Makes sure chromium and playwright-core are there, running the shared setup script if
/// not; returns playwright-core's directory.
pub fn browser_env() -> PathBuf {
    let playwright = test_env().join("browser/node_modules/playwright-core");
    let has_chromium = Command::new("bash")
        .args(["-c", "command -v chromium"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_chromium || !playwright.join("package.json").exists() {
        let status = Command::new("bash")
            .arg(repo().join("scripts/setup/browser.sh"))
            .env("DAGGR_TEST_ENV", test_env())
            .status()
            .expect("bash runs the setup script");
        assert!(status.success(), "scripts/setup/browser.sh failed");
    }
    playwright
}

/// Runs `scripts/setup/NAME` (which installs a test server into [`test_env`] unless it is
/// there), failing the test with the script's output if it fails.
pub fn run_setup(name: &str) {
    let out = Command::new("bash")
        .arg(repo().join("scripts/setup").join(name))
        .env("DAGGR_TEST_ENV", test_env())
        .output()
        .unwrap_or_else(|e| panic!("running scripts/setup/{name}: {e}"));
    assert!(
        out.status.success(),
        "scripts/setup/{name} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One plain HTTP request, blocking, on a runtime of its own (the harnesses call it from
/// sync code and from inside runtimes alike); the status and the body.
pub fn http(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    let (url, method) = (url.to_string(), method.to_string());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = reqwest::Client::new().request(method, &url).body(body);
            for (k, v) in headers {
                request = request.header(k, v);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await.map_err(|e| e.to_string())?;
            Ok((status, bytes.to_vec()))
        })
    })
    .join()
    .unwrap()
}

/// A server process started under [`WATCHER`], its output in a log file: stopped by
/// [`Watched::stop`], on drop, or when the test process dies.
pub struct Watched {
    child: Option<std::process::Child>,
    log: tempfile::NamedTempFile,
}

impl Watched {
    /// Starts `program` with `args` under [`WATCHER`].
    pub fn start(
        program: &Path,
        args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>,
    ) -> Watched {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("bash")
            .args(["-c", WATCHER])
            .arg(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        Watched {
            child: Some(child),
            log,
        }
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Stops it (as if the network or the server went away) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `bash -c` script that runs `$0 "$@"` until its stdin closes, then stops it and waits
/// for it to exit: a server started under it stops when the test drops its stdin, and also
/// when the test process dies without doing so.
pub const WATCHER: &str = r#""$0" "$@" & pid=$!; cat >/dev/null; kill "$pid"; wait "$pid""#;

/// A free port on 127.0.0.1 for a server to take.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 60 s) until `answers` says the server `what` answers; panics with
/// its `log` if it never does.
pub fn wait_until_it_answers(what: &str, answers: impl Fn() -> bool, log: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if answers() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{what} did not answer in 60 s:\n{}", log());
}

/// Whether something listens on `port` of 127.0.0.1.
pub fn listens(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}
