//! A real S3-compatible server for the shared-cache tests: moto's standalone server, from
//! PyPI, installed by `scripts/setup/s3.sh` into `$DAGGR_TEST_ENV/s3-venv`, started on a
//! free loopback port and killed on `Drop` (it also exits when this process dies: it
//! watches its stdin). It keeps buckets in memory.

#![allow(dead_code)]

#[path = "test_env.rs"]
mod test_env_dir;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use test_env_dir::{run_setup, test_env};

/// Runs `scripts/setup/s3.sh` once per process; returns the venv's python.
fn setup() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        run_setup("s3.sh");
        test_env().join("s3-venv/bin/python")
    })
}

/// moto's server, exiting when stdin closes.
const LAUNCHER: &str = r#"
import os, sys, threading
def watch():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

/// A running server.
pub struct S3Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    log: tempfile::NamedTempFile,
}

impl S3Server {
    /// Starts a server and waits (at most 60 s) until it answers.
    pub fn start() -> S3Server {
        let python = setup().clone();
        let port = test_env_dir::free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(&python)
            .args(["-c", LAUNCHER, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("starting moto_server");
        let server = S3Server {
            child: Some(child),
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let root = format!("{}/", server.endpoint);
        test_env_dir::wait_until_it_answers(
            "moto_server",
            || test_env_dir::http(&root, "GET", &[], Vec::new()).is_ok(),
            || server.log(),
        );
        server
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}"), Vec::new()).0;
        assert!(status < 300, "creating bucket {bucket}: {status}");
    }

    /// Sends a plain (unsigned) request; returns the status and body. moto accepts it for
    /// creating buckets; objects are read and written through daggr's signed client.
    pub fn request(&self, method: &str, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        test_env_dir::http(&format!("{}{path}", self.endpoint), method, &[], body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Stops the server (as if the network or the bucket went away).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The options for `ObjectStoreShared::from_url_with_options`, and the environment a
    /// process needs for `DAGGR_CACHE_URL` (the same keys, upper-cased).
    pub fn options(&self) -> Vec<(String, String)> {
        vec![
            ("aws_endpoint".into(), self.endpoint.clone()),
            ("aws_allow_http".into(), "true".into()),
            ("aws_access_key_id".into(), "test".into()),
            ("aws_secret_access_key".into(), "test".into()),
            ("aws_region".into(), "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
