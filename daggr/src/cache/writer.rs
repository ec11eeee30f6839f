//! The write-behind writer: one background thread takes results off a queue and writes
//! them to the store, so persisting does not hold execution up. The queue is bounded by
//! bytes ([`WRITE_BACKLOG_BYTES`]).
//!
//! Results are written in batches: the writer collects what arrives within [`LINGER`] of
//! the first queued result (or up to [`MAX_BATCH_BYTES`], or until a flush asks), then
//! writes each result's new media blobs, packs the batch's records into one cacache
//! content file and appends one batch to the record log (`pack.rs`). Nothing is fsynced
//! per result: [`Cache::flush`] writes what is collected and fsyncs every file written
//! since the last flush (packs, blobs, the log, and the directories holding them), so a
//! flush is durable and costs a few fsyncs whatever the number of results.
//!
//! [`Cache::flush`] returns the writes that failed (a full disk, say): a failed write is
//! counted ([`CacheCounters::write_failures`](super::CacheCounters::write_failures)) and
//! remembered by key until the key is written, never only logged.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::pack::{content_path, sync_dir, Pack, PackEntry, RecordIndex};
use super::{Cache, CacheKey, Inner, WriteFailure};
use crate::error::error_chain as chain;
use crate::value::media::Blob;
use crate::Error;

/// How many bytes of results may wait for the disk writer before a store waits for it.
/// Results are never dropped: past this bound the executor slows to the disk's pace.
pub const WRITE_BACKLOG_BYTES: usize = 64 * 1024 * 1024;

/// How long the writer collects results after the first of a batch before writing them
/// (unless a flush asks sooner): a run of trivial nodes becomes one pack and one log
/// append instead of one per result.
pub(super) const LINGER: Duration = Duration::from_millis(2);

