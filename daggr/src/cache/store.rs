//! The store on disk: node results (records) packed into cacache content through the
//! record log (`pack.rs`), media blobs as cacache content of their own; each verified
//! against its hash when read. Results written by earlier versions (one cacache index
//! entry and content file per result, the *legacy* layout) are still read.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use ssri::Integrity;

use super::gc::collect_blob_refs;
use super::pack::ReadError;
use super::shared::{blob_name, decode_record_object, record_name, Upload};
use super::writer::Job;
use super::{Cache, CacheKey, CacheSource, KeyPreimage, KEY_SCHEMA_VERSION};
use crate::error::error_chain as chain;
use crate::value::media::Blob;
use crate::value::{PortType, Value};
use crate::Error;

/// The stored form of one node result.
#[derive(Serialize, Deserialize)]
struct Record {
    schema: u32,
    outputs: Vec<Box<serde_json::value::RawValue>>,
}

/// A packed result's key preimage (JSON) and record.
type PreimageAndRecord = (Vec<u8>, Vec<u8>);

/// What is on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Node results (in the record log, and in cacache's index for results written by
    /// earlier versions).
    pub entries: usize,
    /// Content files (packs of results, media blobs).
    pub content_files: usize,
    /// Bytes of content.
    pub content_bytes: u64,
    /// Bytes of the record log (the index of the packed results).
    pub log_bytes: u64,
}

/// Whether a stored record names a media blob (`"blob":"sha256-…"`, see [`crate::value::media`]).
pub(super) fn names_a_blob(record: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"blob\":\"sha256-";
    record.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

/// The stored record of `values` (their canonical encodings, spliced in as they are) and
/// the media blobs they name.
pub(super) fn encode_record(values: &[Value]) -> (Vec<u8>, Vec<Blob>) {
    let mut record = Vec::with_capacity(64);
    record.extend_from_slice(format!("{{\"schema\":{KEY_SCHEMA_VERSION},\"outputs\":[").as_bytes());
    let mut blobs = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            record.push(b',');
        }
        record.extend_from_slice(v.encoded());
        blobs.extend(v.blobs().iter().cloned());
    }
    record.extend_from_slice(b"]}");
    (record, blobs)
}

impl Cache {
    /// `key`'s result from the local directory, else from the shared store.
    pub(super) fn read_disk(
        &self,
        key: &CacheKey,
        types: &[PortType],
    ) -> Option<(Arc<[Value]>, CacheSource)> {
        let (bytes, source) = self.read_record(key)?;
        Some((self.decode_record(key, &bytes, types)?, source))
    }

    /// The stored record of `key`, if there is a sound one: from the local directory
    /// ([`CacheSource::Disk`]), else from the shared store ([`CacheSource::Shared`], then
    /// written to the local directory with the media it names).
    pub(super) fn read_record(&self, key: &CacheKey) -> Option<(Vec<u8>, CacheSource)> {
        if let Some(record) = self.read_local(key) {
            return Some((record, CacheSource::Disk));
        }
        self.read_shared(key)
            .map(|record| (record, CacheSource::Shared))
    }

    /// `key`'s record in the shared store, verified, with the media it names copied to the
    /// local directory; the record is queued for the local directory too. A failure of the
    /// store is a miss (counted); a damaged object is a miss that the recomputed result
    /// replaces.
    pub(super) fn read_shared(&self, key: &CacheKey) -> Option<Vec<u8>> {
        let shared = self.0.shared.as_ref()?;
        let store = &shared.store;
        let failed = |e: Error| {
            shared
                .counters()
                .read_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(key = %key.to_hex(), store = %store.location(), error = %chain(&e),
                "reading the shared cache failed; computing instead");
        };
        let object = match store.get(&record_name(key)) {
            Ok(Some(object)) => object,
            Ok(None) => return None,
            Err(e) => {
                failed(e);
                return None;
            }
        };
        let (preimage, record) = match decode_record_object(&object) {
            Ok(parts) => parts,
            Err(why) => {
                self.damaged(key, &format!("in the shared store: {why}"));
                return None;
            }
        };
        let mut named = std::collections::HashSet::new();
        collect_blob_refs(&record, &mut named);
        for sri in named.iter().filter_map(|s| s.parse::<Integrity>().ok()) {
            if cacache::exists_sync(&self.0.dir, &sri) {
                continue;
            }
            let bytes = match store.get(&blob_name(&sri)) {
                Ok(Some(bytes)) if sri.check(&bytes).is_ok() => bytes,
                Ok(found) => {
                    let why = if found.is_some() {
                        "fails its hash"
                    } else {
                        "is missing"
                    };
                    self.damaged(key, &format!("in the shared store: media blob {sri} {why}"));
                    return None;
                }
                Err(e) => {
                    failed(e);
                    return None;
                }
            };
            // Written now, not queued: the record is decoded from the local directory
            // right after this returns.
            if let Err(e) = cacache::write_hash_sync(&self.0.dir, &bytes) {
                tracing::warn!(error = %chain(&e), "keeping a shared media blob locally failed");
                return None;
            }
        }
        self.queue(Job::Write {
            key: *key,
            preimage,
            record: record.clone(),
            blobs: Vec::new(),
            repair: false,
        });
        Some(record)
    }

