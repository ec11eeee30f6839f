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
//!
//! [`shared_tls`] starts another with TLS on ([`PgServer::start_tls`]): a test CA and a
//! server certificate for 127.0.0.1 and `localhost` made with the `openssl` program (it
//! comes with Debian's `postgresql`, through `ssl-cert`), and a role that must log in with
//! a password, over TLS only ([`PASSWORD_ROLE`]).

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

/// On the TLS server: a role that logs in with [`PASSWORD`] (SCRAM), over TLS only.
pub const PASSWORD_ROLE: &str = "daggr_tls";
/// [`PASSWORD_ROLE`]'s password.
pub const PASSWORD: &str = "tls-only-s3cret";

/// The TLS server's authentication: the password role over TLS only (refused without),
/// everyone else trusted, as on the plain server.
const TLS_HBA: &str = "\
local all all trust
hostssl all daggr_tls 127.0.0.1/32 scram-sha-256
host all daggr_tls 127.0.0.1/32 reject
host all all 127.0.0.1/32 trust
";

/// Holds the cluster: creates it, starts the server, waits for stdin to close, stops the
/// server at once (SIGQUIT: nothing in it is worth a clean shutdown) and removes it.
const WATCHDOG: &str = r#"
set -u
dir=$1 bin=$2 port=$3
shift 3 # the rest: more options for postgres
if ! "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync --no-instructions \
        -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    exit 1
fi
"$bin/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" -k "$dir" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c max_connections=300 -c shared_buffers=32MB "$@" </dev/null >"$dir/postgres.log" 2>&1 &
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
    /// From spawning initdb to the first answer (with TLS: from making the certificates).
    pub started_in: Duration,
    /// The TLS server's certificates ([`PgServer::start_tls`]).
    pub tls: Option<TlsFiles>,
    databases: AtomicUsize,
    create: Mutex<()>,
}

/// One server per test process, started on first use and stopped when the process ends.
pub fn shared() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(PgServer::start)
}

/// One TLS server per test process ([`PgServer::start_tls`]), as [`shared`].
pub fn shared_tls() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(PgServer::start_tls)
}

/// The TLS server's certificates (PEM files in its directory).
pub struct TlsFiles {
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server has.
    pub other_ca: PathBuf,
}

/// Runs `openssl` in `dir` with `args` (split on whitespace: no argument has any).
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("running openssl (Debian: apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// P-256 keys: quick to make.
const NEW_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// A self-signed CA in `name.crt`, its key in `name.key`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &format!(
            "req -x509 {NEW_KEY} -days 2 -keyout {name}.key -out {name}.crt -subj /CN=daggr-test-{name} \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
    );
}

/// In `dir`: `ca.crt`, `other-ca.crt`, and `server.crt`/`server.key` signed by `ca` for
/// 127.0.0.1 and `localhost`; the server's key readable by its owner only (PostgreSQL
/// insists).
fn make_certificates(dir: &Path) -> TlsFiles {
    make_ca(dir, "ca");
    make_ca(dir, "other-ca");
    openssl(
        dir,
        &format!("req -new {NEW_KEY} -keyout server.key -out server.csr -subj /CN=127.0.0.1"),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
         -out server.crt -extfile server.ext",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    TlsFiles {
        ca: dir.join("ca.crt"),
        other_ca: dir.join("other-ca.crt"),
    }
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
        Self::start_with(false)
    }

    /// Like [`PgServer::start`], with TLS on (`ssl=on`, [`TlsFiles`]) and [`PASSWORD_ROLE`].
    pub fn start_tls() -> PgServer {
        let server = Self::start_with(true);
        server.psql(
            "postgres",
            &format!("CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'"),
        );
        server
    }

    fn start_with(tls: bool) -> PgServer {
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
        let mut options = Vec::new();
        let tls = tls.then(|| {
            let tls_dir = dir.join("tls");
            std::fs::create_dir(&tls_dir).unwrap();
            let files = make_certificates(&tls_dir);
            std::fs::write(tls_dir.join("pg_hba.conf"), TLS_HBA).unwrap();
            for (option, file) in [
                ("ssl_cert_file", "server.crt"),
                ("ssl_key_file", "server.key"),
                ("hba_file", "pg_hba.conf"),
            ] {
                options.push("-c".to_string());
                options.push(format!("{option}={}", tls_dir.join(file).display()));
            }
            options.extend(["-c".to_string(), "ssl=on".to_string()]);
            files
        });
        if let Some((uid, gid)) = user {
            // The TLS files too: the server reads them, and the watchdog removes them.
            let tls_files = std::fs::read_dir(dir.join("tls")).into_iter().flatten();
            for path in [dir.clone(), dir.join("tls")]
                .into_iter()
                .chain(tls_files.flatten().map(|e| e.path()))
                .filter(|p| p.exists())
            {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .expect("chown the cluster's directory");
            }
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
            .args(&options)
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
            tls,
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
            "postgres_server: PostgreSQL{} on 127.0.0.1:{} ({}) ready in {:.2?}",
            if server.tls.is_some() {
                " with TLS"
            } else {
                ""
            },
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
        self.create_database_owned_by(USER)
    }

    /// A new, empty database that `owner` owns (and so may create tables in): its name.
    pub fn create_database_owned_by(&self, owner: &str) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            self.databases.fetch_add(1, Ordering::SeqCst)
        );
        let _one_at_a_time = self.create.lock().unwrap();
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {owner}"));
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
