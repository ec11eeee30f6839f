//! Sheets on PostgreSQL (feature `postgres`): the schema of [`super::schema::MIGRATIONS`]
//! in PostgreSQL's dialect, through the synchronous `postgres` client.
//!
//! That client runs a small runtime of its own and panics when called inside another one,
//! and the sheet API is called from plain threads and from async handlers alike. So the
//! readers' connection lives on a thread of its own ([`PgConn`]): a call ships a closure
//! there and waits for its answer, which works whether or not the caller is in a runtime.
//! The writer's connection is opened and used on the sheet writer thread, a plain thread.
//! A connection that the server closed (a restart, a failover) is opened again on the next
//! call. Every connection (readers', writer's, the batch tables') is made as the URL's
//! `sslmode` says ([`super::postgres_tls`]).
//!
//! Concurrency: every method is one statement or one transaction (READ COMMITTED, as
//! PostgreSQL's default). Batches of result rows of one sheet take turns (a transaction
//! advisory lock per sheet, as SQLite has one writer at a time), so two processes on one
//! sheet never deadlock on its selections; a batch that still meets a deadlock or a
//! serialization failure (another transaction's, e.g. a fork) is retried. Migrations run
//! under an advisory lock: processes opening a new database at once migrate it once.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::{Client, Config, IsolationLevel, Row, Transaction};

use super::backend::{add_result_refs, LoadedSheet, NodeHistory, RowWriter, SheetBackend, View};
use super::location::redact_url;
use super::postgres_tls::{configure, Tls};
use super::rows::{collect_refs, ResultRow, SkippedRow, StoredResult, RESULT_COLUMNS};
use super::schema::{now_ms, MIGRATIONS};
use super::{HistorySummary, SheetInfo, SheetUsage};
use crate::cache::CacheKey;
use crate::error::BoxError;
use crate::node::event::error_chain;
use crate::Error;

/// The advisory lock (64-bit key space) held while migrating: "daggrsht".
const MIGRATION_LOCK: i64 = 0x6461_6767_7273_6874;
/// The first key of the per-sheet writer locks (two 32-bit keys, a space of its own): "dagg".
const SHEET_LOCK: i32 = 0x6461_6767;
/// Attempts at a batch that meets a deadlock or a serialization failure.
const BATCH_ATTEMPTS: usize = 4;

/// Sheets in a PostgreSQL database.
pub(super) struct PgBackend {
    location: String,
    config: Config,
    tls: Tls,
    conn: PgConn,
}

impl PgBackend {
    /// Connects to `url` and migrates the schema.
    pub(super) fn open(url: &str) -> Result<PgBackend, Error> {
        let location = redact_url(url);
        let (config, tls) = config(url).map_err(|e| pg_error(&location, "reading the URL", e))?;
        let conn = PgConn::open(config.clone(), tls.clone(), "daggr-sheets-pg")
            .map_err(|e| pg_error(&location, "connecting", e))?;
        let newer = conn
            .call(migrate)
            .map_err(|e| pg_error(&location, "migrating the schema", e))?;
        if let Some(version) = newer {
            return Err(Error::Io {
                context: format!(
                    "sheet database {location} has schema version {version}, newer than this daggr ({})",
                    MIGRATIONS.len()
                ),
                source: std::io::Error::other("upgrade daggr"),
            });
        }
        Ok(PgBackend {
            location,
            config,
            tls,
            conn,
        })
    }

    /// The URL without its password.
    pub(super) fn location(&self) -> &str {
        &self.location
    }

    /// Runs `f` on the readers' connection (the batch tables' code uses it too).
    pub(super) fn call<R: Send + 'static>(
        &self,
        f: impl FnMut(&mut Client) -> Result<R, ::postgres::Error> + Send + 'static,
    ) -> Result<R, Error> {
        self.conn
            .call(f)
            .map_err(|e| pg_error(&self.location, "", e))
    }
}

fn config(url: &str) -> Result<(Config, Tls), BoxError> {
    let (mut config, tls) = configure(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("daggr");
    }
    // Notices (`relation already exists, skipping`) are not warnings for a user.
    config.notice_callback(
        |notice| tracing::debug!(target: "daggr::sheet", "postgres: {}", notice.message()),
    );
    Ok((config, tls))
}

