//! The default sheet backend: one SQLite file (WAL mode, busy timeout), through rusqlite.
//! Readers share one connection; the writer thread has its own.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::backend::{add_result_refs, LoadedSheet, NodeHistory, RowWriter, SheetBackend, View};
use super::rows::{ResultRow, SkippedRow, StoredResult, RESULT_COLUMNS};
use super::schema::{db_err, migrate, now_ms, open_connection};
use super::{HistorySummary, SheetInfo, SheetUsage};
use crate::cache::CacheKey;
use crate::error::BoxError;
use crate::Error;

/// Sheets in an SQLite file.
pub(super) struct SqliteBackend {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteBackend {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub(super) fn open(path: &Path) -> Result<SqliteBackend, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                context: format!("creating {}", dir.display()),
                source,
            })?;
        }
        let mut conn = open_connection(path)?;
        migrate(&mut conn, path)?;
        Ok(SqliteBackend {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` on the readers' connection (the batch tables' code uses it too).
    pub(super) fn with_conn<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, Error> {
        let mut conn = self.conn.lock().unwrap();
        f(&mut conn).map_err(|e| db_err(&self.path, e))
    }
}

impl SheetBackend for SqliteBackend {
    fn writer(&self) -> Result<Box<dyn RowWriter>, Error> {
        Ok(Box::new(open_connection(&self.path)?))
    }

    fn list(&self, pipeline: &str) -> Result<Vec<SheetInfo>, Error> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT id, pipeline, name, created_ms, updated_ms FROM sheets WHERE pipeline = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([pipeline], |r| {
                Ok(SheetInfo {
                    id: r.get(0)?,
                    pipeline: r.get(1)?,
                    name: r.get(2)?,
                    created_ms: r.get(3)?,
                    updated_ms: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    fn inventory(&self) -> Result<Vec<(SheetInfo, SheetUsage)>, Error> {
        self.with_conn(|c| {
            // Sizes in bytes of the stored text (a BLOB's length is its bytes, a TEXT's its
            // characters).
            let mut stmt = c.prepare(
                "SELECT s.id, s.pipeline, s.name, s.created_ms, s.updated_ms,
                    (SELECT COUNT(*) FROM sheet_inputs i WHERE i.sheet_id = s.id),
                    (SELECT COALESCE(SUM(LENGTH(CAST(i.value AS BLOB))), 0)
                       FROM sheet_inputs i WHERE i.sheet_id = s.id),
                    (SELECT COUNT(*) FROM results r WHERE r.sheet_id = s.id AND r.error IS NULL),
                    (SELECT COUNT(*) FROM results r WHERE r.sheet_id = s.id AND r.error IS NOT NULL),
                    (SELECT COALESCE(SUM(LENGTH(CAST(r.outputs AS BLOB)) + LENGTH(CAST(r.provenance AS BLOB))
                            + COALESCE(LENGTH(CAST(r.error AS BLOB)), 0)), 0)
                       FROM results r WHERE r.sheet_id = s.id),
                    (SELECT COALESCE(SUM(LENGTH(CAST(l.log AS BLOB))), 0)
                       FROM result_logs l JOIN results r ON r.id = l.result_id WHERE r.sheet_id = s.id)
                 FROM sheets s ORDER BY s.pipeline, s.name",
            )?;
            let rows = stmt.query_map([], |r| {
                let info = SheetInfo {
                    id: r.get(0)?,
                    pipeline: r.get(1)?,
                    name: r.get(2)?,
                    created_ms: r.get(3)?,
                    updated_ms: r.get(4)?,
                };
                let count = |i| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
                let usage = SheetUsage {
                    inputs: count(5)? as usize,
                    results: count(7)? as usize,
                    failures: count(8)? as usize,
                    bytes: count(6)? + count(9)? + count(10)?,
                };
                Ok((info, usage))
            })?;
            rows.collect()
        })
    }

    fn find(&self, pipeline: &str, name: &str) -> Result<Option<i64>, Error> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT id FROM sheets WHERE pipeline = ?1 AND name = ?2",
                [pipeline, name],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn insert_sheet(&self, pipeline: &str, name: &str, now: i64) -> Result<i64, Error> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO sheets (pipeline, name, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)",
                params![pipeline, name, now],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    fn insert_or_find_sheet(&self, pipeline: &str, name: &str, now: i64) -> Result<i64, Error> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO sheets (pipeline, name, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (pipeline, name) DO NOTHING",
                params![pipeline, name, now],
            )?;
            c.query_row(
                "SELECT id FROM sheets WHERE pipeline = ?1 AND name = ?2",
                [pipeline, name],
                |r| r.get(0),
            )
        })
    }

    fn rename(&self, pipeline: &str, from: &str, to: &str, now: i64) -> Result<bool, Error> {
        let changed = self.with_conn(|c| {
            c.execute(
                "UPDATE sheets SET name = ?3, updated_ms = ?4 WHERE pipeline = ?1 AND name = ?2",
                params![pipeline, from, to, now],
            )
        })?;
        Ok(changed > 0)
    }

    fn delete(&self, pipeline: &str, name: &str) -> Result<bool, Error> {
        let changed = self.with_conn(|c| {
            c.execute(
                "DELETE FROM sheets WHERE pipeline = ?1 AND name = ?2",
                [pipeline, name],
            )
        })?;
        Ok(changed > 0)
    }

    fn fork(&self, source: i64, to: &str, now: i64) -> Result<i64, Error> {
        self.with_conn(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO sheets (pipeline, name, created_ms, updated_ms, viewport, positions)
                 SELECT pipeline, ?2, ?3, ?3, viewport, positions FROM sheets WHERE id = ?1",
                params![source, to, now],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO sheet_inputs (sheet_id, node, port, value)
                 SELECT ?2, node, port, value FROM sheet_inputs WHERE sheet_id = ?1",
                params![source, id],
            )?;
            // Copy history in id order, remembering old → new ids for the selections.
            tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS fork_map (old INTEGER, new INTEGER); DELETE FROM fork_map;")?;
            {
                let mut read = tx.prepare("SELECT id FROM results WHERE sheet_id = ?1 ORDER BY id")?;
                let old_ids: Vec<i64> = read.query_map([source], |r| r.get(0))?.collect::<Result<_, _>>()?;
                let mut copy = tx.prepare(
                    "INSERT INTO results (sheet_id, node, run, cache_key, outcome, elapsed_ms, finished_ms, outputs, provenance, error, attempts)
                     SELECT ?2, node, run, cache_key, outcome, elapsed_ms, finished_ms, outputs, provenance, error, attempts FROM results WHERE id = ?1",
                )?;
                let mut map = tx.prepare("INSERT INTO fork_map (old, new) VALUES (?1, ?2)")?;
                for old in old_ids {
                    copy.execute(params![old, id])?;
                    map.execute(params![old, tx.last_insert_rowid()])?;
                }
            }
            tx.execute(
                "INSERT INTO result_logs (result_id, lines, log)
                 SELECT m.new, l.lines, l.log FROM result_logs l JOIN fork_map m ON m.old = l.result_id",
                [],
            )?;
            tx.execute(
                "INSERT INTO selections (sheet_id, node, result_id)
                 SELECT ?2, s.node, m.new FROM selections s JOIN fork_map m ON m.old = s.result_id WHERE s.sheet_id = ?1",
                params![source, id],
            )?;
            tx.execute_batch("DROP TABLE fork_map;")?;
            tx.commit()?;
            Ok(id)
        })
    }

    fn live_refs(&self) -> Result<(HashSet<CacheKey>, HashSet<String>), Error> {
        self.with_conn(|c| {
            let mut keys = HashSet::new();
            let mut blobs = HashSet::new();
            let mut stmt = c.prepare("SELECT cache_key, outputs FROM results")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                let outputs: String = row.get(1)?;
                add_result_refs(&key, &outputs, &mut keys, &mut blobs);
            }
            let mut stmt = c.prepare("SELECT value FROM sheet_inputs")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let value: String = row.get(0)?;
                super::rows::collect_refs(value.as_bytes(), &mut blobs);
            }
            Ok((keys, blobs))
        })
    }

    fn load(&self, id: i64) -> Result<LoadedSheet, Error> {
        // Each row is read on its own: one damaged row (a wrongly typed column) is skipped
        // and reported, and must not keep the sheet, with all its other results, from
        // opening.
        self.with_conn(|c| {
            let mut skipped = Vec::new();
            let mut stmt = c.prepare("SELECT rowid, node, port, value FROM sheet_inputs WHERE sheet_id = ?1")?;
            let mut inputs = Vec::new();
            for row in stmt.query_map([id], |r| {
                let rowid: i64 = r.get(0)?;
                let read = (|| -> rusqlite::Result<(String, String, String)> {
                    Ok((r.get(1)?, r.get(2)?, r.get(3)?))
                })();
                Ok(read.map_err(|e| (rowid, e)))
            })? {
                match row? {
                    Ok(input) => inputs.push(input),
                    Err((rowid, e)) => skipped.push(SkippedRow {
                        table: "sheet_inputs",
                        id: Some(rowid),
                        node: None,
                        reason: e.to_string(),
                    }),
                }
            }
            let mut stmt = c.prepare(&format!(
                "SELECT {RESULT_COLUMNS}, l.log FROM selections s JOIN results r ON r.id = s.result_id
                 LEFT JOIN result_logs l ON l.result_id = r.id WHERE s.sheet_id = ?1"
            ))?;
            let mut selected = Vec::new();
            for row in stmt.query_map([id], read_row)? {
                match row? {
                    Ok(stored) => selected.push(stored),
                    Err(damaged) => skipped.push(damaged),
                }
            }
            Ok(LoadedSheet {
                inputs,
                selected,
                last_run: last_run(c, id)?,
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
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO sheet_inputs (sheet_id, node, port, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sheet_id, node, port) DO UPDATE SET value = excluded.value",
                params![id, node, port, value],
            )?;
            c.execute(
                "UPDATE sheets SET updated_ms = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            Ok(())
        })
    }

    fn delete_input(&self, id: i64, node: &str, port: &str) -> Result<(), Error> {
        self.with_conn(|c| {
            c.execute(
                "DELETE FROM sheet_inputs WHERE sheet_id = ?1 AND node = ?2 AND port = ?3",
                params![id, node, port],
            )
        })?;
        Ok(())
    }

    fn inputs(&self, id: i64) -> Result<Vec<(String, String, String)>, Error> {
        self.with_conn(|c| {
            let mut stmt = c.prepare(
                "SELECT node, port, value FROM sheet_inputs WHERE sheet_id = ?1 ORDER BY node, port",
            )?;
            let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    fn history(&self, id: i64, node: &str) -> Result<NodeHistory, Error> {
        self.with_conn(|c| {
            let selected: Option<i64> = c
                .query_row(
                    "SELECT result_id FROM selections WHERE sheet_id = ?1 AND node = ?2",
                    params![id, node],
                    |r| r.get(0),
                )
                .optional()?;
            // The logs themselves stay in the database: only their line counts are listed.
            let mut stmt = c.prepare(&format!(
                "SELECT {RESULT_COLUMNS}, NULL FROM results r LEFT JOIN result_logs l ON l.result_id = r.id
                 WHERE r.sheet_id = ?1 AND r.node = ?2 ORDER BY r.id DESC"
            ))?;
            let entries = stmt
                .query_map(params![id, node], read_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(NodeHistory { selected, entries })
        })
    }

    fn history_summary(&self, id: i64) -> Result<HashMap<String, HistorySummary>, Error> {
        self.with_conn(|c| {
            // A failed entry (`error` set) is no result: counted apart, never a position.
            let mut stmt = c.prepare(
                "SELECT r.node, SUM(r.error IS NULL), s.result_id,
                        SUM(r.error IS NULL AND r.id >= COALESCE(s.result_id, 0)),
                        SUM(r.error IS NOT NULL)
                 FROM results r LEFT JOIN selections s ON s.sheet_id = r.sheet_id AND s.node = r.node
                 WHERE r.sheet_id = ?1 GROUP BY r.node",
            )?;
            let rows = stmt.query_map([id], |r| {
                let count: i64 = r.get(1)?;
                let position: i64 = r.get(3)?;
                let failed: i64 = r.get(4)?;
                Ok((
                    r.get::<_, String>(0)?,
                    HistorySummary {
                        count: count as usize,
                        selected_id: r.get(2)?,
                        position: position as usize,
                        failed: failed as usize,
                    },
                ))
            })?;
            rows.collect()
        })
    }

    fn entry(&self, id: i64, node: &str, result_id: i64) -> Result<Option<StoredResult>, Error> {
        self.with_conn(|c| {
            c.query_row(
                &format!(
                    "SELECT {RESULT_COLUMNS}, l.log FROM results r LEFT JOIN result_logs l ON l.result_id = r.id
                     WHERE r.sheet_id = ?1 AND r.node = ?2 AND r.id = ?3"
                ),
                params![id, node, result_id],
                from_row,
            )
            .optional()
        })
    }

    fn set_selection(&self, id: i64, node: &str, result_id: i64) -> Result<(), Error> {
        self.with_conn(|c| {
            c.execute(
                "INSERT INTO selections (sheet_id, node, result_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (sheet_id, node) DO UPDATE SET result_id = excluded.result_id",
                params![id, node, result_id],
            )
        })?;
        Ok(())
    }

    fn log(&self, id: i64, node: &str, result_id: i64) -> Result<Option<Option<String>>, Error> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT l.log FROM results r LEFT JOIN result_logs l ON l.result_id = r.id
                 WHERE r.sheet_id = ?1 AND r.node = ?2 AND r.id = ?3",
                params![id, node, result_id],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn view(&self, id: i64, view: View) -> Result<Option<String>, Error> {
        let column = view.column();
        self.with_conn(|c| {
            c.query_row(
                &format!("SELECT {column} FROM sheets WHERE id = ?1"),
                [id],
                |r| r.get(0),
            )
        })
    }

    fn set_view(&self, id: i64, view: View, value: Option<&str>) -> Result<(), Error> {
        let column = view.column();
        self.with_conn(|c| {
            c.execute(
                &format!("UPDATE sheets SET {column} = ?2 WHERE id = ?1"),
                params![id, value],
            )
        })?;
        Ok(())
    }
}

impl RowWriter for Connection {
    fn insert_rows(&mut self, rows: &[&ResultRow], limit: usize) -> Result<(), BoxError> {
        Ok(insert_rows(self, rows, limit)?)
    }
}

/// Inserts rows in one transaction (all or none), selecting each result and pruning the
/// nodes' histories to `limit`.
fn insert_rows(conn: &mut Connection, rows: &[&ResultRow], limit: usize) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO results (sheet_id, node, run, cache_key, outcome, elapsed_ms, finished_ms, outputs, provenance, error, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut select = tx.prepare_cached(
            "INSERT INTO selections (sheet_id, node, result_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (sheet_id, node) DO UPDATE SET result_id = excluded.result_id",
        )?;
        let mut prune = tx.prepare_cached(
            "DELETE FROM results WHERE sheet_id = ?1 AND node = ?2 AND id NOT IN (
                 SELECT id FROM results WHERE sheet_id = ?1 AND node = ?2 ORDER BY id DESC LIMIT ?3)
             AND id NOT IN (SELECT result_id FROM selections WHERE sheet_id = ?1 AND node = ?2)",
        )?;
        let mut insert_log = tx.prepare_cached(
            "INSERT INTO result_logs (result_id, lines, log) VALUES (?1, ?2, ?3)",
        )?;
        let mut touch = tx.prepare_cached("UPDATE sheets SET updated_ms = ?2 WHERE id = ?1")?;
        let mut touched = HashSet::new();
        for row in rows {
            insert.execute(params![
                row.sheet_id,
                row.node,
                row.run as i64,
                row.key,
                row.outcome,
                row.elapsed_ms,
                row.finished_ms,
                row.outputs,
                row.provenance,
                row.error,
                row.attempts
            ])?;
            let id = tx.last_insert_rowid();
            if let Some((lines, log)) = &row.log {
                insert_log.execute(params![id, *lines as i64, log])?;
            }
            // A failed execution has no outputs: the last good result stays current.
            if row.error.is_none() {
                select.execute(params![row.sheet_id, row.node, id])?;
            }
            touched.insert((row.sheet_id, row.node.clone()));
        }
        for (sheet_id, node) in &touched {
            prune.execute(params![sheet_id, node, limit as i64])?;
        }
        for sheet_id in touched.iter().map(|(s, _)| *s).collect::<HashSet<_>>() {
            touch.execute(params![sheet_id, now_ms()])?;
        }
    }
    tx.commit()
}

/// The sheet's last run number. `MAX(run)` is read through the index; when a damaged row
/// holds a run that is not an integer (text sorts above every number in SQLite), only the
/// integer runs count.
fn last_run(c: &Connection, id: i64) -> rusqlite::Result<u64> {
    use rusqlite::types::Value as Sql;
    let max: Sql = c.query_row(
        "SELECT MAX(run) FROM results WHERE sheet_id = ?1",
        [id],
        |r| r.get(0),
    )?;
    let max = match max {
        Sql::Null => 0,
        Sql::Integer(run) => run,
        _ => c.query_row(
            "SELECT COALESCE(MAX(run), 0) FROM results WHERE sheet_id = ?1 AND typeof(run) = 'integer'",
            [id],
            |r| r.get(0),
        )?,
    };
    Ok(u64::try_from(max).unwrap_or(0))
}

/// Like [`from_row`], but a row whose columns cannot be read (a wrongly typed column) is
/// returned as skipped instead of ending the whole query.
fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredResult, SkippedRow>> {
    Ok(from_row(r).map_err(|e| SkippedRow {
        table: "results",
        id: r.get(1).ok(),
        node: r.get(0).ok(),
        reason: e.to_string(),
    }))
}

/// Reads [`RESULT_COLUMNS`] and the log.
fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredResult> {
    Ok(StoredResult {
        node: r.get(0)?,
        id: r.get(1)?,
        run: r.get::<_, i64>(2)? as u64,
        key: r.get(3)?,
        outcome: r.get(4)?,
        elapsed_ms: r.get(5)?,
        finished_ms: r.get(6)?,
        outputs: r.get(7)?,
        provenance: r.get(8)?,
        log_lines: r.get::<_, Option<i64>>(9)?.unwrap_or(0).max(0) as usize,
        error: r.get(10)?,
        attempts: r.get::<_, Option<i64>>(11)?.map(|a| a.max(0) as u32),
        log: r.get(12)?,
    })
}
