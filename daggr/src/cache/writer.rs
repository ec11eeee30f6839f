//! The write-behind writer: one background thread takes results off a queue and writes
//! them to the store, so persisting does not hold execution up. The queue is bounded by
//! bytes ([`WRITE_BACKLOG_BYTES`]); [`Cache::flush`] waits until it is empty.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::store::write_entry;
use super::{Cache, CacheKey, Inner};
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

/// Writes queued and not yet on disk: how many, and their bytes.
pub(super) struct Pending {
    backlog: Mutex<Backlog>,
    /// Signalled whenever a write finishes.
    progress: Condvar,
}

#[derive(Default)]
struct Backlog {
    jobs: usize,
    bytes: usize,
}

impl Pending {
    pub(super) fn new() -> Self {
        Pending {
            backlog: Mutex::new(Backlog::default()),
            progress: Condvar::new(),
        }
    }

    /// Counts a write of `size` bytes in, first waiting while the backlog is over its bound
    /// (a single job larger than the bound still goes, alone). Returns whether it waited.
    fn admit(&self, size: usize) -> bool {
        let mut backlog = self.backlog.lock().unwrap();
        let mut waited = false;
        while backlog.jobs > 0 && backlog.bytes + size > WRITE_BACKLOG_BYTES {
            waited = true;
            backlog = self.progress.wait(backlog).unwrap();
        }
        backlog.jobs += 1;
        backlog.bytes += size;
        waited
    }

    fn done(&self, size: usize) {
        let mut backlog = self.backlog.lock().unwrap();
        backlog.jobs -= 1;
        backlog.bytes -= size;
        self.progress.notify_all();
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
            // A failed write only costs a recomputation later; cacache writes are atomic, so
            // nothing half-written is ever read.
            tracing::warn!(key = %key.to_hex(), error = %e, "cache write failed");
        } else {
            writes.fetch_add(1, Ordering::Relaxed);
        }
        pending.done(size);
    }
}

impl Cache {
    /// Queues a write for the writer thread, first waiting while the backlog is full.
    pub(super) fn queue(&self, job: Job) {
        let size = job.size();
        if self.0.pending.admit(size) {
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
            self.0.pending.done(size);
        }
    }

    /// Blocks until every queued write is on disk.
    pub fn flush(&self) {
        self.0.pending.wait_idle();
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
}
