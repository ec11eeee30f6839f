//! A real Azure Blob Storage server for the shared-cache tests: Azurite, Microsoft's
//! official emulator, from the npm registry, installed by `scripts/setup/azurite.sh` into
//! `$DAGGR_TEST_ENV/azurite`, started on a free loopback port with a throw-away data
//! directory and stopped on `Drop` (or when this process dies: its shell watches stdin).

#![allow(dead_code)]

// The S3 harness includes it too when both are in one test binary: two copies of a few
// functions, which is what a `#[path]` include gives.
#[allow(clippy::duplicate_mod)]
#[path = "test_env.rs"]
mod azurite_test_env;
use azurite_test_env::{run_setup, test_env};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Azurite's one account and its key (public, the same in every Azurite).
pub const ACCOUNT: &str = "devstoreaccount1";
/// The well-known key of [`ACCOUNT`].
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Runs `scripts/setup/azurite.sh` once per process; returns the `azurite-blob` program.
fn setup() -> &'static PathBuf {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        run_setup("azurite.sh");
        test_env().join("azurite/node_modules/.bin/azurite-blob")
    })
}

/// Creates a container with a Shared Key signed request (Azurite, like Azure, has no
/// anonymous way to): node's own crypto and fetch, so the tests need no Azure SDK.
const CREATE_CONTAINER: &str = r#"
const crypto = require("crypto");
const [endpoint, account, key, container] = process.argv.slice(1);
const url = new URL(`${endpoint}/${container}?restype=container`);
const date = new Date().toUTCString();
const version = "2021-08-06";
const toSign = ["PUT", "", "", "", "", "", "", "", "", "", "", "",
    `x-ms-date:${date}\nx-ms-version:${version}`,
    `/${account}${url.pathname}\nrestype:container`].join("\n");
const signature = crypto.createHmac("sha256", Buffer.from(key, "base64"))
    .update(toSign, "utf8").digest("base64");
fetch(url, { method: "PUT", headers: {
    "x-ms-date": date, "x-ms-version": version,
    "Authorization": `SharedKey ${account}:${signature}`,
}}).then(async (r) => {
    if (r.status >= 300) { console.error(r.status, await r.text()); process.exit(1); }
}, (e) => { console.error(e); process.exit(1); });
"#;

/// A running server.
pub struct Azurite {
    // Before the data directory: stopped before it is removed.
    process: azurite_test_env::Watched,
    /// The account's endpoint: `http://127.0.0.1:PORT/devstoreaccount1`.
    pub endpoint: String,
    _data: tempfile::TempDir,
}

impl Azurite {
    /// Starts a server and waits (at most 60 s) until it answers.
    pub fn start() -> Azurite {
        let program = setup().clone();
        let port = azurite_test_env::free_port();
        let data = tempfile::tempdir().unwrap();
        // Stopped when its stdin closes: on `stop`, and also when this process dies
        // without dropping the server.
        let port_text = port.to_string();
        let process = azurite_test_env::Watched::start(
            &program,
            [
                "--blobHost".as_ref(),
                "127.0.0.1".as_ref(),
                "--blobPort".as_ref(),
                port_text.as_ref(),
                "--location".as_ref(),
                data.path().as_os_str(),
                "--skipApiVersionCheck".as_ref(),
                "--loose".as_ref(),
                "--silent".as_ref(),
            ] as [&std::ffi::OsStr; 9],
        );
        let server = Azurite {
            process,
            endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
            _data: data,
        };
        azurite_test_env::wait_until_it_answers(
            "azurite-blob",
            || azurite_test_env::listens(port),
            || server.log(),
        );
        server
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Creates a container.
    pub fn create_container(&self, container: &str) {
        let out = Command::new("node")
            .args([
                "-e",
                CREATE_CONTAINER,
                &self.endpoint,
                ACCOUNT,
                KEY,
                container,
            ])
            .output()
            .expect("running node");
        assert!(
            out.status.success(),
            "creating container {container}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Stops the server (as if the network or the container went away).
    pub fn stop(&mut self) {
        self.process.stop()
    }

    /// The options for `ObjectStoreShared::from_url_with_options`, and the environment a
    /// process needs for `DAGGR_CACHE_URL` (the same keys, upper-cased).
    pub fn options(&self) -> Vec<(String, String)> {
        vec![
            ("azure_storage_account_name".into(), ACCOUNT.into()),
            ("azure_storage_account_key".into(), KEY.into()),
            ("azure_storage_endpoint".into(), self.endpoint.clone()),
            ("azure_allow_http".into(), "true".into()),
        ]
    }
}
