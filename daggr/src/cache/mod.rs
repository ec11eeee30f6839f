//! The content-addressed cache: node results and media blobs in cacache, keyed
//! by what the node computes from, with an in-memory memo in front.
//!
//! Keys are content-derived and immutable, so each key is written once. Writes go through
//! one background thread, so persisting does not hold execution up unless more than
//! [`WRITE_BACKLOG_BYTES`] wait for the disk (then a store waits; no result is dropped);
//! [`Cache::flush`] waits for them and makes them durable, and dropping the last handle
//! to a cache flushes it.
//!
//! # Layout on disk
//!
//! - Media blobs: one cacache content file each (`content-v2/`), by integrity, as before.
//! - Node results (small JSON records with their key preimage): packed per write batch
//!   into one cacache content file, and indexed by the record log `records-v1.log`, an
//!   append-only file of hashed batches (key → pack, offset, length, BLAKE3 of the bytes).
//!   A batch of trivial results costs one content file and one append (~0.3 KB per
//!   result) instead of a cacache index bucket file and a content file per result
//!   (~12 KB). Every read checks the record's BLAKE3: a damaged record is a miss, counted
//!   in [`CacheCounters::integrity_failures`], and rewritten by the next run.
//! - Results written by earlier versions (one cacache index entry, `index-v5/`, and content
//!   file per result) are still read, explained and collected; new results never go there.
//!
//! # What survives a crash
//!
//! - **SIGKILL** (or a panic that aborts): every result the writer has written survives,
//!   flushed or not (it is in the page cache). Lost: results still in the queue or in the
//!   batch being collected (the writer collects a batch for 2 ms after its first result); the
//!   next run computes them again. A log append cut short is skipped when read.
//! - **Power loss**: everything before the last completed [`Cache::flush`] (or the last
//!   handle's drop) survives: a flush fsyncs the packs, blobs and log written since the
//!   previous one, and the directories holding them. Results written after it may be
//!   lost or torn; torn log batches and damaged packs fail their hash and are misses.
//!   Nothing wrong is ever served.
//!
//! The parts, one file each: the key ([`CacheKey`], [`KeyPreimage`]: `key.rs`), the
//! store on disk (`store.rs`, the packs and record log in `pack.rs`), the in-memory memo
//! (`memo.rs`), the write-behind writer (`writer.rs`) and garbage collection (`gc.rs`);
//! [`Cache`] ties them together here.

#[cfg(feature = "object-store")]
mod bucket;
mod gc;
mod key;
mod memo;
mod pack;
mod push;
mod shared;
mod store;
mod writer;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use serde::Serialize;

#[cfg(feature = "object-store")]
pub use self::bucket::ObjectStoreShared;
pub use self::gc::{collect_blob_refs, GcReport};
pub use self::key::{CacheKey, KeyPreimage, KEY_SCHEMA_VERSION};
pub use self::memo::DEFAULT_MEMO_BYTES;
pub use self::push::PushReport;
pub use self::shared::{SharedStore, UploadFailure};
pub use self::store::CacheStats;
pub use self::writer::WRITE_BACKLOG_BYTES;
pub use crate::value::media::parse_integrity;

use self::memo::Memo;
use self::pack::RecordIndex;
use self::shared::{encode_record_object, record_name, SharedTier, Upload};
use self::store::{encode_record, names_a_blob};
use self::writer::{Job, Msg, Pending};
use crate::value::{PortType, Value};
use crate::Error;

/// Where a cached result came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSource {
    /// This process's in-memory memo.
    Memory,
    /// The on-disk content-addressed store.
    Disk,
    /// The workspace's (or sheet's) own current result, whose key still matches.
    Workspace,
    /// The shared store behind the cache directory (object storage): computed by another
    /// process or machine.
    Shared,
}

/// Environment variable that overrides the default cache directory.
pub const CACHE_DIR_ENV: &str = "DAGGR_CACHE_DIR";

