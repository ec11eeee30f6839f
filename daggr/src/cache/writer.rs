//! The write-behind writer: one background thread takes results off a queue and writes
//! them to the store, so persisting does not hold execution up. The queue is bounded by
//! bytes ([`WRITE_BACKLOG_BYTES`]); [`Cache::flush`] waits until it is empty and returns
//! the writes that failed (a full disk, say): a failed write is counted
//! ([`CacheCounters::write_failures`](super::CacheCounters::write_failures)) and remembered
//! by key until the key is written, never only logged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::store::write_entry;
use super::{Cache, CacheKey, Inner, WriteFailure};
use crate::value::media::Blob;
use crate::Error;

/// How many bytes of results may wait for the disk writer before a store waits for it.
/// Results are never dropped: past this bound the executor slows to the disk's pace.
pub const WRITE_BACKLOG_BYTES: usize = 64 * 1024 * 1024;

pub(super) enum Job {
    Write {
        key: CacheKey,
        /// JSON; parsed on the writer thread (cacache wants a `Value`), so what waits in
        /// the queue is compact and its size is known.
        preimage: Vec<u8>,
        record: Vec<u8>,
        blobs: Vec<Blob>,
        repair: bool,
    },
}

/// How many failed writes [`Pending`] remembers by key (more are still counted): a disk
/// that stays full must not grow the process without bound.
const MAX_REMEMBERED_FAILURES: usize = 10_000;

/// Writes queued and not yet on disk: how many, their bytes and keys; and the writes that
/// failed.
pub(super) struct Pending {
    backlog: Mutex<Backlog>,
    /// Signalled whenever a write finishes.
    progress: Condvar,
    /// Keys whose last write failed, with the error; a later successful write removes one.
    failed: Mutex<HashMap<CacheKey, String>>,
    /// Writes that failed since the cache was opened.
    pub(super) failures: AtomicU64,
}

#[derive(Default)]
struct Backlog {
    jobs: usize,
    bytes: usize,
    /// The keys queued and not yet written (a key can be queued twice).
    keys: HashMap<CacheKey, usize>,
}

impl Pending {
    pub(super) fn new() -> Self {
        Pending {
            backlog: Mutex::new(Backlog::default()),
            progress: Condvar::new(),
            failed: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
        }
    }

    /// Counts a write of `size` bytes in, first waiting while the backlog is over its bound
    /// (a single job larger than the bound still goes, alone). Returns whether it waited.
    fn admit(&self, key: CacheKey, size: usize) -> bool {
        let mut backlog = self.backlog.lock().unwrap();
        let mut waited = false;
        while backlog.jobs > 0 && backlog.bytes + size > WRITE_BACKLOG_BYTES {
            waited = true;
            backlog = self.progress.wait(backlog).unwrap();
        }
        backlog.jobs += 1;
        backlog.bytes += size;
        *backlog.keys.entry(key).or_default() += 1;
        waited
    }

    fn done(&self, key: &CacheKey, size: usize) {
        let mut backlog = self.backlog.lock().unwrap();
        backlog.jobs -= 1;
        backlog.bytes -= size;
        if let Some(count) = backlog.keys.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                backlog.keys.remove(key);
            }
        }
        self.progress.notify_all();
    }

    /// Whether a write of `key` is queued or under way (its content may not be on disk yet).
    pub(super) fn in_flight(&self, key: &CacheKey) -> bool {
        self.backlog.lock().unwrap().keys.contains_key(key)
    }

    fn failed(&self, key: CacheKey, error: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut failed = self.failed.lock().unwrap();
        if failed.len() < MAX_REMEMBERED_FAILURES || failed.contains_key(&key) {
            failed.insert(key, error);
        }
    }

    fn written(&self, key: &CacheKey) {
        let mut failed = self.failed.lock().unwrap();
        if !failed.is_empty() {
            failed.remove(key);
        }
    }

    /// Why the last write of `key` failed, if it did (and it was not written since).
    #[cfg_attr(not(feature = "sheets"), allow(dead_code))]
    pub(super) fn failure(&self, key: &CacheKey) -> Option<String> {
        self.failed.lock().unwrap().get(key).cloned()
    }

    fn failures_now(&self) -> Vec<WriteFailure> {
        let mut out: Vec<WriteFailure> = self
            .failed
            .lock()
            .unwrap()
            .iter()
            .map(|(key, error)| WriteFailure {
                key: *key,
                error: error.clone(),
            })
            .collect();
        out.sort_by_key(|f| f.key);
        out
    }

    fn wait_idle(&self) {
        let mut backlog = self.backlog.lock().unwrap();
        while backlog.jobs > 0 {
            backlog = self.progress.wait(backlog).unwrap();
        }
    }
}

impl Job {
    /// The bytes a queued job holds: its record, preimage and media, and a share for the
    /// allocations themselves.
    fn size(&self) -> usize {
        let Job::Write {
            record,
            preimage,
            blobs,
            ..
        } = self;
        128 + record.len() + preimage.len() + blobs.iter().map(|b| b.bytes.len()).sum::<usize>()
    }
}