fn pg_error(location: &str, context: &str, e: BoxError) -> Error {
    let context = if context.is_empty() {
        format!("sheet database {location}")
    } else {
        format!("sheet database {location}: {context}")
    };
    Error::Io {
        context,
        source: std::io::Error::other(error_chain(e.as_ref())),
    }
}

/// Runs the migrations this database has not had, under [`MIGRATION_LOCK`]. `Some(version)`
/// when the database is newer than this daggr (then nothing is changed).
fn migrate(client: &mut Client) -> Result<Option<usize>, ::postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS daggr_sheets_schema (version INTEGER NOT NULL)")?;
    let stored: Option<i32> = tx
        .query_opt("SELECT MAX(version) FROM daggr_sheets_schema", &[])?
        .and_then(|r| r.get(0));
    let version = stored.unwrap_or(0).max(0) as usize;
    if version > MIGRATIONS.len() {
        return Ok(Some(version));
    }
    for step in &MIGRATIONS[version..] {
        tx.batch_execute(step.postgres)?;
    }
    if version < MIGRATIONS.len() {
        tx.execute("DELETE FROM daggr_sheets_schema", &[])?;
        tx.execute(
            "INSERT INTO daggr_sheets_schema (version) VALUES ($1)",
            &[&(MIGRATIONS.len() as i32)],
        )?;
    }
    tx.commit()?;
    Ok(None)
}

fn connect(config: &Config, tls: &Tls) -> Result<Client, BoxError> {
    tls.connect(config)
}

/// Whether a call failed because its connection had been closed before the call could run,
/// so that it can run again on a new one: the connection was known closed (nothing was
/// sent), or the server had ended it (class 57P: an administrator, a restart, a failover,
/// an idle timeout), which it says in place of an answer.
fn connection_ended(e: &::postgres::Error) -> bool {
    e.is_closed() || e.code().is_some_and(|c| c.code().starts_with("57P"))
}

/// A call on the connection's thread: given the connection (or why there is none), it
/// answers its caller and returns `false`, or returns `true` to be run again on a new
/// connection.
type Job = Box<dyn FnMut(Result<&mut Client, BoxError>) -> bool + Send>;