/// A batch is written once its results and media reach this many bytes.
pub(super) const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// What the writer thread is sent.
pub(super) enum Msg {
    Job(Job),
    /// Write what is collected, fsync what was written, then count a sync done.
    Sync,
}

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
    /// Flushes asked for, and syncs the writer has done (one per flush, in order).
    syncs_asked: u64,
    syncs_done: u64,
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
        // A burst of cheap results can queue a key per node of a big graph: once written,
        // that table is given back rather than kept at its largest for the process's life.
        if backlog.keys.is_empty() && backlog.keys.capacity() > 1024 {
            backlog.keys = HashMap::new();
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

    /// A ticket for a flush: its sync is done once `syncs_done` reaches it.
    fn ask_sync(&self) -> u64 {
        let mut backlog = self.backlog.lock().unwrap();
        backlog.syncs_asked += 1;
        backlog.syncs_asked
    }

    fn synced(&self) {
        self.backlog.lock().unwrap().syncs_done += 1;
        self.progress.notify_all();
    }

    fn wait_sync(&self, ticket: u64) {
        let mut backlog = self.backlog.lock().unwrap();
        while backlog.syncs_done < ticket {
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
/// every clone) is dropped, after writing and fsyncing what was queued.
pub(super) fn spawn(
    dir: PathBuf,
    records: Arc<Mutex<RecordIndex>>,
    pending: Arc<Pending>,
    writes: Arc<AtomicU64>,
) -> Result<(mpsc::Sender<Msg>, JoinHandle<()>), Error> {
    // Bounded by bytes, not by jobs: when results arrive faster than the disk takes them
    // (only trivially cheap nodes can do that), a store waits for the writer past
    // WRITE_BACKLOG_BYTES instead of dropping a result the next run would recompute.
    let (tx, rx) = mpsc::channel::<Msg>();
    let writer = Writer {
        dir,
        records,
        pending,
        writes,
        batch: Vec::new(),
        batch_bytes: 0,
        unsynced: Vec::new(),
        log_created: false,
        log_dirty: false,
        known_dirs: HashSet::new(),
    };
    let handle = std::thread::Builder::new()
        .name("daggr-cache-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|source| Error::Io {
            context: "starting the cache writer thread".into(),
            source,
        })?;
    Ok((tx, handle))
}

struct Writer {
    dir: PathBuf,
    records: Arc<Mutex<RecordIndex>>,
    pending: Arc<Pending>,
    writes: Arc<AtomicU64>,
    /// Jobs collected and not yet written, and their size.
    batch: Vec<(Job, usize)>,
    batch_bytes: usize,
    /// Content files written since the last sync.
    unsynced: Vec<PathBuf>,
    /// Whether the record log was created since the last sync (its directory needs one).
    log_created: bool,
    /// Whether the record log was appended to since the last sync.
    log_dirty: bool,
    /// Directories whose own entry in their parent was made durable by this writer.
    known_dirs: HashSet<PathBuf>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut deadline: Option<Instant> = None;
        loop {
            let msg = match deadline {
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match msg {
                Ok(Msg::Job(job)) => {
                    let size = job.size();
                    self.batch_bytes += size;
                    self.batch.push((job, size));
                    if self.batch_bytes >= MAX_BATCH_BYTES {
                        self.write_batch();
                        deadline = None;
                    } else if deadline.is_none() {
                        deadline = Some(Instant::now() + LINGER);
                    }
                }
                Ok(Msg::Sync) => {
                    self.write_batch();
                    self.sync();
                    self.pending.synced();
                    deadline = None;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.write_batch();
                    deadline = None;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.write_batch();
                    self.sync();
                    return;
                }
            }
        }
    }

    /// Writes the collected jobs: media blobs per job, then one pack of their records and
    /// one log append.
    fn write_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        // Per job: Ok once its blobs are written, or why not.
        let mut outcome: Vec<Result<(), String>> = Vec::with_capacity(batch.len());
        for (job, _) in &batch {
            let Job::Write { blobs, repair, .. } = job;
            outcome.push(match write_blobs(&self.dir, blobs, *repair) {
                Ok(paths) => {
                    self.unsynced.extend(paths);
                    Ok(())
                }
                Err(e) => Err(chain(&e)),
            });
        }
        // The records to pack: each key once, from its last job in the batch (a replaced
        // entry, `Cache::store_replacing`, follows the one it replaces), skipping those
        // already on disk unless one of its jobs repairs (or replaces) them.
        let mut seen = HashMap::new(); // key -> (index of its last job, whether one repairs)
        for (i, ((job, _), ok)) in batch.iter().zip(&outcome).enumerate() {
            let Job::Write { key, repair, .. } = job;
            if ok.is_ok() {
                let entry = seen.entry(*key).or_insert((i, false));
                *entry = (i, entry.1 || *repair);
            }
        }
        let pack = {
            let mut records = self.records.lock().unwrap();
            Pack::build(batch.iter().enumerate().filter_map(|(i, (job, _))| {
                let Job::Write {
                    key,
                    preimage,
                    record,
                    ..
                } = job;
                let wanted = seen
                    .get(key)
                    .is_some_and(|&(last, repair)| last == i && (repair || !records.known(key)));
                wanted.then_some(PackEntry {
                    key: *key,
                    preimage,
                    record,
                })
            }))
        };
        if !pack.is_empty() {
            if let Err(error) = self.write_pack(&pack) {
                for (ok, (job, _)) in outcome.iter_mut().zip(&batch) {
                    let Job::Write { key, .. } = job;
                    if ok.is_ok() && seen.contains_key(key) {
                        *ok = Err(error.clone());
                    }
                }
            }
        }
        for ((job, size), ok) in batch.into_iter().zip(outcome) {
            let Job::Write { key, .. } = job;
            match ok {
                Ok(()) => {
                    self.writes.fetch_add(1, Ordering::Relaxed);
                    self.pending.written(&key);
                }
                Err(error) => {
                    // Nothing half-written is ever read (content is renamed into place, log
                    // batches are hashed); but the result is not saved, and whoever waits
                    // for the writer must hear of it (`Cache::flush`, a sheet's run
                    // report), not only a log.
                    tracing::warn!(key = %key.to_hex(), error, "cache write failed");
                    self.pending.failed(key, error);
                }
            }
            self.pending.done(&key, size);
        }
    }

    fn write_pack(&mut self, pack: &Pack) -> Result<(), String> {
        let sri = cacache::write_hash_sync(&self.dir, &pack.bytes).map_err(|e| chain(&e))?;
        self.unsynced.push(content_path(&self.dir, &sri));
        let created = self
            .records
            .lock()
            .unwrap()
            .append(sri, pack)
            .map_err(|e| format!("appending to the cache's record log: {e}"))?;
        self.log_created |= created;
        self.log_dirty = true;
        Ok(())
    }

    /// fsyncs the files written since the last sync, the directories holding them (and,
    /// the first time this writer sees a directory, its parents up to the cache directory,
    /// since cacache may have just created it), and the record log. The log is fsynced on
    /// a second thread meanwhile, so the filesystem can commit both in one journal commit
    /// (a log entry durable before its pack is a miss when read, never a wrong result).
    fn sync(&mut self) {
        let files = std::mem::take(&mut self.unsynced);
        if files.is_empty() && !std::mem::take(&mut self.log_dirty) {
            return;
        }
        self.log_dirty = false;
        let mut dirs: Vec<PathBuf> = Vec::new();
        for path in &files {
            let mut child = path.as_path();
            while let Some(parent) = child.parent() {
                if !dirs.iter().any(|d| d == parent) {
                    dirs.push(parent.to_path_buf());
                }
                if parent == self.dir || !self.known_dirs.insert(parent.to_path_buf()) {
                    break;
                }
                child = parent;
            }
        }
        let log = self.records.lock().unwrap().log_path().to_path_buf();
        if std::mem::take(&mut self.log_created) && !dirs.iter().any(|d| d == &self.dir) {
            dirs.push(self.dir.clone());
        }
        let sync_log = || match std::fs::File::open(&log).and_then(|f| f.sync_data()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(log = %log.display(), error = %e, "fsync of the cache's record log failed");
            }
            _ => {}
        };
        let sync_rest = || {
            for path in &files {
                if let Err(e) = std::fs::File::open(path).and_then(|f| f.sync_all()) {
                    tracing::warn!(path = %path.display(), error = %e, "fsync of cache content failed");
                }
            }
            for dir in &dirs {
                if let Err(e) = sync_dir(dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "fsync of a cache directory failed");
                }
            }
        };
        if files.is_empty() {
            sync_log();
            sync_rest();
        } else {
            std::thread::scope(|s| {
                s.spawn(sync_log);
                sync_rest();
            });
        }
    }
}

