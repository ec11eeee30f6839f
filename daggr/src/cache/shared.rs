//! The shared tier: a store several machines read and write (object storage through
//! [`ObjectStoreShared`](super::ObjectStoreShared), or any [`SharedStore`]), behind the
//! local cache directory.
//!
//! The local directory stays in front of it as a read-through cache: a result found in the
//! shared store is verified, written to the local directory (with the media it names), and
//! served from there afterwards. Results computed here are uploaded by a background thread
//! (media first, then the record, so a record is never visible before its media).
//!
//! Objects are write-once: a record's name is its cache key, a blob's its content hash,
//! so two machines writing the same name write the same bytes and a plain "put unless
//! present" is safe without locks. Every object is verified when read (a record carries
//! the BLAKE3 of its bytes, a blob is checked against its SRI hash); a damaged one is a
//! miss, counted, and overwritten by the recomputed result.
//!
//! Failures of the shared store never fail a run: a read that fails is a miss (the node
//! computes), an upload that fails is counted
//! ([`CacheCounters::shared_upload_failures`](super::CacheCounters)), logged, kept for a
//! retry at the next [`Cache::flush`](super::Cache::flush) and listed by
//! [`Cache::shared_upload_failures`](super::Cache::shared_upload_failures). The result
//! itself is safe in the local directory.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use ssri::Integrity;

use super::CacheKey;
use crate::error::error_chain as chain;
use crate::value::media::Blob;
use crate::Error;

/// A store shared by several processes or machines, holding write-once objects by name.
///
/// Names are `/`-separated relative paths (`records/…`, `blobs/…`). Implementations block
/// (they are called from daggr's background threads and blocking pool, never from a
/// runtime's worker directly) and are shared between threads. daggr verifies every object
/// it reads, so a store need not.
pub trait SharedStore: Send + Sync + 'static {
    /// The store's address, for messages (`s3://bucket/prefix`). Never includes secrets.
    fn location(&self) -> String;
    /// The object's bytes, or `None` if there is no such object.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error>;
    /// Whether the object exists.
    fn exists(&self, name: &str) -> Result<bool, Error>;
    /// Writes the object, replacing any object of that name.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), Error>;
    /// The names of the objects under `prefix` (a folder name such as `records`).
    fn list(&self, prefix: &str) -> Result<Vec<String>, Error>;
    /// Removes the object (removing a missing object is not an error).
    fn remove(&self, name: &str) -> Result<(), Error>;

    /// Writes the object unless one of that name exists. Content addressing makes this safe
    /// without a conditional write: an object of that name holds the same bytes, or is
    /// damaged and then replaced through [`SharedStore::put`] when daggr repairs it.
    fn put_if_absent(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        if self.exists(name)? {
            return Ok(());
        }
        self.put(name, bytes)
    }
}

impl fmt::Debug for dyn SharedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedStore({})", self.location())
    }
}

/// The folder of result records in a shared store.
pub(super) const RECORDS: &str = "records";
/// The folder of media blobs in a shared store.
pub(super) const BLOBS: &str = "blobs";

/// A record object's name: `records/<key hex>`.
pub(super) fn record_name(key: &CacheKey) -> String {
    format!("{RECORDS}/{}", key.to_hex())
}

/// A blob object's name: `blobs/<algorithm>/<hex digest>`.
pub(super) fn blob_name(sri: &Integrity) -> String {
    let (algo, hex) = sri.to_hex();
    format!("{BLOBS}/{algo}/{hex}")
}

/// The integrity string of a blob object's name (the inverse of [`blob_name`]).
pub(super) fn blob_integrity(name: &str) -> Option<Integrity> {
    let rest = name.strip_prefix(BLOBS)?.strip_prefix('/')?;
    let (algo, hex) = rest.split_once('/')?;
    let algo: ssri::Algorithm = algo.parse().ok()?;
    Integrity::from_hex(hex, algo).ok()
}

const RECORD_MAGIC: &[u8; 8] = b"daggrSR1";

/// A record object: magic, BLAKE3 of the rest, the preimage's length (u32 LE), the key
/// preimage (JSON), the record.
pub(super) fn encode_record_object(preimage: &[u8], record: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + preimage.len() + record.len());
    body.extend_from_slice(&(preimage.len() as u32).to_le_bytes());
    body.extend_from_slice(preimage);
    body.extend_from_slice(record);
    let mut out = Vec::with_capacity(8 + 32 + body.len());
    out.extend_from_slice(RECORD_MAGIC);
    out.extend_from_slice(blake3::hash(&body).as_bytes());
    out.extend_from_slice(&body);
    out
}

