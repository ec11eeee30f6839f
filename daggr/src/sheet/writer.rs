//! The writer: one background thread that commits the sheets' result rows in batched
//! transactions (through the backend's [`RowWriter`]), the queue that feeds it (and [`SheetStore::flush`] waits on), and what
//! happens when a write fails (row by row, each failure kept for the run that made it).

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

use super::backend::RowWriter;
use super::rows::ResultRow;
#[cfg(doc)]
use super::Sheet;

pub(super) enum Write {
    Result(Box<ResultRow>),
    Flush(mpsc::Sender<()>),
}

pub(super) struct Pending {
    pub(super) count: Mutex<u64>,
    pub(super) idle: Condvar,
}

impl Pending {
    pub(super) fn done(&self) {
        let mut count = self.count.lock().unwrap();
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.idle.notify_all();
        }
    }
}

/// A result row the writer could not commit, until the run that made it collects it.
pub(super) struct RowFailure {
    pub(super) sheet_id: i64,
    pub(super) run: u64,
    pub(super) node: String,
    pub(super) error: String,
}

/// How many uncollected [`RowFailure`]s are kept (a run started outside [`Sheet::run`]
/// never collects its own): the oldest go first.
const MAX_ROW_FAILURES: usize = 10_000;

pub(super) fn writer_loop(
    mut conn: Box<dyn RowWriter>,
    rx: mpsc::Receiver<Write>,
    pending: Arc<Pending>,
    failures: Arc<Mutex<std::collections::VecDeque<RowFailure>>>,
    limit: usize,
    location: String,
) {
    while let Ok(first) = rx.recv() {
        // Batch whatever else is queued into the same transaction.
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let mut acks = Vec::new();
        let rows: Vec<ResultRow> = batch
            .into_iter()
            .filter_map(|w| match w {
                Write::Result(row) => Some(*row),
                Write::Flush(ack) => {
                    acks.push(ack);
                    None
                }
            })
            .collect();
        let count = rows.len();
        if count > 0 {
            let failed = write_rows(conn.as_mut(), &rows, limit);
            if !failed.is_empty() {
                let mut failures = failures.lock().unwrap();
                for (i, error) in failed {
                    let row = &rows[i];
                    tracing::warn!(db = %location, node = row.node, run = row.run, error, "writing a sheet row failed");
                    // A failed execution's row is history, not a result: it is logged only.
                    if row.error.is_none() {
                        if failures.len() == MAX_ROW_FAILURES {
                            failures.pop_front();
                        }
                        failures.push_back(RowFailure {
                            sheet_id: row.sheet_id,
                            run: row.run,
                            node: row.node.clone(),
                            error,
                        });
                    }
                }
            }
        }
        for _ in 0..count {
            pending.done();
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Writes a batch of rows, returning those it could not write (by index, with the error)
/// and keeping every other one. Content first, rows second: a row whose large outputs or
/// media could not be put into the cache is not written (a row never refers to bytes that
/// are not on disk). The rows go in one transaction; if it fails (a full disk), each row
/// is tried in a transaction of its own, so one that cannot be written costs only itself.
fn write_rows(conn: &mut dyn RowWriter, rows: &[ResultRow], limit: usize) -> Vec<(usize, String)> {
    let mut failed = Vec::new();
    let mut ready = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        match write_blobs(row) {
            Ok(()) => ready.push(i),
            Err(e) => failed.push((
                i,
                format!("writing its outputs to the cache: {}", chain(&e)),
            )),
        }
    }
    let batch: Vec<&ResultRow> = ready.iter().map(|&i| &rows[i]).collect();
    if !batch.is_empty() && conn.insert_rows(&batch, limit).is_err() {
        for i in ready {
            if let Err(e) = conn.insert_rows(&[&rows[i]], limit) {
                failed.push((
                    i,
                    format!("writing the sheet database: {}", chain(e.as_ref())),
                ));
            }
        }
    }
    failed.sort_by_key(|(i, _)| *i);
    failed
}

/// An error with its causes, `outer: inner` (a cacache I/O error's display is only its
/// context; "No space left on device" is its source).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    crate::node::event::error_chain(error)
}

/// Puts a row's large outputs and media into the cache (those not there yet).
fn write_blobs(row: &ResultRow) -> Result<(), cacache::Error> {
    for blob in &row.blobs {
        let sri = ssri::Integrity::from(blob);
        if !cacache::exists_sync(&row.cache_dir, &sri) {
            cacache::write_hash_sync(&row.cache_dir, blob)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::schema::{migrate, open_connection};
    use super::*;

    fn row(sheet_id: i64, node: &str, cache_dir: &Path) -> ResultRow {
        ResultRow {
            sheet_id,
            node: node.into(),
            run: 1,
            key: "00".into(),
            outcome: "computed".into(),
            elapsed_ms: Some(1.0),
            finished_ms: 1,
            outputs: "[]".into(),
            provenance: "{}".into(),
            error: None,
            attempts: Some(1),
            log: None,
            blobs: vec![vec![1, 2, 3]],
            cache_dir: cache_dir.to_path_buf(),
        }
    }

    #[test]
    fn a_row_whose_bytes_cannot_be_written_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sheets.db");
        let mut conn = open_connection(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        conn.execute(
            "INSERT INTO sheets (pipeline, name, created_ms, updated_ms) VALUES ('p', 's', 0, 0)",
            [],
        )
        .unwrap();
        let id = conn.last_insert_rowid();
        let good = dir.path().join("cache");
        // A file where the content directory goes: this row's blob cannot be written.
        let broken = dir.path().join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        std::fs::write(broken.join("content-v2"), b"").unwrap();
        let rows = [
            row(id, "a", &good),
            row(id, "b", &broken),
            row(id, "c", &good),
        ];
        let failed = write_rows(&mut conn, &rows, 10);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, 1);
        assert!(failed[0].1.starts_with("writing its outputs to the cache"));
        let kept: Vec<String> = conn
            .prepare("SELECT node FROM results ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kept, ["a", "c"], "the rest of the batch is written");
    }
}