/// A connection on a thread of its own; [`PgConn::call`] runs a closure there and waits.
struct PgConn {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl PgConn {
    /// Connects (on the new thread); an error if the first connection fails.
    fn open(config: Config, tls: Tls, name: &str) -> Result<PgConn, BoxError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut client = match connect(&config, &tls) {
                    Ok(client) => {
                        let _ = ready_tx.send(Ok(()));
                        Some(client)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(mut job) = rx.recv() {
                    loop {
                        if client.as_ref().is_none_or(Client::is_closed) {
                            client = None;
                            match connect(&config, &tls) {
                                Ok(c) => client = Some(c),
                                Err(e) => {
                                    job(Err(e));
                                    break;
                                }
                            }
                        }
                        let c = client.as_mut().expect("connected above");
                        // A panic in a call (a bug) loses that call, not the connection.
                        let again = std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(c))))
                            .unwrap_or(false);
                        if !again {
                            break;
                        }
                        client = None;
                    }
                }
            })?;
        ready
            .recv()
            .map_err(|_| BoxError::from("the connection thread stopped"))??;
        Ok(PgConn {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `f` on the connection and waits for it. A call that found the connection
    /// ended by the server runs once more, on a new connection.
    fn call<R: Send + 'static>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<R, ::postgres::Error> + Send + 'static,
    ) -> Result<R, BoxError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let mut retried = false;
        let job: Job = Box::new(move |client| {
            let result = match client {
                Ok(c) => match f(c) {
                    Err(e) if !retried && connection_ended(&e) => {
                        retried = true;
                        return true;
                    }
                    result => result.map_err(BoxError::from),
                },
                Err(e) => Err(e),
            };
            let _ = tx.send(result);
            false
        });
        self.jobs
            .as_ref()
            .expect("open until dropped")
            .send(job)
            .map_err(|_| BoxError::from("the connection thread stopped"))?;
        rx.recv()
            .map_err(|_| BoxError::from("the database call panicked"))?
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads [`RESULT_COLUMNS`] and the log.
fn stored_result(r: &Row) -> Result<StoredResult, ::postgres::Error> {
    Ok(StoredResult {
        node: r.try_get(0)?,
        id: r.try_get(1)?,
        run: r.try_get::<_, i64>(2)?.max(0) as u64,
        key: r.try_get(3)?,
        outcome: r.try_get(4)?,
        elapsed_ms: r.try_get(5)?,
        finished_ms: r.try_get(6)?,
        outputs: r.try_get(7)?,
        provenance: r.try_get(8)?,
        log_lines: r.try_get::<_, Option<i64>>(9)?.unwrap_or(0).max(0) as usize,
        error: r.try_get(10)?,
        attempts: r
            .try_get::<_, Option<i64>>(11)?
            .map(|a| a.clamp(0, u32::MAX as i64) as u32),
        log: r.try_get(12)?,
    })
}

/// Like [`stored_result`], a row that cannot be read being skipped, not fatal.
fn read_row(r: &Row) -> Result<StoredResult, SkippedRow> {
    stored_result(r).map_err(|e| SkippedRow {
        table: "results",
        id: r.try_get(1).ok(),
        node: r.try_get(0).ok(),
        reason: error_chain(&e),
    })
}

impl SheetBackend for PgBackend {
    fn writer(&self) -> Result<Box<dyn RowWriter>, Error> {
        // Connected on first use, on the writer thread (a plain thread).
        Ok(Box::new(PgWriter {
            config: self.config.clone(),
            tls: self.tls.clone(),
            client: None,
        }))
    }

    fn list(&self, pipeline: &str) -> Result<Vec<SheetInfo>, Error> {
        let pipeline = pipeline.to_string();
        self.call(move |c| {
            let rows = c.query(
                "SELECT id, pipeline, name, created_ms, updated_ms FROM sheets
                 WHERE pipeline = $1 ORDER BY name COLLATE \"C\"",
                &[&pipeline],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(SheetInfo {
                        id: r.try_get(0)?,
                        pipeline: r.try_get(1)?,
                        name: r.try_get(2)?,
                        created_ms: r.try_get(3)?,
                        updated_ms: r.try_get(4)?,
                    })
                })
                .collect()
        })
    }

    fn inventory(&self) -> Result<Vec<(SheetInfo, SheetUsage)>, Error> {
        self.call(move |c| {
            let rows = c.query(
                "SELECT s.id, s.pipeline, s.name, s.created_ms, s.updated_ms,
                    (SELECT COUNT(*) FROM sheet_inputs i WHERE i.sheet_id = s.id),
                    (SELECT COALESCE(SUM(octet_length(i.value)), 0)::BIGINT
                       FROM sheet_inputs i WHERE i.sheet_id = s.id),
                    (SELECT COUNT(*) FROM results r WHERE r.sheet_id = s.id AND r.error IS NULL),
                    (SELECT COUNT(*) FROM results r WHERE r.sheet_id = s.id AND r.error IS NOT NULL),
                    (SELECT COALESCE(SUM(octet_length(r.outputs) + octet_length(r.provenance)
                            + COALESCE(octet_length(r.error), 0)), 0)::BIGINT
                       FROM results r WHERE r.sheet_id = s.id),
                    (SELECT COALESCE(SUM(octet_length(l.log)), 0)::BIGINT
                       FROM result_logs l JOIN results r ON r.id = l.result_id WHERE r.sheet_id = s.id)
                 FROM sheets s ORDER BY s.pipeline COLLATE \"C\", s.name COLLATE \"C\"",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    let info = SheetInfo {
                        id: r.try_get(0)?,
                        pipeline: r.try_get(1)?,
                        name: r.try_get(2)?,
                        created_ms: r.try_get(3)?,
                        updated_ms: r.try_get(4)?,
                    };
                    let count = |i| r.try_get::<_, i64>(i).map(|n| n.max(0) as u64);
                    let usage = SheetUsage {
                        inputs: count(5)? as usize,
                        results: count(7)? as usize,
                        failures: count(8)? as usize,
                        bytes: count(6)? + count(9)? + count(10)?,
                    };
                    Ok((info, usage))
                })
                .collect()
        })
    }

    fn find(&self, pipeline: &str, name: &str) -> Result<Option<i64>, Error> {
        let (pipeline, name) = (pipeline.to_string(), name.to_string());
        self.call(move |c| {
            c.query_opt(
                "SELECT id FROM sheets WHERE pipeline = $1 AND name = $2",
                &[&pipeline, &name],
            )?
            .map(|r| r.try_get(0))
            .transpose()
        })
    }

    fn insert_sheet(&self, pipeline: &str, name: &str, now: i64) -> Result<i64, Error> {
        let (pipeline, name) = (pipeline.to_string(), name.to_string());
        self.call(move |c| {
            c.query_one(
                "INSERT INTO sheets (pipeline, name, created_ms, updated_ms) VALUES ($1, $2, $3, $3)
                 RETURNING id",
                &[&pipeline, &name, &now],
            )?
            .try_get(0)
        })
    }

    fn insert_or_find_sheet(&self, pipeline: &str, name: &str, now: i64) -> Result<i64, Error> {
        let (pipeline, name) = (pipeline.to_string(), name.to_string());
        self.call(move |c| {
            // READ COMMITTED: DO NOTHING waits for a concurrent insert of the same name to
            // commit, and the next statement sees it.
            c.execute(
                "INSERT INTO sheets (pipeline, name, created_ms, updated_ms) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (pipeline, name) DO NOTHING",
                &[&pipeline, &name, &now],
            )?;
            c.query_one(
                "SELECT id FROM sheets WHERE pipeline = $1 AND name = $2",
                &[&pipeline, &name],
            )?
            .try_get(0)
        })
    }

    fn rename(&self, pipeline: &str, from: &str, to: &str, now: i64) -> Result<bool, Error> {
        let (pipeline, from, to) = (pipeline.to_string(), from.to_string(), to.to_string());
        self.call(move |c| {
            let changed = c.execute(
                "UPDATE sheets SET name = $3, updated_ms = $4 WHERE pipeline = $1 AND name = $2",
                &[&pipeline, &from, &to, &now],
            )?;
            Ok(changed > 0)
        })
    }

    fn delete(&self, pipeline: &str, name: &str) -> Result<bool, Error> {
        let (pipeline, name) = (pipeline.to_string(), name.to_string());
        self.call(move |c| {
            let changed = c.execute(
                "DELETE FROM sheets WHERE pipeline = $1 AND name = $2",
                &[&pipeline, &name],
            )?;
            Ok(changed > 0)
        })
    }

    fn fork(&self, source: i64, to: &str, now: i64) -> Result<i64, Error> {
        let to = to.to_string();
        self.call(move |c| {
            let mut tx = c.transaction()?;
            let id: i64 = tx
                .query_one(
                    "INSERT INTO sheets (pipeline, name, created_ms, updated_ms, viewport, positions)
                     SELECT pipeline, $2, $3, $3, viewport, positions FROM sheets WHERE id = $1
                     RETURNING id",
                    &[&source, &to, &now],
                )?
                .try_get(0)?;
            tx.execute(
                "INSERT INTO sheet_inputs (sheet_id, node, port, value)
                 SELECT $2, node, port, value FROM sheet_inputs WHERE sheet_id = $1",
                &[&source, &id],
            )?;
            // The history keeps its order: new ids are taken first, ascending, and given
            // to the old entries in id order (old → new for the logs and selections).
            let old: Vec<i64> = tx
                .query(
                    "SELECT id FROM results WHERE sheet_id = $1 ORDER BY id",
                    &[&source],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            if !old.is_empty() {
                let mut new: Vec<i64> = tx
                    .query(
                        "SELECT nextval(pg_get_serial_sequence('results', 'id'))
                         FROM generate_series(1, $1::bigint)",
                        &[&(old.len() as i64)],
                    )?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                new.sort_unstable();
                tx.execute(
                    "INSERT INTO results (id, sheet_id, node, run, cache_key, outcome, elapsed_ms, finished_ms, outputs, provenance, error, attempts)
                     SELECT m.new, $3, r.node, r.run, r.cache_key, r.outcome, r.elapsed_ms, r.finished_ms, r.outputs, r.provenance, r.error, r.attempts
                     FROM results r JOIN unnest($1::bigint[], $2::bigint[]) AS m(old, new) ON r.id = m.old
                     ORDER BY m.new",
                    &[&old, &new, &id],
                )?;
                tx.execute(
                    "INSERT INTO result_logs (result_id, lines, log)
                     SELECT m.new, l.lines, l.log
                     FROM result_logs l JOIN unnest($1::bigint[], $2::bigint[]) AS m(old, new) ON l.result_id = m.old",
                    &[&old, &new],
                )?;
                tx.execute(
                    "INSERT INTO selections (sheet_id, node, result_id)
                     SELECT $4, s.node, m.new
                     FROM selections s JOIN unnest($1::bigint[], $2::bigint[]) AS m(old, new) ON s.result_id = m.old
                     WHERE s.sheet_id = $3",
                    &[&old, &new, &source, &id],
                )?;
            }
            tx.commit()?;
            Ok(id)
        })
    }

    fn live_refs(&self) -> Result<(HashSet<CacheKey>, HashSet<String>), Error> {
        self.call(|c| {
            let mut keys = HashSet::new();
            let mut blobs = HashSet::new();
            // Streamed: the whole history is never in memory at once.
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut rows = tx.query_raw(
                "SELECT cache_key, outputs FROM results",
                std::iter::empty::<i64>(),
            )?;
            while let Some(row) = rows.next()? {
                let key: String = row.try_get(0)?;
                let outputs: String = row.try_get(1)?;
                add_result_refs(&key, &outputs, &mut keys, &mut blobs);
            }
            drop(rows);
            let mut rows =
                tx.query_raw("SELECT value FROM sheet_inputs", std::iter::empty::<i64>())?;
            while let Some(row) = rows.next()? {
                let value: String = row.try_get(0)?;
                collect_refs(value.as_bytes(), &mut blobs);
            }
            drop(rows);
            tx.commit()?;
            Ok((keys, blobs))
        })
    }

    fn load(&self, id: i64) -> Result<LoadedSheet, Error> {
        self.call(move |c| {
            // One snapshot: inputs, results and run numbers of the same moment.
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut skipped = Vec::new();
            let mut inputs = Vec::new();
            for r in tx.query(
                "SELECT node, port, value FROM sheet_inputs WHERE sheet_id = $1",
                &[&id],
            )? {
                let read = (|| -> Result<(String, String, String), ::postgres::Error> {
                    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
                })();
                match read {
                    Ok(input) => inputs.push(input),
                    Err(e) => skipped.push(SkippedRow {
                        table: "sheet_inputs",
                        id: None,
                        node: r.try_get(0).ok(),
                        reason: error_chain(&e),
                    }),
                }
            }
            let mut selected = Vec::new();
            for r in tx.query(
                &format!(
                    "SELECT {RESULT_COLUMNS}, l.log FROM selections s JOIN results r ON r.id = s.result_id
                     LEFT JOIN result_logs l ON l.result_id = r.id WHERE s.sheet_id = $1"
                ),
                &[&id],
            )? {
                match read_row(&r) {
                    Ok(stored) => selected.push(stored),
                    Err(damaged) => skipped.push(damaged),
                }
            }
            let last_run: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(run), 0) FROM results WHERE sheet_id = $1",
                    &[&id],
                )?
                .try_get(0)?;
            tx.commit()?;
            Ok(LoadedSheet {
                inputs,
                selected,
                last_run: u64::try_from(last_run).unwrap_or(0),
                skipped,
            })
        })
    }

    fn save_input(
        &self,
        id: i64,
        node: &str,
        port: &str,
        value: &str,
        now: i64,
    ) -> Result<(), Error> {
        let (node, port, value) = (node.to_string(), port.to_string(), value.to_string());
        self.call(move |c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO sheet_inputs (sheet_id, node, port, value) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sheet_id, node, port) DO UPDATE SET value = EXCLUDED.value",
                &[&id, &node, &port, &value],
            )?;
            tx.execute(
                "UPDATE sheets SET updated_ms = $2 WHERE id = $1",
                &[&id, &now],
            )?;
            tx.commit()
        })
    }

    fn delete_input(&self, id: i64, node: &str, port: &str) -> Result<(), Error> {
        let (node, port) = (node.to_string(), port.to_string());
        self.call(move |c| {
            c.execute(
                "DELETE FROM sheet_inputs WHERE sheet_id = $1 AND node = $2 AND port = $3",
                &[&id, &node, &port],
            )?;
            Ok(())
        })
    }

    fn inputs(&self, id: i64) -> Result<Vec<(String, String, String)>, Error> {
        self.call(move |c| {
            c.query(
                "SELECT node, port, value FROM sheet_inputs WHERE sheet_id = $1
                 ORDER BY node COLLATE \"C\", port COLLATE \"C\"",
                &[&id],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
        })
    }

    fn history(&self, id: i64, node: &str) -> Result<NodeHistory, Error> {
        let node = node.to_string();
        self.call(move |c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let selected: Option<i64> = tx
                .query_opt(
                    "SELECT result_id FROM selections WHERE sheet_id = $1 AND node = $2",
                    &[&id, &node],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            // The logs themselves stay in the database: only their line counts are listed.
            let entries = tx
                .query(
                    &format!(
                        "SELECT {RESULT_COLUMNS}, NULL::text FROM results r LEFT JOIN result_logs l ON l.result_id = r.id
                         WHERE r.sheet_id = $1 AND r.node = $2 ORDER BY r.id DESC"
                    ),
                    &[&id, &node],
                )?
                .iter()
                .map(read_row)
                .collect();
            tx.commit()?;
            Ok(NodeHistory { selected, entries })
        })
    }

    fn history_summary(&self, id: i64) -> Result<HashMap<String, HistorySummary>, Error> {
        self.call(move |c| {
            // A failed entry (`error` set) is no result: counted apart, never a position.
            c.query(
                "SELECT r.node, COUNT(*) FILTER (WHERE r.error IS NULL), s.result_id,
                        COUNT(*) FILTER (WHERE r.error IS NULL AND r.id >= COALESCE(s.result_id, 0)),
                        COUNT(*) FILTER (WHERE r.error IS NOT NULL)
                 FROM results r LEFT JOIN selections s ON s.sheet_id = r.sheet_id AND s.node = r.node
                 WHERE r.sheet_id = $1 GROUP BY r.node, s.result_id",
                &[&id],
            )?
            .iter()
            .map(|r| {
                let count: i64 = r.try_get(1)?;
                let position: i64 = r.try_get(3)?;
                let failed: i64 = r.try_get(4)?;
                Ok((
                    r.try_get::<_, String>(0)?,
                    HistorySummary {
                        count: count as usize,
                        selected_id: r.try_get(2)?,
                        position: position as usize,
                        failed: failed as usize,
                    },
                ))
            })
            .collect()
        })
    }

    fn entry(&self, id: i64, node: &str, result_id: i64) -> Result<Option<StoredResult>, Error> {
        let node = node.to_string();
        self.call(move |c| {
            c.query_opt(
                &format!(
                    "SELECT {RESULT_COLUMNS}, l.log FROM results r LEFT JOIN result_logs l ON l.result_id = r.id
                     WHERE r.sheet_id = $1 AND r.node = $2 AND r.id = $3"
                ),
                &[&id, &node, &result_id],
            )?
            .map(|r| stored_result(&r))
            .transpose()
        })
    }

    fn set_selection(&self, id: i64, node: &str, result_id: i64) -> Result<(), Error> {
        let node = node.to_string();
        self.call(move |c| {
            c.execute(
                "INSERT INTO selections (sheet_id, node, result_id) VALUES ($1, $2, $3)
                 ON CONFLICT (sheet_id, node) DO UPDATE SET result_id = EXCLUDED.result_id",
                &[&id, &node, &result_id],
            )?;
            Ok(())
        })
    }

    fn log(&self, id: i64, node: &str, result_id: i64) -> Result<Option<Option<String>>, Error> {
        let node = node.to_string();
        self.call(move |c| {
            c.query_opt(
                "SELECT l.log FROM results r LEFT JOIN result_logs l ON l.result_id = r.id
                 WHERE r.sheet_id = $1 AND r.node = $2 AND r.id = $3",
                &[&id, &node, &result_id],
            )?
            .map(|r| r.try_get(0))
            .transpose()
        })
    }

    fn view(&self, id: i64, view: View) -> Result<Option<String>, Error> {
        let column = view.column();
        self.call(move |c| {
            c.query_one(
                &format!("SELECT {column} FROM sheets WHERE id = $1"),
                &[&id],
            )?
            .try_get(0)
        })
    }

    fn set_view(&self, id: i64, view: View, value: Option<&str>) -> Result<(), Error> {
        let column = view.column();
        let value = value.map(str::to_string);
        self.call(move |c| {
            c.execute(
                &format!("UPDATE sheets SET {column} = $2 WHERE id = $1"),
                &[&id, &value],
            )?;
            Ok(())
        })
    }
}

