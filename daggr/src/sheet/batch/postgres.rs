//! Batches in the PostgreSQL sheet database (feature `postgres`), where workers on several
//! machines share them.
//!
//! A claim is one transaction: `SELECT … FOR UPDATE SKIP LOCKED` picks the first free item
//! that no other claimer has locked (so concurrent claimers never wait on, or pick, the
//! same row), then the claim is written and committed. Leases are in the server's clock,
//! so the workers' clocks do not need to agree. A renewal or an end is one `UPDATE` whose
//! condition names the claim: if another worker took the item over meanwhile, the row no
//! longer matches (PostgreSQL re-checks the condition on the row's newest version) and
//! nothing is written.

use std::collections::HashSet;

use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::{Client, IsolationLevel};

use super::backend::{
    Abandoned, BatchBackend, BatchState, ClaimRow, Claimed, HeldClaim, ItemEnd, ItemRow,
    ABANDONED_ERROR_SQL, BATCH_MIGRATIONS,
};
use crate::sheet::postgres::PgBackend;
use crate::sheet::rows::collect_refs;
use crate::Error;

/// The advisory lock (64-bit key space) held while migrating the batch tables: "daggrbch".
const BATCH_MIGRATION_LOCK: i64 = 0x6461_6767_7262_6368;

/// The server's clock, in Unix milliseconds.
const NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// The condition of a claim being `(worker, attempt)`'s: `$1` batch, `$2` item, `$3`
/// worker, `$4` attempt.
const OWN_CLAIM: &str =
    "batch_id = $1 AND item = $2 AND status = 'claimed' AND claimed_by = $3 AND attempts = $4";

fn migrate(c: &mut Client) -> Result<(), ::postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&BATCH_MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS daggr_batches_schema (version INTEGER NOT NULL)")?;
    let version: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM daggr_batches_schema",
            &[],
        )?
        .try_get(0)?;
    let version = version.max(0) as usize;
    if version < BATCH_MIGRATIONS.len() {
        for step in &BATCH_MIGRATIONS[version..] {
            tx.batch_execute(step.postgres)?;
        }
        tx.execute("DELETE FROM daggr_batches_schema", &[])?;
        tx.execute(
            "INSERT INTO daggr_batches_schema (version) VALUES ($1)",
            &[&(BATCH_MIGRATIONS.len() as i32)],
        )?;
    }
    tx.commit()
}

impl BatchBackend for PgBackend {
    fn migrate_batches(&self) -> Result<(), Error> {
        self.call(migrate)
    }