/// The preimage and record of a record object, or why it is damaged.
pub(super) fn decode_record_object(bytes: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    if bytes.len() < 8 + 32 + 4 || &bytes[..8] != RECORD_MAGIC {
        return Err("not a daggr record object".into());
    }
    let body = &bytes[40..];
    if blake3::hash(body).as_bytes() != &bytes[8..40] {
        return Err("record object fails its BLAKE3 check".into());
    }
    let len = u32::from_le_bytes(body[..4].try_into().expect("4 bytes")) as usize;
    let rest = &body[4..];
    if len > rest.len() {
        return Err("record object's preimage length is out of range".into());
    }
    Ok((rest[..len].to_vec(), rest[len..].to_vec()))
}

/// How many bytes of uploads may wait before a store waits for the uploader (as for the
/// local writer: past it the run slows to the store's pace, nothing is dropped).
const UPLOAD_BACKLOG_BYTES: usize = 64 * 1024 * 1024;
/// How many failed uploads are kept for a retry and by key (more are still counted).
const MAX_KEPT_FAILURES: usize = 10_000;
/// Uploads run this many at a time (object stores answer each request in milliseconds;
/// in parallel, a batch of small records goes at the network's pace, not the latency's).
const PARALLEL_UPLOADS: usize = 8;
/// After this many failures in a row the rest of a batch is not tried (the store is down:
/// each attempt would wait for its timeout); it is kept for the retry at the next flush.
const GIVE_UP_AFTER: usize = 3;

/// One result (or media blob) to upload: its media, then its record object.
pub(super) struct Upload {
    /// What it is called in messages and failures: the record's object name, or the
    /// blob's for a lone blob.
    pub(super) name: String,
    /// The record object (`None` for a lone blob).
    pub(super) object: Option<Vec<u8>>,
    pub(super) blobs: Vec<Blob>,
    /// Replace what is there (the object read back was damaged).
    pub(super) repair: bool,
}

impl Upload {
    fn size(&self) -> usize {
        128 + self.object.as_ref().map_or(0, Vec::len)
            + self.blobs.iter().map(|b| b.bytes.len()).sum::<usize>()
    }
}

enum Msg {
    Upload(Upload),
    /// Retry what failed, then count a flush done.
    Flush,
}

/// An upload to the shared store that failed and was not done since (see
/// [`Cache::shared_upload_failures`](super::Cache::shared_upload_failures)). The result is
/// safe in the local cache directory; the upload is retried at each flush.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UploadFailure {
    /// The object's name in the store (`records/<key>`, `blobs/sha256/<hex>`).
    pub object: String,
    /// Why, with the cause chain.
    pub error: String,
}

/// Counters and failures of the shared tier (shared with the uploader thread).
#[derive(Default)]
pub(super) struct SharedCounters {
    pub(super) hits: AtomicU64,
    pub(super) read_failures: AtomicU64,
    pub(super) uploads: AtomicU64,
    pub(super) upload_failures: AtomicU64,
}

#[derive(Default)]
struct Queue {
    jobs: usize,
    bytes: usize,
    flushes_asked: u64,
    flushes_done: u64,
}

#[derive(Default)]
struct State {
    queue: Mutex<Queue>,
    progress: Condvar,
    /// Uploads that failed and were not done since, by object name, with the error.
    failed: Mutex<HashMap<String, (String, Upload)>>,
    counters: SharedCounters,
}

