//! The content-addressed cache: node results and media blobs in cacache, keyed
//! by what the node computes from, with an in-memory memo in front.
//!
//! Keys are content-derived and immutable, so each key is written once (cacache's
//! index is append-only). Writes go through one background thread, so persisting
//! does not hold execution up unless more than [`WRITE_BACKLOG_BYTES`] wait for the
//! disk (then a store waits; no result is dropped); [`Cache::flush`] waits for them,
//! and dropping the last handle to a cache flushes it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};

use serde::{Deserialize, Serialize};
use ssri::Integrity;

pub use crate::value::media::parse_integrity;
use crate::value::media::Blob;
use crate::value::{ContentHash, PortType, Value};
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
}

/// Whether a stored record names a media blob (`"blob":"sha256-…"`, see [`crate::value::media`]).
fn names_a_blob(record: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"blob\":\"sha256-";
    record.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

/// Bumped whenever the key layout or the stored record format changes: every old entry becomes a miss.
pub const KEY_SCHEMA_VERSION: u32 = 1;

/// Environment variable that overrides the default cache directory.
pub const CACHE_DIR_ENV: &str = "DAGGR_CACHE_DIR";

const NODE_KEY_PREFIX: &str = "daggr/v1/node/";

/// A cache key: BLAKE3 of the canonical [`KeyPreimage`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    fn index_key(&self) -> String {
        format!("{NODE_KEY_PREFIX}{}", self.to_hex())
    }

    fn from_index_key(key: &str) -> Option<Self> {
        let hex = key.strip_prefix(NODE_KEY_PREFIX)?;
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| CacheKey(*h.as_bytes()))
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.to_hex()[..16])
    }
}

impl Serialize for CacheKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// Everything a node result depends on. Its canonical JSON is hashed into the
/// [`CacheKey`] and stored beside the entry, so a miss can be explained field by field.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeyPreimage {
    /// [`KEY_SCHEMA_VERSION`].
    pub schema: u32,
    /// Node kind and identity (function path, Space + endpoint, model + provider).
    pub identity: String,
    /// Code fingerprint (hash of the function's tokens, or the remote revision).
    pub code: String,
    /// Manual version.
    pub version: Option<String>,
    /// Parameters, canonical JSON.
    pub params: serde_json::Value,
    /// Per input port: its name and the content hash of the value it received. Upstream
    /// values enter by their *output* hash, so a byte-identical rerun upstream changes nothing here.
    pub inputs: Vec<(String, ContentHash)>,
    /// Output port types (a change of output type must not decode old bytes).
    pub outputs: Vec<String>,
}

impl KeyPreimage {
    /// The key: BLAKE3 over every field, each length-prefixed (so no two preimages share an
    /// encoding). Hashing fields directly, rather than a JSON rendering, keeps it cheap on
    /// the executor's path; the JSON form is what is stored to explain a miss.
    pub fn key(&self) -> CacheKey {
        fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        let mut h = blake3::Hasher::new();
        h.update(b"daggr-cache-key");
        h.update(&self.schema.to_le_bytes());
        field(&mut h, self.identity.as_bytes());
        field(&mut h, self.code.as_bytes());
        match &self.version {
            Some(v) => {
                h.update(&[1]);
                field(&mut h, v.as_bytes());
            }
            None => {
                h.update(&[0]);
            }
        }
        // serde_json maps are sorted: this rendering is canonical.
        field(&mut h, self.params.to_string().as_bytes());
        h.update(&(self.inputs.len() as u64).to_le_bytes());
        for (name, hash) in &self.inputs {
            field(&mut h, name.as_bytes());
            h.update(&hash.0);
        }
        h.update(&(self.outputs.len() as u64).to_le_bytes());
        for ty in &self.outputs {
            field(&mut h, ty.as_bytes());
        }
        CacheKey(*h.finalize().as_bytes())
    }
}

/// The stored form of one node result.
#[derive(Serialize, Deserialize)]
struct Record {
    schema: u32,
    outputs: Vec<Box<serde_json::value::RawValue>>,
}

/// How many bytes of results may wait for the disk writer before a store waits for it.
/// Results are never dropped: past this bound the executor slows to the disk's pace.
pub const WRITE_BACKLOG_BYTES: usize = 64 * 1024 * 1024;

/// The default bound of the in-memory memo.
pub const DEFAULT_MEMO_BYTES: usize = 256 * 1024 * 1024;

/// The in-memory memo in front of the disk: bounded by the encoded size of what it holds,
/// evicting the oldest entries first, so a long-running process does not grow without end.
struct Memo {
    entries: HashMap<CacheKey, (Arc<[Value]>, usize)>,
    order: std::collections::VecDeque<CacheKey>,
    bytes: usize,
    limit: usize,
}

