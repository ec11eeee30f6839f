//! Garbage collection: dropping node results that are no longer live (the live packed
//! ones are repacked into one new pack and record log), then every content file (pack,
//! legacy result or media blob) nothing refers to.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;
use ssri::Integrity;

use super::pack::{content_path, Pack, PackEntry};
use super::shared::{blob_integrity, decode_record_object, BLOBS, RECORDS};
use super::{Cache, CacheKey};
use crate::Error;

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

impl Cache {
    /// Garbage-collects the shared store: removes every result whose key is not in `live`,
    /// then every media blob that neither a remaining result nor `live_blobs` names.
    /// Uploads queued before are flushed first. The store is shared: `live` must hold what
    /// every user of the store still wants (the union of their sheets' keys), or their
    /// results are computed again. The local directory is not touched ([`Cache::gc`]).
    /// Without a shared store, nothing is removed.
    pub fn gc_shared(
        &self,
        live: &HashSet<CacheKey>,
        live_blobs: &HashSet<String>,
    ) -> Result<GcReport, Error> {
        self.flush();
        let mut report = GcReport::default();
        let Some(shared) = &self.0.shared else {
            return Ok(report);
        };
        let store = &shared.store;
        let mut referenced = live_blobs.clone();
        for name in store.list(RECORDS)? {
            let key = name
                .strip_prefix(RECORDS)
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(CacheKey::from_hex);
            match key {
                Some(key) if live.contains(&key) => {
                    if let Some(object) = store.get(&name)? {
                        if let Ok((_, record)) = decode_record_object(&object) {
                            collect_blob_refs(&record, &mut referenced);
                        }
                    }
                }
                // Not a result of this version (a foreign object): left alone.
                None => {}
                Some(_) => {
                    store.remove(&name)?;
                    report.removed_entries += 1;
                }
            }
        }
        for name in store.list(BLOBS)? {
            let Some(sri) = blob_integrity(&name) else {
                continue;
            };
            if !referenced.contains(&sri.to_string()) {
                store.remove(&name)?;
                report.removed_files += 1;
            }
        }
        Ok(report)
    }

    /// Removes every node result whose key is not in `live`, then every content file
    /// (result or media blob) that neither a remaining result nor `live_blobs` (integrity
    /// strings, e.g. media held by sheets) refers to. Flushes first.
    pub fn gc(
        &self,
        live: &HashSet<CacheKey>,
        live_blobs: &HashSet<String>,
    ) -> Result<GcReport, Error> {
        self.collect_garbage(live, live_blobs, false)
    }

    /// What [`Cache::gc`] would remove with the same arguments, removing nothing (the
    /// report counts the packs a collection would rewrite among the files removed, as the
    /// collection does). Flushes first.
    pub fn gc_dry_run(
        &self,
        live: &HashSet<CacheKey>,
        live_blobs: &HashSet<String>,
    ) -> Result<GcReport, Error> {
        self.collect_garbage(live, live_blobs, true)
    }

    fn collect_garbage(
        &self,
        live: &HashSet<CacheKey>,
        live_blobs: &HashSet<String>,
        dry_run: bool,
    ) -> Result<GcReport, Error> {
        self.flush();
        let mut report = GcReport::default();
        let mut referenced: HashSet<String> = live_blobs.clone();
        // Results of the legacy layout (a cacache index entry each).
        for (key, meta) in self.legacy_entries()? {
            if !live.contains(&key) {
                if !dry_run {
                    cacache::remove_sync(&self.0.dir, key.index_key()).map_err(|e| self.err(e))?;
                    self.forget_in_memory(&key);
                }
                report.removed_entries += 1;
                continue;
            }
            referenced.insert(meta.integrity.to_string());
            if let Ok(bytes) = cacache::read_hash_sync(&self.0.dir, &meta.integrity) {
                collect_blob_refs(&bytes, &mut referenced);
            }
        }
        // Packed results: the live ones are repacked (unless nothing is to be dropped and
        // they already share one pack). The writer is idle (flushed) and cannot append
        // meanwhile: the record index stays locked.
        let mut records = self.0.records.lock().unwrap();
        let mut keys = records.keys();
        keys.sort_unstable();
        let mut kept = Vec::new();
        let mut dropped = false;
        for key in keys {
            let read = records.find(&key).and_then(|loc| records.read(loc).ok());
            match read {
                Some((preimage, record)) if live.contains(&key) => {
                    collect_blob_refs(&record, &mut referenced);
                    kept.push((key, preimage, record));
                }
                _ => {
                    if !live.contains(&key) {
                        if !dry_run {
                            self.forget_in_memory(&key);
                        }
                        report.removed_entries += 1;
                    }
                    dropped = true;
                }
            }
        }
        let packs = records.packs();
        if dry_run && (dropped || packs.len() > 1) {
            // The live results would move to a new pack: the current packs would go.
        } else if dropped || packs.len() > 1 {
            let pack = Pack::build(kept.iter().map(|(key, preimage, record)| PackEntry {
                key: *key,
                preimage,
                record,
            }));
            let io = |source| Error::Io {
                context: "rewriting the cache's record log".into(),
                source,
            };
            if pack.is_empty() {
                records.rewrite(None).map_err(io)?;
            } else {
                let sri =
                    cacache::write_hash_sync(&self.0.dir, &pack.bytes).map_err(|e| self.err(e))?;
                std::fs::File::open(content_path(&self.0.dir, &sri))
                    .and_then(|f| f.sync_all())
                    .map_err(io)?;
                referenced.insert(sri.to_string());
                records.rewrite(Some((sri, &pack))).map_err(io)?;
            }
        } else {
            referenced.extend(packs.iter().map(|p| p.to_string()));
        }
        drop(records);
        for (path, size) in self.content_files()? {
            let Some(integrity) = integrity_of_content_path(&path) else {
                continue;
            };
            if !referenced.contains(&integrity.to_string()) {
                if !dry_run {
                    std::fs::remove_file(&path).map_err(|source| Error::Io {
                        context: format!("removing {}", path.display()),
                        source,
                    })?;
                }
                report.removed_files += 1;
                report.freed_bytes += size;
            }
        }
        Ok(report)
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cache::tests::preimage;
    use crate::value::media::Image;
    use crate::value::{PortType, Value};

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
        // Three blobs, and one pack per batch the writer made of the three results.
        assert!((4..=6).contains(&before.content_files), "{before:?}");
        let live: HashSet<CacheKey> = [preimage(1).key()].into();
        let planned = cache.gc_dry_run(&live, &HashSet::new()).unwrap();
        assert_eq!(cache.stats().unwrap(), before, "a dry run removes nothing");
        let report = cache.gc(&live, &HashSet::new()).unwrap();
        assert_eq!(planned, report, "a dry run tells what the collection does");
        assert_eq!(report.removed_entries, 2);
        // Two blobs and the old packs (the live result was repacked).
        assert!(report.removed_files >= 3, "{report:?}");
        let after = cache.stats().unwrap();
        assert_eq!(after.entries, 1);
        assert_eq!(after.content_files, 2, "a blob and the new pack");
        cache.clear_memory();
        assert!(cache
            .lookup(&preimage(1).key(), &[PortType::of::<Image>()], false)
            .is_some());
        assert!(cache
            .lookup(&preimage(0).key(), &[PortType::of::<Image>()], false)
            .is_none());
    }
}
