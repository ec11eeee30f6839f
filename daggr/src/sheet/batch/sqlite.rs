//! Batches in the SQLite sheet database. One machine's file: leases are in this machine's
//! clock, and a claim is one IMMEDIATE transaction (it takes the write lock before it
//! reads, so two claimers, in this process or another, never pick the same item).

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::backend::{
    Abandoned, BatchBackend, BatchState, ClaimRow, Claimed, HeldClaim, ItemEnd, ItemRow,
    ABANDONED_ERROR_SQL, BATCH_MIGRATIONS,
};
use crate::sheet::rows::collect_refs;
use crate::sheet::schema::now_ms;
use crate::sheet::sqlite::SqliteBackend;
use crate::Error;

/// The condition of a claim being `(worker, attempt)`'s: `?1` batch, `?2` item, `?3`
/// worker, `?4` attempt.
const OWN_CLAIM: &str =
    "batch_id = ?1 AND item = ?2 AND status = 'claimed' AND claimed_by = ?3 AND attempts = ?4";

fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS daggr_batches_schema (version INTEGER NOT NULL)")?;
    let version: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM daggr_batches_schema",
        [],
        |r| r.get(0),
    )?;
    let version = version.max(0) as usize;
    if version < BATCH_MIGRATIONS.len() {
        for step in &BATCH_MIGRATIONS[version..] {
            tx.execute_batch(step.sqlite)?;
        }
        tx.execute("DELETE FROM daggr_batches_schema", [])?;
        tx.execute(
            "INSERT INTO daggr_batches_schema (version) VALUES (?1)",
            [BATCH_MIGRATIONS.len() as i64],
        )?;
    }
    tx.commit()
}

impl BatchBackend for SqliteBackend {
    fn migrate_batches(&self) -> Result<(), Error> {
        self.with_conn(migrate)
    }