impl Memo {
    fn new(limit: usize) -> Self {
        Memo {
            entries: HashMap::new(),
            order: std::collections::VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    fn get(&self, key: &CacheKey) -> Option<Arc<[Value]>> {
        self.entries.get(key).map(|(v, _)| v.clone())
    }

    fn insert(&mut self, key: CacheKey, values: Arc<[Value]>) {
        // Encodings plus media bytes, plus a fixed overhead per entry.
        let size = 128
            + values
                .iter()
                .map(|v| v.encoded().len() + v.blobs().iter().map(|b| b.bytes.len()).sum::<usize>())
                .sum::<usize>();
        if let Some((_, old)) = self.entries.insert(key, (values, size)) {
            self.bytes -= old;
        } else {
            self.order.push_back(key);
        }
        self.bytes += size;
        self.shrink();
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some((_, size)) = self.entries.remove(key) {
            self.bytes -= size;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.bytes = 0;
    }

    fn shrink(&mut self) {
        while self.bytes > self.limit {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
        // Keys removed out of order leave stale slots in `order`; compact now and then.
        if self.order.len() > 2 * self.entries.len() + 1024 {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }
}

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
}

/// What is on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Node results in the index.
    pub entries: usize,
    /// Content files (results and media blobs).
    pub content_files: usize,
    /// Bytes of content.
    pub content_bytes: u64,
}

/// What a garbage collection removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Node results dropped from the index.
    pub removed_entries: usize,
    /// Content files deleted.
    pub removed_files: usize,
    /// Bytes freed.
    pub freed_bytes: u64,
}

enum Job {
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
struct Pending {
    backlog: Mutex<Backlog>,
    /// Signalled whenever a write finishes.
    progress: Condvar,
}

#[derive(Default)]
struct Backlog {
    jobs: usize,
    bytes: usize,
}

struct Inner {
    dir: PathBuf,
    memo: Mutex<Memo>,
    /// Keys whose on-disk bytes failed verification: their rewrite must replace the content.
    damaged: Mutex<HashSet<CacheKey>>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    pending: Arc<Pending>,
    counters: Counters,
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
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            context: format!("creating cache directory {}", dir.display()),
            source,
        })?;
        // Bounded by bytes, not by jobs: when results arrive faster than the disk takes them
        // (only trivially cheap nodes can do that), a store waits for the writer past
        // WRITE_BACKLOG_BYTES instead of dropping a result the next run would recompute.
        let (tx, rx) = mpsc::channel::<Job>();
        let pending = Arc::new(Pending {
            backlog: Mutex::new(Backlog::default()),
            progress: Condvar::new(),
        });
        let counters = Counters::default();
        let writer = {
            let dir = dir.clone();
            let pending = pending.clone();
            let writes = counters.writes.clone();
            std::thread::Builder::new()
                .name("daggr-cache-writer".into())
                .spawn(move || writer_loop(dir, rx, pending, writes))
                .map_err(|source| Error::Io {
                    context: "starting the cache writer thread".into(),
                    source,
                })?
        };
        Ok(Cache(Arc::new(Inner {
            dir,
            memo: Mutex::new(Memo::new(DEFAULT_MEMO_BYTES)),
            damaged: Mutex::new(HashSet::new()),
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            pending,
            counters,
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
    /// `.daggr` directory or a `Cargo.toml`, else the working directory).
    pub fn open_default() -> Result<Cache, Error> {
        Cache::open(default_dir())
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
        if let Some(values) = self.0.memo.lock().unwrap().get(key) {
            self.0.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Some((values, CacheSource::Memory));
        }
        if memory_only {
            return None;
        }
        let values = self.read_disk(key, types);
        self.count_disk_lookup(key, values)
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
        let values = match self.read_record(key) {
            None => None,
            Some(bytes) if names_a_blob(&bytes) => {
                let (cache, key, types) = (self.clone(), *key, types.to_vec());
                tokio::task::spawn_blocking(move || cache.decode_record(&key, &bytes, &types))
                    .await
                    .unwrap_or(None)
            }
            Some(bytes) => self.decode_record(key, &bytes, types),
        };
        self.count_disk_lookup(key, values)
    }

    fn count_disk_lookup(
        &self,
        key: &CacheKey,
        values: Option<Arc<[Value]>>,
    ) -> Option<(Arc<[Value]>, CacheSource)> {
        match values {
            Some(values) => {
                self.0.counters.disk_hits.fetch_add(1, Ordering::Relaxed);
                self.0.memo.lock().unwrap().insert(*key, values.clone());
                Some((values, CacheSource::Disk))
            }
            None => {
                self.0.counters.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn read_disk(&self, key: &CacheKey, types: &[PortType]) -> Option<Arc<[Value]>> {
        let bytes = self.read_record(key)?;
        self.decode_record(key, &bytes, types)
    }

    /// The stored record of `key`, if there is a sound one.
    fn read_record(&self, key: &CacheKey) -> Option<Vec<u8>> {
        let bytes = match cacache::read_sync(&self.0.dir, key.index_key()) {
            Ok(bytes) => bytes,
            Err(cacache::Error::EntryNotFound(..)) => return None,
            Err(cacache::Error::IntegrityError(e)) => {
                self.damaged(key, &e.to_string());
                return None;
            }
            Err(cacache::Error::IoError(e, _)) if e.kind() == std::io::ErrorKind::NotFound => {
                // The index names content that is gone (deleted by hand or by a GC elsewhere).
                self.damaged(key, "content file missing");
                return None;
            }
            Err(e) => {
                tracing::warn!(key = %key.to_hex(), error = %e, "cache read failed; recomputing");
                return None;
            }
        };
        Some(bytes)
    }

    /// Decodes a stored record into values of `types` (reading the media blobs it names).
    fn decode_record(
        &self,
        key: &CacheKey,
        bytes: &[u8],
        types: &[PortType],
    ) -> Option<Arc<[Value]>> {
        let record: Record = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.damaged(key, &e.to_string());
                return None;
            }
        };
        if record.schema != KEY_SCHEMA_VERSION || record.outputs.len() != types.len() {
            return None;
        }
        let mut values = Vec::with_capacity(types.len());
        for (raw, ty) in record.outputs.iter().zip(types) {
            let encoded = raw.get().as_bytes();
            match ty.decode_from_disk(encoded, &self.0.dir) {
                Ok(v) => values.push(v),
                Err(e) => {
                    // Undecodable (a changed type, or a damaged media blob): a miss.
                    if e.to_string().contains("sha256") {
                        self.damaged(key, &e.to_string());
                    }
                    return None;
                }
            }
        }
        Some(values.into())
    }

    fn damaged(&self, key: &CacheKey, why: &str) {
        self.0
            .counters
            .integrity_failures
            .fetch_add(1, Ordering::Relaxed);
        self.0.damaged.lock().unwrap().insert(*key);
        tracing::warn!(key = %key.to_hex(), why, "damaged cache entry; recomputing");
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
        let mut record = Vec::with_capacity(64);
        record.extend_from_slice(
            format!("{{\"schema\":{KEY_SCHEMA_VERSION},\"outputs\":[").as_bytes(),
        );
        let mut blobs = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                record.push(b',');
            }
            record.extend_from_slice(v.encoded());
            blobs.extend(v.blobs().iter().cloned());
        }
        record.extend_from_slice(b"]}");
        let job = Job::Write {
            key,
            preimage: serde_json::to_vec(preimage).unwrap_or_default(),
            record,
            blobs,
            repair,
        };
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

    /// Forgets a key in memory (used when a caller must not see a memoized value).
    pub fn forget_in_memory(&self, key: &CacheKey) {
        self.0.memo.lock().unwrap().remove(key);
    }

    /// Bytes of encoded values the in-memory memo holds.
    pub fn memory_bytes(&self) -> usize {
        self.0.memo.lock().unwrap().bytes
    }

    /// Empties the in-memory memo (the disk is untouched).
    pub fn clear_memory(&self) {
        self.0.memo.lock().unwrap().clear();
    }

    /// Bounds the in-memory memo to about `bytes` of encoded values (default 256 MiB); the
    /// oldest entries go first. The disk cache is not affected.
    pub fn set_memory_limit(&self, bytes: usize) {
        let mut memo = self.0.memo.lock().unwrap();
        memo.limit = bytes;
        memo.shrink();
    }

    /// Blocks until every queued write is on disk.
    pub fn flush(&self) {
        self.0.pending.wait_idle();
    }

    /// The key preimage stored with an entry, to explain why a node re-ran.
    pub fn explain(&self, key: &CacheKey) -> Option<KeyPreimage> {
        let meta = cacache::metadata_sync(&self.0.dir, key.index_key()).ok()??;
        serde_json::from_value(meta.metadata).ok()
    }

    /// Stores bytes by content (idempotent), returning their integrity string.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, Error> {
        cacache::write_hash_sync(&self.0.dir, bytes)
            .map(|i| i.to_string())
            .map_err(|e| self.err(e))
    }

    /// Reads bytes stored by [`Cache::put_blob`] (or a media blob), verifying their integrity.
    pub fn get_blob(&self, integrity: &str) -> Result<Vec<u8>, Error> {
        let sri: Integrity = integrity
            .parse()
            .map_err(|e: ssri::Error| self.err(e.into()))?;
        cacache::read_hash_sync(&self.0.dir, &sri).map_err(|e| self.err(e))
    }

    /// Whether a result for `key` is on disk.
    pub fn contains(&self, key: &CacheKey) -> bool {
        matches!(
            cacache::metadata_sync(&self.0.dir, key.index_key()),
            Ok(Some(_))
        )
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
        }
    }

    /// Counts entries and content on disk (flushes first).
    pub fn stats(&self) -> Result<CacheStats, Error> {
        self.flush();
        let mut stats = CacheStats {
            entries: self.live_entries()?.len(),
            ..CacheStats::default()
        };
        for (_, size) in self.content_files()? {
            stats.content_files += 1;
            stats.content_bytes += size;
        }
        Ok(stats)
    }

    /// Removes every node result whose key is not in `live`, then every content file
    /// (result or media blob) that neither a remaining result nor `live_blobs` (integrity
    /// strings, e.g. media held by sheets) refers to. Flushes first.
    pub fn gc(
        &self,
        live: &HashSet<CacheKey>,
        live_blobs: &HashSet<String>,
    ) -> Result<GcReport, Error> {
        self.flush();
        let mut report = GcReport::default();
        let mut referenced: HashSet<String> = live_blobs.clone();
        for (key, meta) in self.live_entries()? {
            if !live.contains(&key) {
                cacache::remove_sync(&self.0.dir, key.index_key()).map_err(|e| self.err(e))?;
                self.forget_in_memory(&key);
                report.removed_entries += 1;
                continue;
            }
            referenced.insert(meta.integrity.to_string());
            if let Ok(bytes) = cacache::read_hash_sync(&self.0.dir, &meta.integrity) {
                collect_blob_refs(&bytes, &mut referenced);
            }
        }
        for (path, size) in self.content_files()? {
            let Some(integrity) = integrity_of_content_path(&path) else {
                continue;
            };
            if !referenced.contains(&integrity.to_string()) {
                std::fs::remove_file(&path).map_err(|source| Error::Io {
                    context: format!("removing {}", path.display()),
                    source,
                })?;
                report.removed_files += 1;
                report.freed_bytes += size;
            }
        }
        Ok(report)
    }

    fn err(&self, source: cacache::Error) -> Error {
        Error::Cache {
            path: self.0.dir.clone(),
            source: Box::new(source),
        }
    }

    /// The current (last-written, not deleted) node entries.
    fn live_entries(&self) -> Result<Vec<(CacheKey, cacache::Metadata)>, Error> {
        let mut entries = Vec::new();
        if !self.0.dir.join("index-v5").exists() {
            return Ok(entries);
        }
        for meta in cacache::list_sync(&self.0.dir) {
            let meta = meta.map_err(|e| self.err(e))?;
            if let Some(key) = CacheKey::from_index_key(&meta.key) {
                entries.push((key, meta));
            }
        }
        Ok(entries)
    }

    fn content_files(&self) -> Result<Vec<(PathBuf, u64)>, Error> {
        let mut files = Vec::new();
        let root = self.0.dir.join("content-v2");
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            let Ok(read) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in read.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(path);
                } else {
                    files.push((path, meta.len()));
                }
            }
        }
        Ok(files)
    }
}