/// The shared tier of a cache: the store and the thread uploading to it.
pub(super) struct SharedTier {
    pub(super) store: Arc<dyn SharedStore>,
    state: Arc<State>,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SharedTier {
    pub(super) fn start(store: Arc<dyn SharedStore>) -> Result<SharedTier, Error> {
        let state = Arc::new(State::default());
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (store, state) = (store.clone(), state.clone());
            std::thread::Builder::new()
                .name("daggr-cache-uploader".into())
                .spawn(move || upload_loop(&*store, &state, rx))
                .map_err(|source| Error::Io {
                    context: "starting the shared cache's upload thread".into(),
                    source,
                })?
        };
        Ok(SharedTier {
            store,
            state,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(super) fn counters(&self) -> &SharedCounters {
        &self.state.counters
    }

    /// Queues an upload, first waiting while the backlog is over its bound.
    pub(super) fn upload(&self, upload: Upload) {
        let size = upload.size();
        {
            let mut queue = self.state.queue.lock().unwrap();
            while queue.jobs > 0 && queue.bytes + size > UPLOAD_BACKLOG_BYTES {
                queue = self.state.progress.wait(queue).unwrap();
            }
            queue.jobs += 1;
            queue.bytes += size;
        }
        let sent = match self.tx.lock().unwrap().as_ref() {
            Some(tx) => tx.send(Msg::Upload(upload)),
            None => Err(mpsc::SendError(Msg::Flush)),
        };
        if let Err(mpsc::SendError(msg)) = sent {
            if let Msg::Upload(upload) = msg {
                self.state
                    .keep_failure(upload, "the cache was closing".into());
            }
            self.state.finished(size);
        }
    }

    /// Waits until every upload queued before the call was done or failed, after retrying
    /// the uploads that failed before.
    pub(super) fn flush(&self) {
        let ticket = {
            let mut queue = self.state.queue.lock().unwrap();
            queue.flushes_asked += 1;
            queue.flushes_asked
        };
        let sent = match self.tx.lock().unwrap().as_ref() {
            Some(tx) => tx.send(Msg::Flush).is_ok(),
            None => false,
        };
        let mut queue = self.state.queue.lock().unwrap();
        while sent && queue.flushes_done < ticket {
            queue = self.state.progress.wait(queue).unwrap();
        }
    }

    /// The uploads that failed and were not done since, by object name.
    pub(super) fn failures(&self) -> Vec<UploadFailure> {
        let mut out: Vec<UploadFailure> = self
            .state
            .failed
            .lock()
            .unwrap()
            .iter()
            .map(|(object, (error, _))| UploadFailure {
                object: object.clone(),
                error: error.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.object.cmp(&b.object));
        out
    }
}

impl Drop for SharedTier {
    fn drop(&mut self) {
        // Closing the channel ends the loop after the queued uploads and one retry.
        self.tx.lock().unwrap().take();
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }
}

impl State {
    fn finished(&self, size: usize) {
        let mut queue = self.queue.lock().unwrap();
        queue.jobs -= 1;
        queue.bytes -= size;
        self.progress.notify_all();
    }

    fn keep_failure(&self, upload: Upload, error: String) {
        self.counters
            .upload_failures
            .fetch_add(1, Ordering::Relaxed);
        let mut failed = self.failed.lock().unwrap();
        if failed.len() < MAX_KEPT_FAILURES || failed.contains_key(&upload.name) {
            failed.insert(upload.name.clone(), (error, upload));
        }
    }
}

fn upload_loop(store: &dyn SharedStore, state: &State, rx: mpsc::Receiver<Msg>) {
    // The channel closed (the cache is dropped) once everything queued was taken.
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        let mut flushes = 0;
        for msg in std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok())) {
            match msg {
                Msg::Upload(upload) => batch.push(upload),
                Msg::Flush => flushes += 1,
            }
            if batch.len() >= 256 {
                break;
            }
        }
        if flushes > 0 {
            retry_failures(store, state);
        }
        upload_batch(store, state, batch, true);
        if flushes > 0 {
            let mut queue = state.queue.lock().unwrap();
            queue.flushes_done += flushes;
            state.progress.notify_all();
        }
    }
    retry_failures(store, state);
}

fn retry_failures(store: &dyn SharedStore, state: &State) {
    let retries: Vec<Upload> = state
        .failed
        .lock()
        .unwrap()
        .drain()
        .map(|(_, (_, upload))| upload)
        .collect();
    upload_batch(store, state, retries, false);
}

/// Uploads `batch`, [`PARALLEL_UPLOADS`] at a time; `queued` if they count in the queue.
fn upload_batch(store: &dyn SharedStore, state: &State, batch: Vec<Upload>, queued: bool) {
    if batch.is_empty() {
        return;
    }
    let failures_in_a_row = AtomicU64::new(0);
    let next = Mutex::new(batch.into_iter());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_UPLOADS {
            s.spawn(|| loop {
                let Some(upload) = next.lock().unwrap().next() else {
                    return;
                };
                let size = upload.size();
                let result = if failures_in_a_row.load(Ordering::Relaxed) >= GIVE_UP_AFTER as u64 {
                    Err("not tried: the store failed the uploads before it".to_string())
                } else {
                    upload_one(store, &upload)
                };
                match result {
                    Ok(()) => {
                        failures_in_a_row.store(0, Ordering::Relaxed);
                        state.counters.uploads.fetch_add(1, Ordering::Relaxed);
                        state.failed.lock().unwrap().remove(&upload.name);
                    }
                    Err(error) => {
                        failures_in_a_row.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            object = %upload.name,
                            store = %store.location(),
                            error,
                            "upload to the shared cache failed; the result is kept locally and retried at the next flush"
                        );
                        state.keep_failure(upload, error);
                    }
                }
                if queued {
                    state.finished(size);
                }
            });
        }
    });
}