/// Starts the writer thread for the store at `dir`. It runs until the returned sender (and
/// every clone) is dropped, after writing what was queued.
pub(super) fn spawn(
    dir: PathBuf,
    pending: Arc<Pending>,
    writes: Arc<AtomicU64>,
) -> Result<(mpsc::Sender<Job>, JoinHandle<()>), Error> {
    // Bounded by bytes, not by jobs: when results arrive faster than the disk takes them
    // (only trivially cheap nodes can do that), a store waits for the writer past
    // WRITE_BACKLOG_BYTES instead of dropping a result the next run would recompute.
    let (tx, rx) = mpsc::channel::<Job>();
    let handle = std::thread::Builder::new()
        .name("daggr-cache-writer".into())
        .spawn(move || writer_loop(dir, rx, pending, writes))
        .map_err(|source| Error::Io {
            context: "starting the cache writer thread".into(),
            source,
        })?;
    Ok((tx, handle))
}

fn writer_loop(
    dir: PathBuf,
    rx: mpsc::Receiver<Job>,
    pending: Arc<Pending>,
    writes: Arc<AtomicU64>,
) {
    for job in rx {
        let size = job.size();
        let Job::Write {
            key,
            preimage,
            record,
            blobs,
            repair,
        } = job;
        let preimage = serde_json::from_slice(&preimage).unwrap_or_default();
        if let Err(e) = write_entry(&dir, &key, preimage, &record, &blobs, repair) {
            // Cacache writes are atomic, so nothing half-written is ever read; but the result
            // is not saved, and whoever waits for the writer must hear of it
            // (`Cache::flush`, a sheet's run report), not only a log.
            let error = chain(&e);
            tracing::warn!(key = %key.to_hex(), error, "cache write failed");
            pending.failed(key, error);
        } else {
            writes.fetch_add(1, Ordering::Relaxed);
            pending.written(&key);
        }
        pending.done(&key, size);
    }
}

/// An error with its causes, `outer: inner` (a cacache I/O error's display is only its
/// context; the OS error, "No space left on device", is its source).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl Cache {
    /// Queues a write for the writer thread, first waiting while the backlog is full.
    pub(super) fn queue(&self, job: Job) {
        let size = job.size();
        let Job::Write { key, .. } = &job;
        let key = *key;
        if self.0.pending.admit(key, size) {
            self.0
                .counters
                .backlog_waits
                .fetch_add(1, Ordering::Relaxed);
        }
        let sent = match self.0.jobs.lock().unwrap().as_ref() {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        };
        if !sent {
            self.0
                .counters
                .dropped_writes
                .fetch_add(1, Ordering::Relaxed);
            self.0
                .pending
                .failed(key, "the cache was closing".to_string());
            self.0.pending.done(&key, size);
        }
    }

    /// Blocks until every queued write is on disk (or has failed), and returns the results
    /// that are not on disk because their last write failed (a full disk, say): every one
    /// since the cache was opened that was not written since, ordered by key. Empty when
    /// everything was saved. The same failures are counted in
    /// [`CacheCounters::write_failures`](super::CacheCounters::write_failures).
    pub fn flush(&self) -> Vec<WriteFailure> {
        self.0.pending.wait_idle();
        self.0.pending.failures_now()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop after the queued writes.
        self.jobs.lock().unwrap().take();
        if let Some(handle) = self.writer.lock().unwrap().take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::preimage;
    use crate::value::media::Image;
    use crate::value::{PortType, Value};

    #[test]
    fn a_backlog_past_its_bound_waits_for_the_writer_and_drops_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        // 24 results of 4 MiB each: 96 MiB, past the 64 MiB bound while the writer works.
        let big = 4 * 1024 * 1024;
        for i in 0..24u8 {
            let image = Image::new(vec![i; big], "image/png");
            let values: Arc<[Value]> = vec![Value::new(image).unwrap()].into();
            cache.store(preimage(i).key(), &preimage(i), values, true);
            let backlog = cache.0.pending.backlog.lock().unwrap();
            assert!(backlog.bytes <= WRITE_BACKLOG_BYTES, "{}", backlog.bytes);
        }
        cache.flush();
        let counters = cache.counters();
        assert_eq!(counters.writes, 24);
        assert_eq!(counters.dropped_writes, 0);
        let fresh = Cache::open(dir.path()).unwrap();
        for i in 0..24u8 {
            assert!(fresh
                .lookup(&preimage(i).key(), &[PortType::of::<Image>()], false)
                .is_some());
        }
    }

    #[test]
    fn a_failed_write_is_counted_and_returned_by_flush_until_the_key_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        // A file where the content directory goes: every content write fails.
        std::fs::write(dir.path().join("content-v2"), b"").unwrap();
        let image = Image::new(vec![1u8; 1000], "image/png");
        let values: Arc<[Value]> = vec![Value::new(image).unwrap()].into();
        let key = preimage(1).key();
        cache.store(key, &preimage(1), values.clone(), true);
        let failures = cache.flush();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].key, key);
        assert!(!failures[0].error.is_empty());
        assert_eq!(cache.write_failure(&key), Some(failures[0].error.clone()));
        let counters = cache.counters();
        assert_eq!((counters.writes, counters.write_failures), (0, 1));
        // Once the disk takes it, the failure is gone (and stays counted).
        std::fs::remove_file(dir.path().join("content-v2")).unwrap();
        cache.store(key, &preimage(1), values, true);
        assert_eq!(cache.flush(), Vec::new());
        let counters = cache.counters();
        assert_eq!((counters.writes, counters.write_failures), (1, 1));
    }
}
