//! Test harness for the GradioNode tests and bench: real Gradio apps (the fixture apps in
//! tests/fixtures/gradio, run by the pinned gradio of scripts/setup/gradio.sh) on
//! 127.0.0.1, and a fault-injecting proxy for the failures Gradio cannot produce itself.
#![allow(dead_code)]

pub mod fault_proxy;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// `$DAGGR_TEST_ENV`, default `~/.cache/daggr-test-env`.
pub fn test_env() -> PathBuf {
    std::env::var_os("DAGGR_TEST_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/daggr-test-env")
        })
}

pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The venv's Python, running scripts/setup/gradio.sh first when the venv is missing.
/// `DAGGR_GRADIO_PYTHON` points the tests at another Gradio install (another version).
pub fn python() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("DAGGR_GRADIO_PYTHON") {
                return PathBuf::from(p);
            }
            let python = test_env().join("gradio-venv/bin/python");
            if !python.exists() {
                let status = Command::new("bash")
                    .arg(repo_root().join("scripts/setup/gradio.sh"))
                    .env("DAGGR_TEST_ENV", test_env())
                    .status()
                    .expect("running scripts/setup/gradio.sh");
                assert!(status.success(), "scripts/setup/gradio.sh failed");
            }
            python
        })
        .clone()
}

/// pip arguments that install from the wheelhouse scripts/setup/gradio.sh keeps (no
/// index requests), when it holds the fixtures' Gradio version.
pub fn wheelhouse_args() -> Vec<String> {
    let wheels = test_env().join("gradio-wheels");
    if wheels
        .join(format!(".complete-{}", gradio_version_string()))
        .exists()
    {
        vec![
            "--no-index".into(),
            "--find-links".into(),
            wheels.to_string_lossy().into_owned(),
        ]
    } else {
        Vec::new()
    }
}

/// The version of the Gradio the fixtures run on, e.g. `5.50.0`.
pub fn gradio_version_string() -> String {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            let out = Command::new(python())
                .args([
                    "-c",
                    "import importlib.metadata as m; print(m.version('gradio'))",
                ])
                .output()
                .expect("asking the venv for its gradio version");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .clone()
}