    fn create_batch(
        &self,
        pipeline: &str,
        name: &str,
        items: &[String],
        now: i64,
    ) -> Result<(i64, Vec<String>), Error> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO batches (pipeline, name, created_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (pipeline, name) DO NOTHING",
                params![pipeline, name, now],
            )?;
            let id: i64 = tx.query_row(
                "SELECT id FROM batches WHERE pipeline = ?1 AND name = ?2",
                [pipeline, name],
                |r| r.get(0),
            )?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO batch_items (batch_id, item, inputs, status, attempts)
                     VALUES (?1, ?2, ?3, 'pending', 0) ON CONFLICT (batch_id, item) DO NOTHING",
                )?;
                for (item, inputs) in items.iter().enumerate() {
                    insert.execute(params![id, item as i64, inputs])?;
                }
            }
            let stored = tx
                .prepare("SELECT inputs FROM batch_items WHERE batch_id = ?1 ORDER BY item")?
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            tx.commit()?;
            Ok((id, stored))
        })
    }

    fn find_batch(&self, pipeline: &str, name: &str) -> Result<Option<(i64, u64)>, Error> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT b.id, (SELECT COUNT(*) FROM batch_items i WHERE i.batch_id = b.id)
                 FROM batches b WHERE b.pipeline = ?1 AND b.name = ?2",
                [pipeline, name],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)),
            )
            .optional()
        })
    }

    fn batch_names(&self, pipeline: &str) -> Result<Vec<String>, Error> {
        self.with_conn(|c| {
            c.prepare("SELECT name FROM batches WHERE pipeline = ?1 ORDER BY name")?
                .query_map([pipeline], |r| r.get(0))?
                .collect()
        })
    }

    fn delete_batch(&self, pipeline: &str, name: &str) -> Result<bool, Error> {
        let deleted = self.with_conn(|c| {
            c.execute(
                "DELETE FROM batches WHERE pipeline = ?1 AND name = ?2",
                [pipeline, name],
            )
        })?;
        Ok(deleted > 0)
    }

    fn retry_failed(&self, batch: i64) -> Result<u64, Error> {
        let changed = self.with_conn(|c| {
            c.execute(
                "UPDATE batch_items SET status = 'pending', error = NULL
                 WHERE batch_id = ?1 AND status = 'failed'",
                [batch],
            )
        })?;
        Ok(changed as u64)
    }

    fn claim(
        &self,
        batch: i64,
        worker: &str,
        lease_ms: i64,
        max_claims: i64,
    ) -> Result<Claimed, Error> {
        self.with_conn(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let abandoned = tx
                .prepare(&format!(
                    "UPDATE batch_items SET status = 'failed', error = {ABANDONED_ERROR_SQL},
                         finished_ms = ?2, claimed_until = NULL
                     WHERE batch_id = ?1 AND status = 'claimed' AND claimed_until <= ?2
                         AND attempts >= ?3
                     RETURNING item, attempts, claimed_by"
                ))?
                .query_map(params![batch, now, max_claims], |r| {
                    Ok(Abandoned {
                        item: r.get(0)?,
                        claims: r.get(1)?,
                        last_worker: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let found: Option<(i64, String, String, Option<String>)> = tx
                .query_row(
                    "SELECT item, inputs, status, claimed_by FROM batch_items
                     WHERE batch_id = ?1 AND (status = 'pending' OR (status = 'claimed' AND claimed_until <= ?2))
                     ORDER BY item LIMIT 1",
                    params![batch, now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((item, inputs, status, previous)) = found else {
                tx.commit()?;
                return Ok(Claimed {
                    row: None,
                    abandoned,
                });
            };
            let attempt: i64 = tx.query_row(
                "UPDATE batch_items SET status = 'claimed', claimed_by = ?3, claimed_until = ?4,
                     started_ms = ?5, attempts = attempts + 1
                 WHERE batch_id = ?1 AND item = ?2 RETURNING attempts",
                params![batch, item, worker, now + lease_ms, now],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(Claimed {
                row: Some(ClaimRow {
                    item,
                    inputs,
                    attempt,
                    previous: (status == "claimed").then_some(previous).flatten(),
                }),
                abandoned,
            })
        })
    }

    fn renew(
        &self,
        batch: i64,
        item: i64,
        worker: &str,
        attempt: i64,
        lease_ms: i64,
    ) -> Result<bool, Error> {
        let changed = self.with_conn(|c| {
            c.execute(
                &format!("UPDATE batch_items SET claimed_until = ?5 WHERE {OWN_CLAIM}"),
                params![batch, item, worker, attempt, now_ms() + lease_ms],
            )
        })?;
        Ok(changed == 1)
    }

    fn finish(
        &self,
        batch: i64,
        item: i64,
        worker: &str,
        attempt: i64,
        end: &ItemEnd,
    ) -> Result<bool, Error> {
        let changed = self.with_conn(|c| {
            c.execute(
                &format!(
                    "UPDATE batch_items SET status = ?5, outputs = ?6, error = ?7, elapsed_ms = ?8,
                         finished_ms = ?9, claimed_until = NULL
                     WHERE {OWN_CLAIM}"
                ),
                params![
                    batch,
                    item,
                    worker,
                    attempt,
                    end.status,
                    end.outputs,
                    end.error,
                    end.elapsed_ms,
                    now_ms()
                ],
            )
        })?;
        Ok(changed == 1)
    }

    fn batch_state(&self, batch: i64) -> Result<BatchState, Error> {
        self.with_conn(|c| {
            let mut state = BatchState::default();
            let mut stmt = c.prepare(
                "SELECT status, COUNT(*) FROM batch_items WHERE batch_id = ?1 GROUP BY status",
            )?;
            let mut rows = stmt.query([batch])?;
            while let Some(row) = rows.next()? {
                let status: String = row.get(0)?;
                let count = row.get::<_, i64>(1)?.max(0) as u64;
                match status.as_str() {
                    "pending" => state.pending = count,
                    "done" => state.done = count,
                    "failed" => state.failed = count,
                    _ => {}
                }
            }
            let now = now_ms();
            state.claims = c
                .prepare(
                    "SELECT item, attempts, claimed_until FROM batch_items
                     WHERE batch_id = ?1 AND status = 'claimed' ORDER BY item",
                )?
                .query_map([batch], |r| {
                    Ok(HeldClaim {
                        item: r.get(0)?,
                        attempt: r.get(1)?,
                        expires_in_ms: r.get::<_, Option<i64>>(2)?.unwrap_or(now) - now,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(state)
        })
    }

    fn failures(&self, batch: i64) -> Result<Vec<(i64, Option<String>, String)>, Error> {
        self.with_conn(|c| {
            c.prepare(
                "SELECT item, claimed_by, COALESCE(error, '') FROM batch_items
                 WHERE batch_id = ?1 AND status = 'failed' ORDER BY item",
            )?
            .query_map([batch], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
        })
    }

    fn items_page(
        &self,
        batch: i64,
        status: Option<&str>,
        offset: i64,
        limit: Option<i64>,
    ) -> Result<Vec<ItemRow>, Error> {
        self.with_conn(|c| {
            c.prepare(
                "SELECT item, inputs, status, claimed_by, claimed_until, attempts, started_ms,
                        finished_ms, elapsed_ms, outputs, error
                 FROM batch_items WHERE batch_id = ?1 AND (?2 IS NULL OR status = ?2)
                 ORDER BY item LIMIT ?3 OFFSET ?4",
            )?
            // LIMIT -1: no limit, in SQLite.
            .query_map(params![batch, status, limit.unwrap_or(-1), offset], |r| {
                Ok(ItemRow {
                    item: r.get(0)?,
                    inputs: r.get(1)?,
                    status: r.get(2)?,
                    claimed_by: r.get(3)?,
                    claimed_until: r.get(4)?,
                    attempts: r.get(5)?,
                    started_ms: r.get(6)?,
                    finished_ms: r.get(7)?,
                    elapsed_ms: r.get(8)?,
                    outputs: r.get(9)?,
                    error: r.get(10)?,
                })
            })?
            .collect()
        })
    }

    fn batch_blobs(&self, blobs: &mut HashSet<String>) -> Result<(), Error> {
        self.with_conn(|c| {
            let mut stmt = c.prepare("SELECT inputs, outputs FROM batch_items")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let inputs: String = row.get(0)?;
                collect_refs(inputs.as_bytes(), blobs);
                if let Some(outputs) = row.get::<_, Option<String>>(1)? {
                    collect_refs(outputs.as_bytes(), blobs);
                }
            }
            Ok(())
        })
    }
}