/// The writer thread's connection: opened there on first use (and again after the server
/// closed it).
struct PgWriter {
    config: Config,
    tls: Tls,
    client: Option<Client>,
}

impl RowWriter for PgWriter {
    fn insert_rows(&mut self, rows: &[&ResultRow], limit: usize) -> Result<(), BoxError> {
        let mut attempt = 1;
        let mut reconnected = false;
        loop {
            if self.client.as_ref().is_none_or(Client::is_closed) {
                self.client = None;
                self.client = Some(connect(&self.config, &self.tls)?);
            }
            let client = self.client.as_mut().expect("connected above");
            match client
                .transaction()
                .and_then(|tx| insert_rows(tx, rows, limit))
            {
                Ok(()) => return Ok(()),
                // The server had ended the connection: once more on a new one.
                Err(e) if !reconnected && connection_ended(&e) => {
                    tracing::debug!(error = %error_chain(&e), "the sheet writer's connection was closed: reconnecting");
                    reconnected = true;
                    self.client = None;
                }
                Err(e)
                    if attempt < BATCH_ATTEMPTS
                        && matches!(
                            e.code(),
                            Some(&SqlState::T_R_DEADLOCK_DETECTED)
                                | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                        ) =>
                {
                    tracing::debug!(attempt, error = %error_chain(&e), "retrying a batch of sheet rows");
                    std::thread::sleep(Duration::from_millis(10 * attempt as u64));
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Inserts rows in one transaction (all or none), selecting each result and pruning the
/// nodes' histories to `limit`.
fn insert_rows(
    mut tx: Transaction<'_>,
    rows: &[&ResultRow],
    limit: usize,
) -> Result<(), ::postgres::Error> {
    // Writers of one sheet take turns, in sheet order.
    let mut sheets: Vec<i64> = rows.iter().map(|r| r.sheet_id).collect();
    sheets.sort_unstable();
    sheets.dedup();
    for sheet in &sheets {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&SHEET_LOCK, &(*sheet as i32)],
        )?;
    }
    let insert = tx.prepare(
        "INSERT INTO results (sheet_id, node, run, cache_key, outcome, elapsed_ms, finished_ms, outputs, provenance, error, attempts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )?;
    let select = tx.prepare(
        "INSERT INTO selections (sheet_id, node, result_id) VALUES ($1, $2, $3)
         ON CONFLICT (sheet_id, node) DO UPDATE SET result_id = EXCLUDED.result_id",
    )?;
    let insert_log =
        tx.prepare("INSERT INTO result_logs (result_id, lines, log) VALUES ($1, $2, $3)")?;
    let mut touched = HashSet::new();
    for row in rows {
        let run = row.run as i64;
        let attempts = row.attempts.map(i64::from);
        let id: i64 = tx
            .query_one(
                &insert,
                &[
                    &row.sheet_id,
                    &row.node,
                    &run,
                    &row.key,
                    &row.outcome,
                    &row.elapsed_ms,
                    &row.finished_ms,
                    &row.outputs,
                    &row.provenance,
                    &row.error,
                    &attempts,
                ],
            )?
            .try_get(0)?;
        if let Some((lines, log)) = &row.log {
            tx.execute(&insert_log, &[&id, &(*lines as i64), log])?;
        }
        // A failed execution has no outputs: the last good result stays current.
        if row.error.is_none() {
            tx.execute(&select, &[&row.sheet_id, &row.node, &id])?;
        }
        touched.insert((row.sheet_id, row.node.as_str()));
    }
    let limit = limit as i64;
    for (sheet_id, node) in &touched {
        tx.execute(
            "DELETE FROM results WHERE sheet_id = $1 AND node = $2 AND id NOT IN (
                 SELECT id FROM results WHERE sheet_id = $1 AND node = $2 ORDER BY id DESC LIMIT $3)
             AND id NOT IN (SELECT result_id FROM selections WHERE sheet_id = $1 AND node = $2)",
            &[sheet_id, node, &limit],
        )?;
    }
    let now = now_ms();
    for sheet_id in &sheets {
        tx.execute(
            "UPDATE sheets SET updated_ms = $2 WHERE id = $1",
            &[sheet_id, &now],
        )?;
    }
    tx.commit()
}