    /// The stored record of `key` in the local directory, if there is a sound one.
    pub(super) fn read_local(&self, key: &CacheKey) -> Option<Vec<u8>> {
        match self.read_packed(key) {
            Some(Ok((_, record))) => return Some(record),
            Some(Err(())) => return None,
            None => {}
        }
        if !self.0.legacy {
            return None;
        }
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

    /// `key`'s preimage and record from its pack: `None` if the record log does not know
    /// the key, `Err` if it does and the bytes are unreadable (a damaged one is counted).
    pub(super) fn read_packed(&self, key: &CacheKey) -> Option<Result<PreimageAndRecord, ()>> {
        let read = {
            let mut records = self.0.records.lock().unwrap();
            let loc = records.find(key)?;
            let read = records.read(loc);
            if matches!(read, Err(ReadError::Damaged(_))) {
                records.forget(key);
            }
            read
        };
        Some(match read {
            Ok(found) => Ok(found),
            Err(ReadError::Damaged(why)) => {
                self.damaged(key, &why);
                Err(())
            }
            Err(ReadError::Io(e)) => {
                tracing::warn!(key = %key.to_hex(), error = %e, "cache read failed; recomputing");
                Err(())
            }
        })
    }

    /// Decodes a stored record into values of `types` (reading the media blobs it names).
    pub(super) fn decode_record(
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

    /// The key preimage stored with an entry, to explain why a node re-ran (from the
    /// local directory, else from the shared store).
    pub fn explain(&self, key: &CacheKey) -> Option<KeyPreimage> {
        match self.read_packed(key) {
            Some(Ok((preimage, _))) => return serde_json::from_slice(&preimage).ok(),
            Some(Err(())) => return None,
            None if self.0.legacy => {
                if let Ok(Some(meta)) = cacache::metadata_sync(&self.0.dir, key.index_key()) {
                    return serde_json::from_value(meta.metadata).ok();
                }
            }
            None => {}
        }
        let object = self
            .0
            .shared
            .as_ref()?
            .store
            .get(&record_name(key))
            .ok()??;
        let (preimage, _) = decode_record_object(&object).ok()?;
        serde_json::from_slice(&preimage).ok()
    }

    /// Stores bytes by content (idempotent), returning their integrity string. With a
    /// shared store they are uploaded too (in the background).
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, Error> {
        let sri = cacache::write_hash_sync(&self.0.dir, bytes).map_err(|e| self.err(e))?;
        if let Some(shared) = &self.0.shared {
            shared.upload(Upload {
                name: blob_name(&sri),
                object: None,
                blobs: vec![Blob {
                    integrity: sri.clone(),
                    bytes: bytes.into(),
                }],
                repair: false,
            });
        }
        Ok(sri.to_string())
    }

    /// Reads bytes stored by [`Cache::put_blob`] (or a media blob), verifying their
    /// integrity: from the local directory, else from the shared store (then kept locally).
    pub fn get_blob(&self, integrity: &str) -> Result<Vec<u8>, Error> {
        let sri: Integrity = integrity
            .parse()
            .map_err(|e: ssri::Error| self.err(e.into()))?;
        let local = cacache::read_hash_sync(&self.0.dir, &sri);
        let Some(shared) = &self.0.shared else {
            return local.map_err(|e| self.err(e));
        };
        let missing = match local {
            Ok(bytes) => return Ok(bytes),
            Err(e) => e,
        };
        match shared.store.get(&blob_name(&sri)) {
            Ok(Some(bytes)) if sri.check(&bytes).is_ok() => {
                // Keeping a copy is an optimisation: the bytes are sound either way.
                let _ = cacache::write_hash_sync(&self.0.dir, &bytes);
                Ok(bytes)
            }
            _ => Err(self.err(missing)),
        }
    }

    /// Whether a result for `key` is on disk.
    pub fn contains(&self, key: &CacheKey) -> bool {
        if self.0.records.lock().unwrap().find(key).is_some() {
            return true;
        }
        self.0.legacy
            && matches!(
                cacache::metadata_sync(&self.0.dir, key.index_key()),
                Ok(Some(_))
            )
    }

    /// Counts entries and content on disk (flushes first).
    pub fn stats(&self) -> Result<CacheStats, Error> {
        self.flush();
        let mut keys: std::collections::HashSet<CacheKey> =
            self.0.records.lock().unwrap().keys().into_iter().collect();
        keys.extend(self.legacy_entries()?.into_iter().map(|(key, _)| key));
        let log_bytes = std::fs::metadata(self.0.dir.join(super::pack::LOG_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        let mut stats = CacheStats {
            entries: keys.len(),
            log_bytes,
            ..CacheStats::default()
        };
        for (_, size) in self.content_files()? {
            stats.content_files += 1;
            stats.content_bytes += size;
        }
        Ok(stats)
    }

    pub(super) fn err(&self, source: cacache::Error) -> Error {
        Error::Cache {
            path: self.0.dir.clone(),
            source: Box::new(source),
        }
    }

    /// The current (last-written, not deleted) node entries of the legacy layout (one
    /// cacache index entry per result).
    pub(super) fn legacy_entries(&self) -> Result<Vec<(CacheKey, cacache::Metadata)>, Error> {
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

    /// Every content file (result or media blob) with its size.
    pub(super) fn content_files(&self) -> Result<Vec<(PathBuf, u64)>, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_naming_media_are_told_apart() {
        let image =
            Value::new(crate::value::media::Image::new(vec![1u8; 64], "image/png")).unwrap();
        assert!(
            names_a_blob(image.encoded()),
            "{}",
            String::from_utf8_lossy(image.encoded())
        );
        let text = Value::new("a \"blob\" of text".to_string()).unwrap();
        assert!(!names_a_blob(text.encoded()));
    }
}