/// Environment variable naming a shared store behind the default cache
/// ([`Cache::open_default`]): `s3://bucket/prefix`, `gs://bucket/prefix`,
/// `az://container/prefix` or `file:///path` (needs the `object-store` feature; see
/// `ObjectStoreShared::from_url`). S3
/// credentials, region and endpoint come from the usual `AWS_*` variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, and
/// `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint), Google Cloud Storage's from the
/// `GOOGLE_*` ones, Azure's from the `AZURE_*` ones.
pub const CACHE_URL_ENV: &str = "DAGGR_CACHE_URL";

/// Counters since the cache was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheCounters {
    /// Hits served from memory.
    pub memory_hits: u64,
    /// Hits served from disk.
    pub disk_hits: u64,
    /// Misses.
    pub misses: u64,
    /// Results written to disk.
    pub writes: u64,
    /// Entries whose bytes failed the integrity check (treated as misses and rewritten).
    pub integrity_failures: u64,
    /// Stores that waited for the disk writer because its backlog was full
    /// ([`WRITE_BACKLOG_BYTES`]).
    pub backlog_waits: u64,
    /// Results not written because the cache was closing (they stay in memory).
    pub dropped_writes: u64,
    /// Writes that failed (a full disk, a read-only directory) or were dropped because the
    /// cache was closing: those results are not on disk. [`Cache::flush`] lists them.
    pub write_failures: u64,
    /// Hits served from the shared store (then kept in the local directory).
    pub shared_hits: u64,
    /// Reads of the shared store that failed (the store unreachable, say): each a miss.
    pub shared_read_failures: u64,
    /// Results and media uploaded to the shared store.
    pub shared_uploads: u64,
    /// Upload attempts that failed (retried at each flush; see
    /// [`Cache::shared_upload_failures`]).
    pub shared_upload_failures: u64,
}

/// A result the cache could not put on disk (see [`Cache::flush`]). It stays in memory,
/// and a later run that finds it missing computes it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteFailure {
    /// The result's key.
    pub key: CacheKey,
    /// Why it was not written, with the cause chain (e.g. `No space left on device`).
    pub error: String,
}

struct Inner {
    dir: PathBuf,
    memo: Mutex<Memo>,
    /// The record log's index (shared with the writer, which appends to it).
    records: Arc<Mutex<RecordIndex>>,
    /// Whether the directory holds results of the legacy layout (`index-v5/`) to look in.
    legacy: bool,
    /// Keys whose on-disk bytes failed verification: their rewrite must replace the content.
    damaged: Mutex<HashSet<CacheKey>>,
    jobs: Mutex<Option<mpsc::Sender<Msg>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    pending: Arc<Pending>,
    counters: Counters,
    /// The shared store behind the directory, if any (dropped after the writer stopped).
    shared: Option<SharedTier>,
    /// The directory of a [`Cache::temporary`], removed after the writer has stopped
    /// (fields drop after `Drop::drop` has joined it).
    _temporary: Option<tempfile::TempDir>,
}

#[derive(Default)]
struct Counters {
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
    writes: Arc<AtomicU64>,
    integrity_failures: AtomicU64,
    backlog_waits: AtomicU64,
    dropped_writes: AtomicU64,
}

/// A handle to a content-addressed cache directory. Cheap to clone.
#[derive(Clone)]
pub struct Cache(Arc<Inner>);

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache").field("dir", &self.0.dir).finish()
    }
}