impl Pending {
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

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop after the queued writes.
        self.jobs.lock().unwrap().take();
        if let Some(handle) = self.writer.lock().unwrap().take() {
            let _ = handle.join();
        }
    }
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

fn write_entry(
    dir: &Path,
    key: &CacheKey,
    preimage: serde_json::Value,
    record: &[u8],
    blobs: &[Blob],
    repair: bool,
) -> Result<(), cacache::Error> {
    for blob in blobs {
        if repair || !cacache::exists_sync(dir, &blob.integrity) {
            cacache::write_hash_sync(dir, &blob.bytes)?;
        }
    }
    let index_key = key.index_key();
    if !repair {
        if let Some(existing) = cacache::metadata_sync(dir, &index_key)? {
            // Write each key once: the index is append-only. Same key ⇒ same content.
            if cacache::exists_sync(dir, &existing.integrity) {
                return Ok(());
            }
        }
    }
    if repair && cacache::metadata_sync(dir, &index_key)?.is_some() {
        // Same key ⇒ same bytes ⇒ same content address: rewriting the content repairs
        // the entry without another index line.
        cacache::write_hash_sync(dir, record)?;
        return Ok(());
    }
    let mut writer = cacache::WriteOpts::new()
        .metadata(preimage)
        .size(record.len())
        .open_sync(dir, &index_key)?;
    std::io::Write::write_all(&mut writer, record)
        .map_err(|e| cacache::Error::IoError(e, format!("writing cache entry {index_key}")))?;
    writer.commit()?;
    Ok(())
}

