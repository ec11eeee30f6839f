//! The store on disk: node results (records) and media blobs in cacache, each verified
//! against its integrity when read.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use ssri::Integrity;

use super::{Cache, CacheKey, KeyPreimage, KEY_SCHEMA_VERSION};
use crate::value::media::Blob;
use crate::value::{PortType, Value};
use crate::Error;

/// The stored form of one node result.
#[derive(Serialize, Deserialize)]
struct Record {
    schema: u32,
    outputs: Vec<Box<serde_json::value::RawValue>>,
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
    pub(super) fn read_disk(&self, key: &CacheKey, types: &[PortType]) -> Option<Arc<[Value]>> {
        let bytes = self.read_record(key)?;
        self.decode_record(key, &bytes, types)
    }

    /// The stored record of `key`, if there is a sound one.
    pub(super) fn read_record(&self, key: &CacheKey) -> Option<Vec<u8>> {
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

    pub(super) fn err(&self, source: cacache::Error) -> Error {
        Error::Cache {
            path: self.0.dir.clone(),
            source: Box::new(source),
        }
    }

    /// The current (last-written, not deleted) node entries.
    pub(super) fn live_entries(&self) -> Result<Vec<(CacheKey, cacache::Metadata)>, Error> {
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

/// Writes one node result: its media blobs, then its record under the key's index name
/// with the preimage as metadata. `repair` rewrites content that failed verification.
pub(super) fn write_entry(
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