impl Cache {
    /// Opens (creating if needed) the cache at `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Cache, Error> {
        Cache::open_with(dir.into(), None)
    }

    /// Opens the cache at `dir` in front of a shared store: results are looked for in `dir`,
    /// then in the store (a hit there is verified and kept in `dir`), and results computed
    /// here go to both. See [`SharedStore`] for what is guaranteed.
    pub fn open_shared(
        dir: impl Into<PathBuf>,
        store: Arc<dyn SharedStore>,
    ) -> Result<Cache, Error> {
        Cache::open_with(dir.into(), Some(store))
    }

    /// Opens the cache at `dir` in front of the shared store at `url` (`s3://bucket/prefix`,
    /// `gs://…`, `az://…`, `file:///path`; see [`CACHE_URL_ENV`] for their configuration).
    /// Needs the
    /// `object-store` feature.
    pub fn open_url(dir: impl Into<PathBuf>, url: &str) -> Result<Cache, Error> {
        #[cfg(feature = "object-store")]
        {
            let store = ObjectStoreShared::from_url(url)?;
            Cache::open_shared(dir, Arc::new(store))
        }
        #[cfg(not(feature = "object-store"))]
        {
            let _ = (dir, url);
            Err(Error::FeatureDisabled {
                feature: "object-store",
                what: "a shared cache store (Cache::open_url, DAGGR_CACHE_URL)",
            })
        }
    }

    fn open_with(dir: PathBuf, shared: Option<Arc<dyn SharedStore>>) -> Result<Cache, Error> {
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            context: format!("creating cache directory {}", dir.display()),
            source,
        })?;
        let pending = Arc::new(Pending::new());
        let counters = Counters::default();
        let records = Arc::new(Mutex::new(RecordIndex::new(&dir)));
        let (tx, writer) = writer::spawn(
            dir.clone(),
            records.clone(),
            pending.clone(),
            counters.writes.clone(),
        )?;
        Ok(Cache(Arc::new(Inner {
            legacy: dir.join("index-v5").is_dir(),
            dir,
            memo: Mutex::new(Memo::new(DEFAULT_MEMO_BYTES)),
            records,
            damaged: Mutex::new(HashSet::new()),
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            pending,
            counters,
            shared: shared.map(SharedTier::start).transpose()?,
            _temporary: None,
        })))
    }

    /// A cache in a new temporary directory, deleted when the last handle is dropped: for
    /// tests and one-off runs that must neither reuse nor leave results.
    ///
    /// ```
    /// # fn main() -> Result<(), daggr::Error> {
    /// let cache = daggr::Cache::temporary()?;
    /// let dir = cache.dir().to_path_buf();
    /// assert!(dir.exists());
    /// drop(cache);
    /// assert!(!dir.exists());
    /// # Ok(()) }
    /// ```
    pub fn temporary() -> Result<Cache, Error> {
        let temp = tempfile::Builder::new()
            .prefix("daggr-cache-")
            .tempdir()
            .map_err(|source| Error::Io {
                context: "creating a temporary cache directory".into(),
                source,
            })?;
        let mut cache = Cache::open(temp.path())?;
        Arc::get_mut(&mut cache.0)
            .expect("a cache just opened has one handle")
            ._temporary = Some(temp);
        Ok(cache)
    }

    /// Opens the default cache: `$DAGGR_CACHE_DIR` if set, else `.daggr/cache` in the
    /// project directory (the nearest ancestor of the working directory holding a
    /// `.daggr` directory or a `Cargo.toml`, else the working directory); in front of the
    /// shared store `$DAGGR_CACHE_URL` names, if set ([`CACHE_URL_ENV`]). So the same code
    /// uses a local cache on a laptop and a team's bucket where the variable is set.
    pub fn open_default() -> Result<Cache, Error> {
        match std::env::var(CACHE_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Cache::open_url(default_dir(), url.trim()),
            _ => Cache::open(default_dir()),
        }
    }

    /// The shared store's address, if the cache has one.
    pub fn shared_location(&self) -> Option<String> {
        self.0.shared.as_ref().map(|s| s.store.location())
    }

    /// The uploads to the shared store that failed and were not done since (each is retried
    /// at every [`Cache::flush`]; call one first to know about every upload queued before).
    /// Their results are safe in the local directory. Empty without a shared store.
    pub fn shared_upload_failures(&self) -> Vec<UploadFailure> {
        self.0
            .shared
            .as_ref()
            .map(SharedTier::failures)
            .unwrap_or_default()
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }
    /// Looks a result up: memory first, then disk. A damaged or undecodable entry is a miss.
    pub(crate) fn lookup(
        &self,
        key: &CacheKey,
        types: &[PortType],
        memory_only: bool,
    ) -> Option<(Arc<[Value]>, CacheSource)> {
        let memoized = self.0.memo.lock().unwrap().get(key);
        if let Some(values) = memoized {
            if self.blobs_present(key, &values) {
                self.0.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
                return Some((values, CacheSource::Memory));
            }
            // Its media are gone from the disk (the directory was deleted, a GC elsewhere):
            // serving it would leave whoever reads the blobs by integrity (the inspector's
            // previews, a sheet) with broken references. A miss, so the node runs again and
            // its write puts them back.
            self.0.memo.lock().unwrap().remove(key);
        }
        if memory_only {
            return None;
        }
        let found = self.read_disk(key, types);
        self.count_disk_lookup(key, found)
    }

    /// Whether the media blobs `values` name are on disk, or on their way there (a write of
    /// `key` is queued): a result held in memory (the memo, a workspace's current result)
    /// whose blobs vanished from the directory must not be served as cached. Values
    /// without media cost nothing; media cost a queue look-up and a `stat` per blob.
    pub(crate) fn blobs_present(&self, key: &CacheKey, values: &[Value]) -> bool {
        let mut blobs = values.iter().flat_map(|v| v.blobs().iter()).peekable();
        if blobs.peek().is_none() || self.0.pending.in_flight(key) {
            return true;
        }
        blobs.all(|b| cacache::exists_sync(&self.0.dir, &b.integrity))
    }

    /// Why the last write of `key` failed, if it did and it was not written since (call
    /// after [`Cache::flush`] to know about every write queued before).
    // Asked by sheets, which wait for the writer; a plain run does not.
    #[cfg_attr(not(feature = "sheets"), allow(dead_code))]
    pub(crate) fn write_failure(&self, key: &CacheKey) -> Option<String> {
        self.0.pending.failure(key)
    }

    /// Counts a miss that was decided without looking (policy `AlwaysRecompute`).
    pub(crate) fn count_miss(&self) {
        self.0.counters.misses.fetch_add(1, Ordering::Relaxed);
    }

    // Synchronous on purpose: a look-up is a stat and a small read, cheaper inline than a
    // hop to the blocking pool, and it keeps the per-node overhead in microseconds.
    /// Like [`Cache::lookup`], for the executor's node tasks: a record that names media
    /// blobs is decoded on the blocking pool, since reading and verifying their bytes can
    /// take milliseconds and the run's other nodes are polled on the same task meanwhile.
    /// Misses and records of plain values stay inline (a thread hop would cost more).
    pub(crate) async fn lookup_async(
        &self,
        key: &CacheKey,
        types: &[PortType],
    ) -> Option<(Arc<[Value]>, CacheSource)> {
        if let Some(hit) = self.lookup(key, types, true) {
            return Some(hit);
        }
        let found = match self.read_local(key).map(|bytes| (bytes, CacheSource::Disk)) {
            // A local miss asks the shared store: network I/O, on the blocking pool.
            None if self.0.shared.is_some() => {
                let (cache, key, types) = (self.clone(), *key, types.to_vec());
                tokio::task::spawn_blocking(move || {
                    let bytes = cache.read_shared(&key)?;
                    let values = cache.decode_record(&key, &bytes, &types)?;
                    Some((values, CacheSource::Shared))
                })
                .await
                .unwrap_or(None)
            }
            None => None,
            Some((bytes, source)) if names_a_blob(&bytes) => {
                let (cache, key, types) = (self.clone(), *key, types.to_vec());
                tokio::task::spawn_blocking(move || {
                    cache
                        .decode_record(&key, &bytes, &types)
                        .map(|values| (values, source))
                })
                .await
                .unwrap_or(None)
            }
            Some((bytes, source)) => self
                .decode_record(key, &bytes, types)
                .map(|values| (values, source)),
        };
        self.count_disk_lookup(key, found)
    }

    fn count_disk_lookup(
        &self,
        key: &CacheKey,
        found: Option<(Arc<[Value]>, CacheSource)>,
    ) -> Option<(Arc<[Value]>, CacheSource)> {
        match found {
            Some((values, source)) => {
                if source == CacheSource::Shared {
                    if let Some(shared) = &self.0.shared {
                        shared.counters().hits.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    self.0.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
                }
                self.0.memo.lock().unwrap().insert(*key, values.clone());
                Some((values, source))
            }
            None => {
                self.0.counters.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Like [`Cache::store`] with `persist`, but the entry already under `key` on disk (and
    /// in the shared store) is replaced, not kept: a part computed again on request (a
    /// map's item rerun) may give another value under the same key, and that one is kept.
    pub(crate) fn store_replacing(
        &self,
        key: CacheKey,
        preimage: &KeyPreimage,
        values: Arc<[Value]>,
    ) {
        // The writer rewrites a key it is told to repair (a later log batch wins).
        self.0.damaged.lock().unwrap().insert(key);
        self.store(key, preimage, values, true);
    }

    /// Remembers a result in memory and, if `persist`, queues it for the disk.
    pub(crate) fn store(
        &self,
        key: CacheKey,
        preimage: &KeyPreimage,
        values: Arc<[Value]>,
        persist: bool,
    ) {
        self.0.memo.lock().unwrap().insert(key, values.clone());
        if !persist {
            return;
        }
        let repair = self.0.damaged.lock().unwrap().remove(&key);
        let (record, blobs) = encode_record(&values);
        let preimage = serde_json::to_vec(preimage).unwrap_or_default();
        if let Some(shared) = &self.0.shared {
            shared.upload(Upload {
                name: record_name(&key),
                object: Some(encode_record_object(&preimage, &record)),
                blobs: blobs.clone(),
                repair,
            });
        }
        self.queue(Job::Write {
            key,
            preimage,
            record,
            blobs,
            repair,
        });
    }

    /// Hit, miss and write counters since the cache was opened.
    pub fn counters(&self) -> CacheCounters {
        let c = &self.0.counters;
        CacheCounters {
            memory_hits: c.memory_hits.load(Ordering::Relaxed),
            disk_hits: c.disk_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            integrity_failures: c.integrity_failures.load(Ordering::Relaxed),
            backlog_waits: c.backlog_waits.load(Ordering::Relaxed),
            dropped_writes: c.dropped_writes.load(Ordering::Relaxed),
            write_failures: self.0.pending.failures.load(Ordering::Relaxed),
            ..CacheCounters::default()
        }
        .with_shared(self.0.shared.as_ref())
    }
}

impl CacheCounters {
    fn with_shared(mut self, shared: Option<&SharedTier>) -> Self {
        if let Some(shared) = shared {
            let c = shared.counters();
            self.shared_hits = c.hits.load(Ordering::Relaxed);
            self.shared_read_failures = c.read_failures.load(Ordering::Relaxed);
            self.shared_uploads = c.uploads.load(Ordering::Relaxed);
            self.shared_upload_failures = c.upload_failures.load(Ordering::Relaxed);
        }
        self
    }
}

/// The default cache directory (see [`Cache::open_default`]).
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let project = cwd
        .ancestors()
        .find(|d| d.join(".daggr").is_dir() || d.join("Cargo.toml").is_file())
        .unwrap_or(&cwd);
    project.join(".daggr").join("cache")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::value::media::Image;
    use crate::value::ContentHash;
    use std::collections::HashSet;

    /// A preimage that differs by `input` only (the other files' tests share it).
    pub(super) fn preimage(input: u8) -> KeyPreimage {
        KeyPreimage {
            schema: KEY_SCHEMA_VERSION,
            identity: "fn:test".into(),
            code: "c".into(),
            version: None,
            params: serde_json::json!({"b": 1, "a": 2}),
            inputs: vec![("x".into(), ContentHash::of(&[input]))],
            outputs: vec!["u32".into()],
        }
    }

    #[test]
    fn results_round_trip_through_disk_and_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = preimage(1).key();
        let image = Image::new(vec![9u8; 4096], "image/png");
        let values: Arc<[Value]> = vec![Value::new(image.clone()).unwrap()].into();
        cache.store(key, &preimage(1), values.clone(), true);
        cache.store(key, &preimage(1), values, true);
        cache.flush();
        assert_eq!(cache.counters().writes, 2, "both jobs ran");
        // A second handle has an empty memo, so this reads from disk.
        let fresh = Cache::open(dir.path()).unwrap();
        let (got, source) = fresh
            .lookup(&key, &[PortType::of::<Image>()], false)
            .unwrap();
        assert_eq!(source, CacheSource::Disk);
        assert_eq!(got[0].downcast_ref::<Image>().unwrap(), &image);
        // One record in the log, one pack and one blob; nothing in cacache's index.
        assert_eq!(fresh.0.records.lock().unwrap().keys(), vec![key]);
        assert!(!dir.path().join("index-v5").exists());
        let stats = fresh.stats().unwrap();
        assert_eq!((stats.entries, stats.content_files), (1, 2), "{stats:?}");
        assert_eq!(fresh.explain(&key), Some(preimage(1)));
    }

    #[tokio::test]
    async fn async_lookups_read_media_and_plain_records_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let image = Image::new(vec![7u8; 300_000], "image/png");
        let with_media: Arc<[Value]> = vec![Value::new(image.clone()).unwrap()].into();
        let plain: Arc<[Value]> = vec![Value::new(vec![3u8; 10]).unwrap()].into();
        cache.store(preimage(1).key(), &preimage(1), with_media, true);
        cache.store(preimage(2).key(), &preimage(2), plain, true);
        cache.flush();
        let fresh = Cache::open(dir.path()).unwrap();
        let (got, source) = fresh
            .lookup_async(&preimage(1).key(), &[PortType::of::<Image>()])
            .await
            .unwrap();
        assert_eq!(source, CacheSource::Disk);
        assert_eq!(got[0].downcast_ref::<Image>().unwrap(), &image);
        let (got, _) = fresh
            .lookup_async(&preimage(2).key(), &[PortType::of::<Vec<u8>>()])
            .await
            .unwrap();
        assert_eq!(got[0].downcast_ref::<Vec<u8>>().unwrap(), &vec![3u8; 10]);
        // Then from memory; and a key never stored is a miss.
        let (_, source) = fresh
            .lookup_async(&preimage(1).key(), &[PortType::of::<Image>()])
            .await
            .unwrap();
        assert_eq!(source, CacheSource::Memory);
        assert!(fresh
            .lookup_async(&preimage(3).key(), &[PortType::of::<Image>()])
            .await
            .is_none());
        let c = fresh.counters();
        assert_eq!((c.disk_hits, c.memory_hits, c.misses), (2, 1, 1));
    }

    #[test]
    fn a_memoized_result_whose_media_vanished_from_the_disk_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = preimage(1).key();
        let image = Image::new(vec![5u8; 2048], "image/png");
        let values: Arc<[Value]> = vec![Value::new(image).unwrap()].into();
        cache.store(key, &preimage(1), values.clone(), true);
        assert!(
            cache.blobs_present(&key, &values),
            "queued counts as present"
        );
        cache.flush();
        let types = [PortType::of::<Image>()];
        assert!(cache.lookup(&key, &types, true).is_some());
        std::fs::remove_dir_all(dir.path().join("content-v2")).unwrap();
        assert!(!cache.blobs_present(&key, &values));
        assert!(
            cache.lookup(&key, &types, true).is_none(),
            "not served from memory"
        );
        assert!(cache.lookup(&key, &types, false).is_none(), "nor from disk");
        // Plain values name no blobs: nothing to check.
        let plain: Arc<[Value]> = vec![Value::new(3u64).unwrap()].into();
        assert!(cache.blobs_present(&preimage(2).key(), &plain));
    }

    /// Writes a result as versions before the record log did: one cacache index entry
    /// (preimage as metadata) and content file per result.
    fn write_legacy(dir: &Path, input: u8, values: &[Value]) {
        let (record, blobs) = encode_record(values);
        for blob in &blobs {
            cacache::write_hash_sync(dir, &blob.bytes).unwrap();
        }
        let mut writer = cacache::WriteOpts::new()
            .metadata(serde_json::to_value(preimage(input)).unwrap())
            .size(record.len())
            .open_sync(dir, preimage(input).key().index_key())
            .unwrap();
        std::io::Write::write_all(&mut writer, &record).unwrap();
        writer.commit().unwrap();
    }

    #[test]
    fn results_of_the_legacy_layout_are_read_explained_and_collected() {
        let dir = tempfile::tempdir().unwrap();
        let image = Image::new(vec![4u8; 512], "image/png");
        write_legacy(dir.path(), 1, &[Value::new(image.clone()).unwrap()]);
        write_legacy(dir.path(), 2, &[Value::new(7u64).unwrap()]);
        let cache = Cache::open(dir.path()).unwrap();
        let (got, source) = cache
            .lookup(&preimage(1).key(), &[PortType::of::<Image>()], false)
            .unwrap();
        assert_eq!(source, CacheSource::Disk);
        assert_eq!(got[0].downcast_ref::<Image>().unwrap(), &image);
        assert!(cache.contains(&preimage(2).key()));
        assert_eq!(cache.explain(&preimage(2).key()), Some(preimage(2)));
        // A new result goes to the record log beside them.
        let values: Arc<[Value]> = vec![Value::new(9u64).unwrap()].into();
        cache.store(preimage(3).key(), &preimage(3), values, true);
        assert_eq!(cache.stats().unwrap().entries, 3);
        let live: HashSet<CacheKey> = [preimage(1).key(), preimage(3).key()].into();
        let report = cache.gc(&live, &HashSet::new()).unwrap();
        assert_eq!(report.removed_entries, 1);
        cache.clear_memory();
        let types = [PortType::of::<u64>()];
        assert!(cache.lookup(&preimage(2).key(), &types, false).is_none());
        assert!(cache.lookup(&preimage(3).key(), &types, false).is_some());
        assert!(cache
            .lookup(&preimage(1).key(), &[PortType::of::<Image>()], false)
            .is_some());
    }

    #[test]
    fn a_damaged_packed_record_is_a_miss_and_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = preimage(1).key();
        let values: Arc<[Value]> = vec![Value::new("precious".to_string()).unwrap()].into();
        cache.store(key, &preimage(1), values.clone(), true);
        assert_eq!(cache.flush(), Vec::new());
        for path in walk_files(&dir.path().join("content-v2")) {
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 2;
            bytes[last] ^= 0x20;
            std::fs::write(&path, bytes).unwrap();
        }
        let fresh = Cache::open(dir.path()).unwrap();
        let types = [PortType::of::<String>()];
        assert!(fresh.lookup(&key, &types, false).is_none());
        assert_eq!(fresh.counters().integrity_failures, 1);
        fresh.store(key, &preimage(1), values, true);
        assert_eq!(fresh.flush(), Vec::new());
        let again = Cache::open(dir.path()).unwrap();
        let (got, _) = again.lookup(&key, &types, false).unwrap();
        assert_eq!(got[0].downcast_ref::<String>().unwrap(), "precious");
    }

    #[test]
    fn a_small_result_takes_well_under_a_kilobyte() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        for i in 0..=255u8 {
            let values: Arc<[Value]> = vec![Value::new(u64::from(i)).unwrap()].into();
            cache.store(preimage(i).key(), &preimage(i), values, true);
        }
        let stats = cache.stats().unwrap();
        assert_eq!(stats.entries, 256);
        let per_result = (stats.content_bytes + stats.log_bytes) / 256;
        assert!(per_result < 512, "{per_result} bytes per result: {stats:?}");
        assert!(stats.content_files < 16, "packed: {stats:?}");
    }

    fn walk_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.path().is_dir() {
                out.extend(walk_files(&entry.path()));
            } else {
                out.push(entry.path());
            }
        }
        out
    }
}