/// Finds `"blob":"sha256-…"` media references in encoded values.
pub fn collect_blob_refs(record: &[u8], into: &mut HashSet<String>) {
    fn walk(v: &serde_json::Value, into: &mut HashSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let (Some(serde_json::Value::String(blob)), Some(_)) =
                    (map.get("blob"), map.get("mime"))
                {
                    into.insert(blob.clone());
                }
                map.values().for_each(|v| walk(v, into));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, into)),
            _ => {}
        }
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(record) {
        walk(&json, into);
    }
}

/// `…/content-v2/sha256/ab/cd/ef…` → the integrity it stores.
fn integrity_of_content_path(path: &Path) -> Option<Integrity> {
    let parts: Vec<&str> = path
        .iter()
        .rev()
        .take(4)
        .map(|p| p.to_str())
        .collect::<Option<_>>()?;
    let [rest, b, a, algo] = parts[..] else {
        return None;
    };
    let algorithm = match algo {
        "sha256" => ssri::Algorithm::Sha256,
        "sha512" => ssri::Algorithm::Sha512,
        "sha1" => ssri::Algorithm::Sha1,
        _ => return None,
    };
    Integrity::from_hex(format!("{a}{b}{rest}"), algorithm).ok()
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
mod tests {
    use super::*;
    use crate::value::media::Image;

    fn preimage(input: u8) -> KeyPreimage {
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
    fn the_memo_is_bounded_and_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache.set_memory_limit(10_000);
        for i in 0..100u8 {
            let values: Arc<[Value]> = vec![Value::new(vec![i; 500]).unwrap()].into();
            cache.store(preimage(i).key(), &preimage(i), values, false);
        }
        assert!(cache.memory_bytes() <= 10_000, "{}", cache.memory_bytes());
        let types = [PortType::of::<Vec<u8>>()];
        assert!(
            cache.lookup(&preimage(99).key(), &types, true).is_some(),
            "the newest stays"
        );
        assert!(
            cache.lookup(&preimage(0).key(), &types, true).is_none(),
            "the oldest went"
        );
    }

    #[test]
    fn keys_change_with_every_field() {
        let base = preimage(1);
        let mut other = base.clone();
        other.code = "d".into();
        assert_ne!(base.key(), other.key());
        let mut other = base.clone();
        other.version = Some("2".into());
        assert_ne!(base.key(), other.key());
        assert_ne!(base.key(), preimage(2).key());
        assert_eq!(base.key(), preimage(1).key());
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
        let index_lines: usize = walk_files(&dir.path().join("index-v5"))
            .iter()
            .map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .count()
            })
            .sum();
        assert_eq!(index_lines, 1, "each key is written to the index once");
        assert_eq!(fresh.explain(&key), Some(preimage(1)));
    }

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
    fn records_naming_media_are_told_apart() {
        let image = Value::new(Image::new(vec![1u8; 64], "image/png")).unwrap();
        assert!(
            names_a_blob(image.encoded()),
            "{}",
            String::from_utf8_lossy(image.encoded())
        );
        let text = Value::new("a \"blob\" of text".to_string()).unwrap();
        assert!(!names_a_blob(text.encoded()));
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
    fn gc_keeps_live_entries_and_their_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        for i in 0..3u8 {
            let values: Arc<[Value]> =
                vec![Value::new(Image::new(vec![i; 100], "image/png")).unwrap()].into();
            cache.store(preimage(i).key(), &preimage(i), values, true);
        }
        let before = cache.stats().unwrap();
        assert_eq!(before.entries, 3);
        assert_eq!(before.content_files, 6);
        let live: HashSet<CacheKey> = [preimage(1).key()].into();
        let report = cache.gc(&live, &HashSet::new()).unwrap();
        assert_eq!(report.removed_entries, 2);
        assert_eq!(report.removed_files, 4);
        let after = cache.stats().unwrap();
        assert_eq!(after.entries, 1);
        assert_eq!(after.content_files, 2);
        cache.clear_memory();
        assert!(cache
            .lookup(&preimage(1).key(), &[PortType::of::<Image>()], false)
            .is_some());
        assert!(cache
            .lookup(&preimage(0).key(), &[PortType::of::<Image>()], false)
            .is_none());
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
