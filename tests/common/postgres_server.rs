//! A real PostgreSQL server for the sheet tests on PostgreSQL: Debian's `postgresql`
//! package (installed by `scripts/setup/postgres.sh`), as a throw-away cluster: `initdb`
//! in a new temporary directory, `postgres` on a free loopback port with its Unix socket
//! in that directory, trust authentication, no fsync (nothing in it outlives the tests).
//!
//! initdb and postgres refuse to run as root: when the tests do (CI), the server runs as
//! the package's `postgres` user (else `nobody`). It is stopped, and its directory removed,
//! when the [`PgServer`] is dropped or when this process dies however it ended: a small
//! shell watchdog holds it and waits for its stdin, a pipe from this process, to close.
//! [`shared`] starts one per test process, kept until the process ends; each test gets a
//! database of its own ([`PgServer::create_database`]).

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The superuser the cluster is created with (trust authentication on loopback).
pub const USER: &str = "postgres";

/// Holds the cluster: creates it, starts the server, waits for stdin to close, stops the
/// server at once (SIGQUIT: nothing in it is worth a clean shutdown) and removes it.
const WATCHDOG: &str = r#"
set -u
dir=$1 bin=$2 port=$3
if ! "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync --no-instructions \
        -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    exit 1
fi
"$bin/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c max_connections=300 -c shared_buffers=32MB </dev/null >"$dir/postgres.log" 2>&1 &
pid=$!
cat >/dev/null
kill -QUIT "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$dir"
"#;

/// A running throw-away cluster.
pub struct PgServer {
    watchdog: Mutex<Option<Child>>,
    /// Its directory (data, socket, logs).
    pub dir: PathBuf,
    /// The loopback port.
    pub port: u16,
    /// PostgreSQL's programs (`initdb`, `psql`, `pg_dump`…).
    pub bin: PathBuf,
    /// From spawning initdb to the first answer.
    pub started_in: Duration,
    databases: AtomicUsize,
    create: Mutex<()>,
}

/// One server per test process, started on first use and stopped when the process ends.
pub fn shared() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(PgServer::start)
}

/// The directory of PostgreSQL's server programs: `$DAGGR_PG_BIN`, else Debian's newest
/// `/usr/lib/postgresql/N/bin`, else wherever `initdb` is on the `PATH`.
fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DAGGR_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
    })
}

/// Runs `scripts/setup/postgres.sh` when PostgreSQL is not installed; its programs.
fn setup() -> PathBuf {
    if let Some(bin) = find_bin() {
        return bin;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup/postgres.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("running scripts/setup/postgres.sh");
    assert!(
        out.status.success(),
        "scripts/setup/postgres.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    find_bin().expect("PostgreSQL's initdb, after scripts/setup/postgres.sh")
}

/// `(uid, gid)` of the user the server runs as, when this process is root.
fn unprivileged() -> Option<(u32, u32)> {
    let out = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
    let entry = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == name)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    Some(
        entry("postgres")
            .or_else(|| entry("nobody"))
            .expect("a `postgres` or `nobody` user to run PostgreSQL as (it refuses root)"),
    )
}

impl PgServer {
    /// Creates the cluster and starts the server; waits (at most 60 s) until it answers.
    pub fn start() -> PgServer {
        let started = Instant::now();
        let bin = setup();
        let user = unprivileged();
        // In /tmp, not $TMPDIR: the server's user must be able to reach it.
        let parent = match user {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("daggr-pg-")
            .tempdir_in(&parent)
            .expect("creating the cluster's directory")
            .keep();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .expect("chown the cluster's directory");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new("bash");
        command
            .args(["-c", WATCHDOG, "pg-watchdog"])
            .arg(&dir)
            .arg(&bin)
            .arg(port.to_string())
            .env("LC_ALL", "C")
            // The server's user may not be allowed into this process's directory.
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C in the terminal reaches the tests, and the
            // watchdog then stops the server and removes the directory.
            .process_group(0);
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().expect("starting the PostgreSQL watchdog");
        let mut server = PgServer {
            watchdog: Mutex::new(Some(child)),
            dir,
            port,
            bin,
            started_in: Duration::ZERO,
            databases: AtomicUsize::new(0),
            create: Mutex::new(()),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if server.try_psql("postgres", "SELECT 1").is_ok() {
                break;
            }
            let exited = server
                .watchdog
                .lock()
                .unwrap()
                .as_mut()
                .unwrap()
                .try_wait()
                .unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let mut stderr = String::new();
                if let Some(mut child) = server.watchdog.lock().unwrap().take() {
                    let _ = child.kill();
                    if let Some(mut err) = child.stderr.take() {
                        use std::io::Read;
                        let _ = err.read_to_string(&mut stderr);
                    }
                    let _ = child.wait();
                }
                panic!(
                    "PostgreSQL did not start ({exited:?}):\n{stderr}\n{}",
                    server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        server.started_in = started.elapsed();
        eprintln!(
            "postgres_server: PostgreSQL on 127.0.0.1:{} ({}) ready in {:.2?}",
            server.port,
            server.bin.display(),
            server.started_in
        );
        server
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database: its name.
    pub fn create_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            self.databases.fetch_add(1, Ordering::SeqCst)
        );
        let _one_at_a_time = self.create.lock().unwrap();
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// Runs SQL in database `db` through `psql`; its output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
    }

    /// Like [`PgServer::psql`], the error as text.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                USER,
            ])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A plain-text dump of database `db` (schema and data).
    pub fn dump(&self, db: &str) -> Vec<u8> {
        let out = Command::new(self.bin.join("pg_dump"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                USER,
                "-p",
                &self.port.to_string(),
                "-d",
                db,
            ])
            .output()
            .expect("running pg_dump");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Stops the server and removes its directory.
    pub fn stop(&self) {
        if let Some(mut child) = self.watchdog.lock().unwrap().take() {
            // Closing stdin is the signal; then the watchdog cleans up and exits.
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.flush();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