/// Writes the media blobs of one result that are not on disk yet (all of them if
/// `repair`), returning the paths written (to be fsynced at the next flush).
fn write_blobs(dir: &Path, blobs: &[Blob], repair: bool) -> Result<Vec<PathBuf>, cacache::Error> {
    let mut written = Vec::new();
    for blob in blobs {
        if repair || !cacache::exists_sync(dir, &blob.integrity) {
            let sri = cacache::write_hash_sync(dir, &blob.bytes)?;
            written.push(content_path(dir, &sri));
        }
    }
    Ok(written)
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
            Some(tx) => tx.send(Msg::Job(job)).is_ok(),
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

    /// Blocks until every write queued before the call is on disk (or has failed) and
    /// fsynced, so it survives a power loss, and returns the results that are not on disk
    /// because their last write failed (a full disk, say): every one since the cache was
    /// opened that was not written since, ordered by key. Empty when everything was saved.
    /// The same failures are counted in
    /// [`CacheCounters::write_failures`](super::CacheCounters::write_failures).
    ///
    /// With a shared store, it also waits for the uploads queued before the call (after
    /// retrying those that failed before); the ones that failed are listed by
    /// [`Cache::shared_upload_failures`], not here: their results are on the local disk.
    pub fn flush(&self) -> Vec<WriteFailure> {
        if let Some(shared) = &self.0.shared {
            shared.flush();
        }
        let ticket = self.0.pending.ask_sync();
        let sent = match self.0.jobs.lock().unwrap().as_ref() {
            Some(tx) => tx.send(Msg::Sync).is_ok(),
            None => false,
        };
        if sent {
            self.0.pending.wait_sync(ticket);
        } else {
            self.0.pending.wait_idle();
        }
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