    fn create_batch(
        &self,
        pipeline: &str,
        name: &str,
        items: &[String],
        now: i64,
    ) -> Result<(i64, Vec<String>), Error> {
        let (pipeline, name) = (pipeline.to_string(), name.to_string());
        let numbers: Vec<i64> = (0..items.len() as i64).collect();
        let items = items.to_vec();
        self.call(move |c| {
            let mut tx = c.transaction()?;
            // READ COMMITTED: a concurrent creator's insert is waited for, then seen.
            tx.execute(
                "INSERT INTO batches (pipeline, name, created_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (pipeline, name) DO NOTHING",
                &[&pipeline, &name, &now],
            )?;
            let id: i64 = tx
                .query_one(
                    "SELECT id FROM batches WHERE pipeline = $1 AND name = $2",
                    &[&pipeline, &name],
                )?
                .try_get(0)?;
            // One statement for all the items: one round trip, however many there are.
            tx.execute(
                "INSERT INTO batch_items (batch_id, item, inputs, status, attempts)
                 SELECT $1, u.item, u.inputs, 'pending', 0
                 FROM unnest($2::bigint[], $3::text[]) AS u(item, inputs)
                 ON CONFLICT (batch_id, item) DO NOTHING",
                &[&id, &numbers, &items],
            )?;
            let stored = tx
                .query(
                    "SELECT inputs FROM batch_items WHERE batch_id = $1 ORDER BY item",
                    &[&id],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()?;
            tx.commit()?;
            Ok((id, stored))
        })
    }

    fn find_batch(&self, pipeline: &str, name: &str) -> Result<Option<(i64, u64)>, Error> {
        let (pipeline, name) = (pipeline.to_string(), name.to_string());
        self.call(move |c| {
            c.query_opt(
                "SELECT b.id, (SELECT COUNT(*) FROM batch_items i WHERE i.batch_id = b.id)
                 FROM batches b WHERE b.pipeline = $1 AND b.name = $2",
                &[&pipeline, &name],
            )?
            .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64)))
            .transpose()
        })
    }

    fn batch_names(&self, pipeline: &str) -> Result<Vec<String>, Error> {
        let pipeline = pipeline.to_string();
        self.call(move |c| {
            c.query(
                "SELECT name FROM batches WHERE pipeline = $1 ORDER BY name COLLATE \"C\"",
                &[&pipeline],
            )?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
        })
    }

    fn delete_batch(&self, pipeline: &str, name: &str) -> Result<bool, Error> {
        let (pipeline, name) = (pipeline.to_string(), name.to_string());
        self.call(move |c| {
            let deleted = c.execute(
                "DELETE FROM batches WHERE pipeline = $1 AND name = $2",
                &[&pipeline, &name],
            )?;
            Ok(deleted > 0)
        })
    }

    fn retry_failed(&self, batch: i64) -> Result<u64, Error> {
        self.call(move |c| {
            c.execute(
                "UPDATE batch_items SET status = 'pending', error = NULL
                 WHERE batch_id = $1 AND status = 'failed'",
                &[&batch],
            )
        })
    }

    fn claim(
        &self,
        batch: i64,
        worker: &str,
        lease_ms: i64,
        max_claims: i64,
    ) -> Result<Claimed, Error> {
        let worker = worker.to_string();
        self.call(move |c| {
            let mut tx = c.transaction()?;
            let now: i64 = tx.query_one(&format!("SELECT {NOW}"), &[])?.try_get(0)?;
            let abandoned = tx
                .query(
                    &format!(
                        "UPDATE batch_items SET status = 'failed', error = {ABANDONED_ERROR_SQL},
                             finished_ms = $2, claimed_until = NULL
                         WHERE batch_id = $1 AND status = 'claimed' AND claimed_until <= $2
                             AND attempts >= $3
                         RETURNING item, attempts, claimed_by"
                    ),
                    &[&batch, &now, &max_claims],
                )?
                .iter()
                .map(|r| {
                    Ok(Abandoned {
                        item: r.try_get(0)?,
                        claims: r.try_get(1)?,
                        last_worker: r.try_get(2)?,
                    })
                })
                .collect::<Result<Vec<_>, ::postgres::Error>>()?;
            let Some(row) = tx.query_opt(
                "SELECT item, inputs, status, claimed_by FROM batch_items
                 WHERE batch_id = $1 AND (status = 'pending' OR (status = 'claimed' AND claimed_until <= $2))
                 ORDER BY item LIMIT 1
                 FOR UPDATE SKIP LOCKED",
                &[&batch, &now],
            )?
            else {
                tx.commit()?;
                return Ok(Claimed {
                    row: None,
                    abandoned,
                });
            };
            let item: i64 = row.try_get(0)?;
            let inputs: String = row.try_get(1)?;
            let status: String = row.try_get(2)?;
            let previous: Option<String> = row.try_get(3)?;
            let attempt: i64 = tx
                .query_one(
                    "UPDATE batch_items SET status = 'claimed', claimed_by = $3, claimed_until = $4,
                         started_ms = $5, attempts = attempts + 1
                     WHERE batch_id = $1 AND item = $2 RETURNING attempts",
                    &[&batch, &item, &worker, &(now + lease_ms), &now],
                )?
                .try_get(0)?;
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
        let worker = worker.to_string();
        self.call(move |c| {
            let changed = c.execute(
                &format!("UPDATE batch_items SET claimed_until = {NOW} + $5 WHERE {OWN_CLAIM}"),
                &[&batch, &item, &worker, &attempt, &lease_ms],
            )?;
            Ok(changed == 1)
        })
    }

    fn finish(
        &self,
        batch: i64,
        item: i64,
        worker: &str,
        attempt: i64,
        end: &ItemEnd,
    ) -> Result<bool, Error> {
        let worker = worker.to_string();
        let (status, outputs, error, elapsed) = (
            end.status.to_string(),
            end.outputs.clone(),
            end.error.clone(),
            end.elapsed_ms,
        );
        self.call(move |c| {
            let changed = c.execute(
                &format!(
                    "UPDATE batch_items SET status = $5, outputs = $6, error = $7, elapsed_ms = $8,
                         finished_ms = {NOW}, claimed_until = NULL
                     WHERE {OWN_CLAIM}"
                ),
                &[
                    &batch, &item, &worker, &attempt, &status, &outputs, &error, &elapsed,
                ],
            )?;
            Ok(changed == 1)
        })
    }

    fn batch_state(&self, batch: i64) -> Result<BatchState, Error> {
        self.call(move |c| {
            let mut state = BatchState::default();
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            for row in tx.query(
                "SELECT status, COUNT(*) FROM batch_items WHERE batch_id = $1 GROUP BY status",
                &[&batch],
            )? {
                let status: String = row.try_get(0)?;
                let count = row.try_get::<_, i64>(1)?.max(0) as u64;
                match status.as_str() {
                    "pending" => state.pending = count,
                    "done" => state.done = count,
                    "failed" => state.failed = count,
                    _ => {}
                }
            }
            state.claims = tx
                .query(
                    &format!(
                        "SELECT item, attempts, COALESCE(claimed_until - {NOW}, 0)
                         FROM batch_items WHERE batch_id = $1 AND status = 'claimed' ORDER BY item"
                    ),
                    &[&batch],
                )?
                .iter()
                .map(|r| {
                    Ok(HeldClaim {
                        item: r.try_get(0)?,
                        attempt: r.try_get(1)?,
                        expires_in_ms: r.try_get(2)?,
                    })
                })
                .collect::<Result<_, ::postgres::Error>>()?;
            tx.commit()?;
            Ok(state)
        })
    }

    fn failures(&self, batch: i64) -> Result<Vec<(i64, Option<String>, String)>, Error> {
        self.call(move |c| {
            c.query(
                "SELECT item, claimed_by, COALESCE(error, '') FROM batch_items
                 WHERE batch_id = $1 AND status = 'failed' ORDER BY item",
                &[&batch],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
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
        let status = status.map(str::to_string);
        self.call(move |c| {
            // LIMIT NULL: no limit, in PostgreSQL.
            c.query(
                "SELECT item, inputs, status, claimed_by, claimed_until, attempts, started_ms,
                        finished_ms, elapsed_ms, outputs, error
                 FROM batch_items WHERE batch_id = $1 AND ($2::TEXT IS NULL OR status = $2)
                 ORDER BY item LIMIT $3 OFFSET $4",
                &[&batch, &status, &limit, &offset],
            )?
            .iter()
            .map(|r| {
                Ok(ItemRow {
                    item: r.try_get(0)?,
                    inputs: r.try_get(1)?,
                    status: r.try_get(2)?,
                    claimed_by: r.try_get(3)?,
                    claimed_until: r.try_get(4)?,
                    attempts: r.try_get(5)?,
                    started_ms: r.try_get(6)?,
                    finished_ms: r.try_get(7)?,
                    elapsed_ms: r.try_get(8)?,
                    outputs: r.try_get(9)?,
                    error: r.try_get(10)?,
                })
            })
            .collect()
        })
    }

    fn batch_blobs(&self, blobs: &mut HashSet<String>) -> Result<(), Error> {
        let found = self.call(|c| {
            let mut found = HashSet::new();
            // Streamed: the items are never all in memory at once.
            let mut tx = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut rows = tx.query_raw(
                "SELECT inputs, outputs FROM batch_items",
                std::iter::empty::<i64>(),
            )?;
            while let Some(row) = rows.next()? {
                let inputs: String = row.try_get(0)?;
                collect_refs(inputs.as_bytes(), &mut found);
                if let Some(outputs) = row.try_get::<_, Option<String>>(1)? {
                    collect_refs(outputs.as_bytes(), &mut found);
                }
            }
            drop(rows);
            tx.commit()?;
            Ok(found)
        })?;
        blobs.extend(found);
        Ok(())
    }
}
