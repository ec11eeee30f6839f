//! A real Google Cloud Storage emulator for the shared-cache tests: fake-gcs-server (the
//! emulator `object_store`'s own CI tests against), installed by `scripts/setup/gcs.sh`,
//! started on a free loopback port with an in-memory backend and stopped on `Drop` (or
//! when this process dies: its shell watches stdin).
//!
//! `object_store` reaches it through a service-account key that names the emulator's
//! address (`gcs_base_url`) and turns OAuth off (`disable_oauth`): the one way its GCS
//! client takes another endpoint.

#![allow(dead_code)]

#[allow(clippy::duplicate_mod)]
#[path = "test_env.rs"]
pub mod gcs_test_env;
use gcs_test_env::{run_setup, test_env};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Runs `scripts/setup/gcs.sh` once per process; returns the server's program.
fn setup() -> &'static PathBuf {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        run_setup("gcs.sh");
        let path = std::fs::read_to_string(test_env().join("gcs-venv/fake-gcs-server.path"))
            .expect("scripts/setup/gcs.sh names the program");
        PathBuf::from(path.trim())
    })
}

/// A running server.
pub struct FakeGcs {
    process: gcs_test_env::Watched,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl FakeGcs {
    /// Starts a server and waits (at most 60 s) until it answers.
    pub fn start() -> FakeGcs {
        let program = setup().clone();
        let port = gcs_test_env::free_port();
        let address = format!("127.0.0.1:{port}");
        let port_text = port.to_string();
        let process = gcs_test_env::Watched::start(
            &program,
            [
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port_text,
                "-backend",
                "memory",
                "-log-level",
                "warn",
                // Its XML API (the one object_store speaks) answers for this host.
                "-public-host",
                &address,
            ],
        );
        let server = FakeGcs {
            process,
            endpoint: format!("http://{address}"),
        };
        gcs_test_env::wait_until_it_answers(
            "fake-gcs-server",
            || gcs_test_env::listens(port),
            || server.log(),
        );
        server
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Creates a bucket (through the JSON API, as `gcloud storage buckets create` does).
    pub fn create_bucket(&self, bucket: &str) {
        let body = format!(r#"{{"name": "{bucket}"}}"#).into_bytes();
        let (status, answer) = gcs_test_env::http(
            &format!("{}/storage/v1/b?project=daggr-tests", self.endpoint),
            "POST",
            &[("content-type", "application/json")],
            body,
        )
        .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e}"));
        assert!(
            status < 300,
            "creating bucket {bucket}: {status} {}\n{}",
            String::from_utf8_lossy(&answer),
            self.log()
        );
    }

    /// Stops the server (as if the network or the bucket went away).
    pub fn stop(&mut self) {
        self.process.stop()
    }

    /// The options for `ObjectStoreShared::from_url_with_options`, and the environment a
    /// process needs for `DAGGR_CACHE_URL` (the same keys, upper-cased).
    pub fn options(&self) -> Vec<(String, String)> {
        let key = serde_json::json!({
            "gcs_base_url": self.endpoint,
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        });
        vec![
            ("google_service_account_key".into(), key.to_string()),
            ("google_allow_http".into(), "true".into()),
        ]
    }
}