/// The (major, minor) version of the Gradio the fixtures run on.
pub fn gradio_version() -> (u64, u64) {
    let v = gradio_version_string();
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Whether the fixtures' Gradio takes the `/call` route by default (≥ 6.13, where its
/// error events carry the message) rather than the queue protocol.
pub fn calls_by_default() -> bool {
    gradio_version() >= (6, 13)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The HTTP status of `GET /config`, by a plain blocking request (usable anywhere).
fn config_status(port: u16) -> Option<u16> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /config HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The login the harness launches auth_app.py with (`auth=("daggr", "secret")`).
pub const AUTH: (&str, &str) = ("daggr", "secret");

/// A fixture app on 127.0.0.1, killed on Drop.
pub struct GradioApp {
    child: Option<Child>,
    pub app: String,
    pub port: u16,
    pub url: String,
    pub log: PathBuf,
    /// The `auth=(user, password)` it runs with, if any.
    pub auth: Option<(String, String)>,
    /// The app's own `GRADIO_TEMP_DIR` (where uploads go), once
    /// [`GradioApp::restart_on_a_new_machine`] gave it one; else Gradio's default.
    files: Option<tempfile::TempDir>,
    /// Environment variables of its own (a fixture's settings, e.g. map_app.py's label).
    env: Vec<(String, String)>,
}

impl GradioApp {
    /// Starts `app` (a file in tests/fixtures/gradio) on a free port and waits until
    /// `/config` answers (90 s at most).
    pub fn start(app: &str) -> GradioApp {
        Self::start_on(app, free_port())
    }

    /// Starts `app` on `port`.
    pub fn start_on(app: &str, port: u16) -> GradioApp {
        Self::launched(app, port, None)
    }

    /// Starts `app` (one that reads `FIXTURE_AUTH`, like auth_app.py) behind Gradio's
    /// login, `auth=(user, password)`, on a free port.
    pub fn start_with_auth(app: &str, user: &str, password: &str) -> GradioApp {
        Self::launched(app, free_port(), Some((user.into(), password.into())))
    }

    /// Starts `app` on a free port with the environment variables `env` (kept on a
    /// restart): the settings a fixture reads, e.g. map_app.py's `FIXTURE_LABEL`.
    pub fn start_with_env(app: &str, env: &[(&str, &str)]) -> GradioApp {
        let mut me = Self::unlaunched(app, free_port(), None);
        me.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        me.launch();
        me
    }

    fn launched(app: &str, port: u16, auth: Option<(String, String)>) -> GradioApp {
        let mut me = Self::unlaunched(app, port, auth);
        me.launch();
        me
    }

    fn unlaunched(app: &str, port: u16, auth: Option<(String, String)>) -> GradioApp {
        GradioApp {
            child: None,
            app: app.to_string(),
            port,
            url: format!("http://127.0.0.1:{port}"),
            log: std::env::temp_dir().join(format!("daggr-gradio-{app}-{port}.log")),
            auth,
            files: None,
            env: Vec::new(),
        }
    }

    fn launch(&mut self) {
        let fixtures = repo_root().join("tests/fixtures/gradio");
        let log = std::fs::File::create(&self.log).unwrap();
        let mut command = Command::new(python());
        if let Some((user, password)) = &self.auth {
            command.env("FIXTURE_AUTH", format!("{user}:{password}"));
        }
        if let Some(files) = &self.files {
            command.env("GRADIO_TEMP_DIR", files.path());
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = command
            .arg(fixtures.join("_run.py"))
            .arg(fixtures.join(&self.app))
            .current_dir(&fixtures)
            .env("GRADIO_SERVER_NAME", "127.0.0.1")
            .env("GRADIO_SERVER_PORT", self.port.to_string())
            .env("GRADIO_ANALYTICS_ENABLED", "False")
            .env("GRADIO_SHARE", "False")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("launching a fixture app");
        self.child = Some(child);
        let started = Instant::now();
        // Behind a login, `/config` answers 401 once the app is up.
        let ready = if self.auth.is_some() { 401 } else { 200 };
        loop {
            if config_status(self.port) == Some(ready) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "fixture {} exited ({status}): {}",
                    self.app,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "fixture {} did not answer within 90 s: {}",
                self.app,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the app (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// Starts it again on the same port with an empty upload directory of its own (a
    /// new `GRADIO_TEMP_DIR`), as a Space restarted in a new container: the files it was
    /// sent before are gone, and their old paths are refused ("not uploaded by a user").
    pub fn restart_on_a_new_machine(&mut self) {
        self.kill();
        self.files = Some(tempfile::tempdir().expect("a temporary upload directory"));
        self.launch();
    }
}

impl Drop for GradioApp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One app per fixture shared by all tests of a test binary. Statics are never dropped:
/// the app's watchdog (_run.py) ends it when the test process exits. auth_app.py runs
/// behind the login [`AUTH`].
pub fn shared(app: &'static str) -> String {
    static APPS: OnceLock<Mutex<Vec<GradioApp>>> = OnceLock::new();
    let apps = APPS.get_or_init(|| Mutex::new(Vec::new()));
    let mut apps = apps.lock().unwrap();
    if let Some(a) = apps.iter().find(|a| a.app == app) {
        return a.url.clone();
    }
    let a = if app == "auth_app.py" {
        GradioApp::start_with_auth(app, AUTH.0, AUTH.1)
    } else {
        GradioApp::start(app)
    };
    let url = a.url.clone();
    apps.push(a);
    url
}

// ---------- helpers shared by the Gradio test files ----------

/// A cache in a temporary directory (kept alive by the returned guard).
pub fn temp_cache() -> (tempfile::TempDir, daggr::Cache) {
    let dir = tempfile::tempdir().unwrap();
    let cache = daggr::Cache::open(dir.path()).unwrap();
    (dir, cache)
}

/// A node calling the `/upper` endpoint (text → upper-case text) of the app at `url`.
pub fn upper(url: &str) -> daggr::GradioNode<(String,), (String,)> {
    daggr::GradioNode::new("upper", url)
        .api("/upper")
        .input::<String>("text")
        .output::<String>("upper")
}

/// A `width`×`height` PNG whose pixel at (x, y) is `f(x, y)`.
pub fn png(width: u32, height: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> daggr::Image {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb(f(x, y)));
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    daggr::Image::named(bytes, "image/png", "input.png")
}

/// The decoded pixels of an image.
pub fn pixels(image: &daggr::Image) -> image::RgbImage {
    image::load_from_memory(image.bytes()).unwrap().to_rgb8()
}