pub(super) fn upload_one(store: &dyn SharedStore, upload: &Upload) -> Result<(), String> {
    let put = |name: &str, bytes: &[u8]| {
        if upload.repair {
            store.put(name, bytes)
        } else {
            store.put_if_absent(name, bytes)
        }
    };
    for blob in &upload.blobs {
        put(&blob_name(&blob.integrity), &blob.bytes).map_err(|e| chain(&e))?;
    }
    match &upload.object {
        Some(object) => put(&upload.name, object).map_err(|e| chain(&e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_objects_round_trip_and_damage_is_detected() {
        let object = encode_record_object(b"{\"p\":1}", b"{\"outputs\":[]}");
        let (preimage, record) = decode_record_object(&object).unwrap();
        assert_eq!(
            (&preimage[..], &record[..]),
            (&b"{\"p\":1}"[..], &b"{\"outputs\":[]}"[..])
        );
        for i in 0..object.len() {
            let mut damaged = object.clone();
            damaged[i] ^= 0x01;
            assert!(decode_record_object(&damaged).is_err(), "byte {i}");
        }
        assert!(decode_record_object(&object[..object.len() - 1]).is_err());
        assert!(decode_record_object(b"").is_err());
    }

    #[test]
    fn blob_names_round_trip() {
        let sri = Integrity::from(b"pixels");
        assert_eq!(blob_integrity(&blob_name(&sri)), Some(sri));
        assert_eq!(blob_integrity("records/abc"), None);
        assert_eq!(blob_integrity("blobs/sha256/zz"), None);
    }

    /// A store in a map, which can be made to fail: the tier's logic without a server
    /// (tests/shared_cache.rs runs it against a real S3-compatible one).
    #[derive(Default)]
    struct MapStore {
        objects: Mutex<HashMap<String, Vec<u8>>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl MapStore {
        fn check(&self) -> Result<(), Error> {
            if self.down.load(Ordering::Relaxed) {
                return Err(Error::SharedStore {
                    store: "map".into(),
                    context: "test".into(),
                    source: "connection refused".into(),
                });
            }
            Ok(())
        }
    }

    impl SharedStore for MapStore {
        fn location(&self) -> String {
            "map://".into()
        }
        fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
            self.check()?;
            Ok(self.objects.lock().unwrap().get(name).cloned())
        }
        fn exists(&self, name: &str) -> Result<bool, Error> {
            self.check()?;
            Ok(self.objects.lock().unwrap().contains_key(name))
        }
        fn put(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
            self.check()?;
            self.objects
                .lock()
                .unwrap()
                .insert(name.into(), bytes.to_vec());
            Ok(())
        }
        fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
            self.check()?;
            let objects = self.objects.lock().unwrap();
            Ok(objects
                .keys()
                .filter(|k| k.starts_with(&format!("{prefix}/")))
                .cloned()
                .collect())
        }
        fn remove(&self, name: &str) -> Result<(), Error> {
            self.check()?;
            self.objects.lock().unwrap().remove(name);
            Ok(())
        }
    }

    use crate::cache::tests::preimage;
    use crate::cache::{Cache, CacheSource};
    use crate::value::media::Image;
    use crate::value::{PortType, Value};

    fn two_caches(store: &Arc<MapStore>) -> [(tempfile::TempDir, Cache); 2] {
        [(), ()].map(|()| {
            let dir = tempfile::tempdir().unwrap();
            let cache = Cache::open_shared(dir.path(), store.clone()).unwrap();
            (dir, cache)
        })
    }

    #[test]
    fn a_second_machine_hits_what_the_first_computed_media_included() {
        let store = Arc::new(MapStore::default());
        let [(_a, first), (b_dir, second)] = two_caches(&store);
        let image = Image::new(vec![3u8; 70_000], "image/png");
        let values: Arc<[Value]> = vec![Value::new(image.clone()).unwrap()].into();
        first.store(preimage(1).key(), &preimage(1), values, true);
        assert!(first.flush().is_empty());
        assert_eq!(first.counters().shared_uploads, 1);
        assert_eq!(store.list(BLOBS).unwrap().len(), 1);
        let types = [PortType::of::<Image>()];
        let (got, source) = second.lookup(&preimage(1).key(), &types, false).unwrap();
        assert_eq!(source, CacheSource::Shared);
        assert_eq!(got[0].downcast_ref::<Image>().unwrap(), &image);
        assert_eq!(second.explain(&preimage(1).key()), Some(preimage(1)));
        assert_eq!(second.counters().shared_hits, 1);
        // It was kept locally: a third handle on the second directory finds it on disk
        // even with the store down.
        second.flush();
        store.down.store(true, Ordering::Relaxed);
        let again = Cache::open_shared(b_dir.path(), store.clone()).unwrap();
        let (_, source) = again.lookup(&preimage(1).key(), &types, false).unwrap();
        assert_eq!(source, CacheSource::Disk);
    }

    #[test]
    fn a_damaged_object_is_a_miss_and_the_recomputed_result_replaces_it() {
        let store = Arc::new(MapStore::default());
        let [(_a, first), (_b, second)] = two_caches(&store);
        let values: Arc<[Value]> = vec![Value::new("sound".to_string()).unwrap()].into();
        first.store(preimage(1).key(), &preimage(1), values.clone(), true);
        first.flush();
        let name = record_name(&preimage(1).key());
        let mut objects = store.objects.lock().unwrap();
        *objects.get_mut(&name).unwrap().last_mut().unwrap() ^= 1;
        drop(objects);
        let types = [PortType::of::<String>()];
        assert!(second.lookup(&preimage(1).key(), &types, false).is_none());
        assert_eq!(second.counters().integrity_failures, 1);
        second.store(preimage(1).key(), &preimage(1), values, true);
        second.flush();
        let object = store.get(&name).unwrap().unwrap();
        assert!(decode_record_object(&object).is_ok(), "repaired");
    }

    #[test]
    fn a_store_that_is_down_costs_misses_and_retried_uploads_never_results() {
        let store = Arc::new(MapStore::default());
        let [(_a, cache), _] = two_caches(&store);
        store.down.store(true, Ordering::Relaxed);
        let types = [PortType::of::<u64>()];
        assert!(cache.lookup(&preimage(1).key(), &types, false).is_none());
        assert_eq!(cache.counters().shared_read_failures, 1);
        for i in 0..5u8 {
            let values: Arc<[Value]> = vec![Value::new(u64::from(i)).unwrap()].into();
            cache.store(preimage(i).key(), &preimage(i), values, true);
        }
        assert!(cache.flush().is_empty(), "saved locally");
        let failures = cache.shared_upload_failures();
        assert_eq!(failures.len(), 5, "{failures:?}");
        assert!(failures.iter().all(|f| f.object.starts_with("records/")));
        // Locally every result is there.
        cache.clear_memory();
        for i in 0..5u8 {
            let (_, source) = cache.lookup(&preimage(i).key(), &types, false).unwrap();
            assert_eq!(source, CacheSource::Disk);
        }
        // Back up: the next flush uploads them.
        store.down.store(false, Ordering::Relaxed);
        cache.flush();
        assert!(cache.shared_upload_failures().is_empty());
        assert_eq!(store.list(RECORDS).unwrap().len(), 5);
    }

    #[test]
    fn gc_of_the_shared_store_keeps_live_results_and_their_media() {
        let store = Arc::new(MapStore::default());
        let [(_a, cache), _] = two_caches(&store);
        for i in 0..3u8 {
            let image = Image::new(vec![i; 100], "image/png");
            let values: Arc<[Value]> = vec![Value::new(image).unwrap()].into();
            cache.store(preimage(i).key(), &preimage(i), values, true);
        }
        let live = [preimage(0).key()].into_iter().collect();
        let report = cache.gc_shared(&live, &Default::default()).unwrap();
        assert_eq!((report.removed_entries, report.removed_files), (2, 2));
        assert_eq!(
            store.list(RECORDS).unwrap(),
            vec![record_name(&preimage(0).key())]
        );
        assert_eq!(store.list(BLOBS).unwrap().len(), 1);
    }
}
