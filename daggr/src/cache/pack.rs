//! Node results on disk: records packed per write batch into one cacache content blob (a
//! *pack*), found through the *record log*, a daggr-owned append-only index beside cacache's
//! directories (`records-v1.log`).
//!
//! cacache's own index gives every key a bucket file of its own (two directory levels, a
//! file of at least one disk block, a `mkdir`, an `open` and an append per key): ~12 KB and
//! a dozen system calls per small result. Here a batch of results costs one content file
//! (written by cacache, so content is still addressed and stored by it) and one append to
//! the log, whatever the batch's size.
//!
//! A log batch is `MAGIC, body length (u32 LE), BLAKE3(body), body`; its body names the
//! pack (its integrity string) and, per result, its key, offset and lengths in the pack and
//! the BLAKE3 of its bytes (the key preimage, then the record). Every read checks that
//! hash, so a damaged record, a truncated or missing pack is a miss; a damaged or torn log
//! batch (a write cut by a crash or a full disk) is skipped, and the scan resynchronises on
//! the next batch's magic. Later batches win over earlier ones for the same key (a repair
//! appends a new batch).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ssri::Integrity;

use super::CacheKey;

/// The record log's file name, in the cache directory.
pub(super) const LOG_FILE: &str = "records-v1.log";
const MAGIC: &[u8; 8] = b"daggrRL1";
/// Magic, body length, body hash.
const HEADER: usize = 8 + 4 + 32;
/// Key, offset, preimage length, record length, hash.
const ENTRY: usize = 32 + 8 + 4 + 4 + 32;

/// Where one result is: in which pack, at which offset, and the hash of its bytes.
///
/// What the record log's entry says; the index keeps only a [`Slot`] per key and reads the
/// rest from the log when the key is looked up.
#[derive(Clone, Copy, Debug)]
pub(super) struct Loc {
    pack: u32,
    offset: u64,
    preimage_len: u32,
    record_len: u32,
    hash: [u8; 32],
}

/// What the index keeps per key: the pack, and where the key's entry is in the record log
/// (read again from there on a look-up). A whole [`Loc`] per key, with its 32-byte hash, took
/// ~117 bytes of map per result (a 100 000-node graph keeps one per node); this takes ~60,
/// and the entry read back is checked against the key and still carries the full hash.
///
/// Packed to 4-byte alignment: 12 bytes instead of 16. Its fields are only copied out,
/// never borrowed (which a packed struct does not allow).
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
struct Slot {
    pack: u32,
    /// Offset of the entry in the log file the index has open (`RecordIndex::log_file`).
    entry_at: u64,
}

/// Why a record could not be read.
pub(super) enum ReadError {
    /// The bytes on disk are not what was written (or are gone): a miss, to be rewritten.
    Damaged(String),
    /// Some other I/O error (permissions, say): a miss, nothing is known to be wrong.
    Io(std::io::Error),
}

/// One result to pack: its key, preimage (JSON) and record.
pub(super) struct PackEntry<'a> {
    pub(super) key: CacheKey,
    pub(super) preimage: &'a [u8],
    pub(super) record: &'a [u8],
}

/// A pack being built and the locations of its entries in it (the log names the pack).
pub(super) struct Pack {
    pub(super) bytes: Vec<u8>,
    entries: Vec<(CacheKey, Loc)>,
}

impl Pack {
    pub(super) fn build<'a>(entries: impl IntoIterator<Item = PackEntry<'a>>) -> Pack {
        let mut bytes = Vec::new();
        let mut locs = Vec::new();
        for e in entries {
            let mut h = blake3::Hasher::new();
            h.update(e.preimage);
            h.update(e.record);
            locs.push((
                e.key,
                Loc {
                    pack: 0,
                    offset: bytes.len() as u64,
                    preimage_len: e.preimage.len() as u32,
                    record_len: e.record.len() as u32,
                    hash: *h.finalize().as_bytes(),
                },
            ));
            bytes.extend_from_slice(e.preimage);
            bytes.extend_from_slice(e.record);
        }
        Pack {
            bytes,
            entries: locs,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// cacache's path for content of `sri` (`content-v2/<algo>/<ab>/<cd>/<rest>`).
pub(super) fn content_path(dir: &Path, sri: &Integrity) -> PathBuf {
    let (algo, hex) = sri.to_hex();
    dir.join("content-v2")
        .join(algo.to_string())
        .join(&hex[0..2])
        .join(&hex[2..4])
        .join(&hex[4..])
}

/// The in-memory view of the record log: key → location, kept up to date by reading what
/// was appended since (by this process or another) when a key is not found.
pub(super) struct RecordIndex {
    dir: PathBuf,
    log: PathBuf,
    packs: Vec<Integrity>,
    pack_ids: HashMap<String, u32>,
    map: HashMap<CacheKey, Slot>,
    /// How far the log was read.
    scanned_to: u64,
    /// The log file read (device, inode): another one (a GC's rewrite) is read afresh.
    file_id: Option<(u64, u64)>,
    /// The log file read, kept open: the slots' entry offsets are in this file, even once
    /// the path names another one (until the next refresh sees that and starts afresh).
    log_file: Option<File>,
    loaded: bool,
    /// The last pack read from, kept open.
    open: Option<(u32, File)>,
}

fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

impl RecordIndex {
    pub(super) fn new(dir: &Path) -> Self {
        RecordIndex {
            dir: dir.to_path_buf(),
            log: dir.join(LOG_FILE),
            packs: Vec::new(),
            pack_ids: HashMap::new(),
            map: HashMap::new(),
            scanned_to: 0,
            file_id: None,
            log_file: None,
            loaded: false,
            open: None,
        }
    }

    pub(super) fn log_path(&self) -> &Path {
        &self.log
    }

    fn reset(&mut self) {
        self.packs.clear();
        self.pack_ids.clear();
        self.map.clear();
        self.scanned_to = 0;
        self.file_id = None;
        self.log_file = None;
        self.open = None;
    }

    fn pack_id(&mut self, sri: Integrity) -> u32 {
        let text = sri.to_string();
        if let Some(id) = self.pack_ids.get(&text) {
            return *id;
        }
        let id = self.packs.len() as u32;
        self.packs.push(sri);
        self.pack_ids.insert(text, id);
        id
    }

    /// Reads what was appended to the log since it was last read (all of it the first time,
    /// or when the file was replaced).
    pub(super) fn refresh(&mut self) {
        self.loaded = true;
        let meta = match std::fs::metadata(&self.log) {
            Ok(meta) => meta,
            Err(_) => {
                if self.file_id.is_some() {
                    self.reset();
                }
                return;
            }
        };
        let id = file_id(&meta);
        if self.file_id.is_some_and(|known| known != id) || meta.len() < self.scanned_to {
            self.reset();
        }
        self.file_id = Some(id);
        if meta.len() > self.scanned_to {
            if let Err(e) = self.scan() {
                tracing::warn!(error = %e, log = %self.log.display(), "reading the cache's record log failed");
            }
        }
    }

    fn scan(&mut self) -> std::io::Result<()> {
        let file = match self.log_file.take() {
            Some(file) => file,
            None => File::open(&self.log)?,
        };
        // The file opened may be newer than the one `refresh` looked at (a rewrite in
        // between): the offsets kept must be those of the file kept.
        let id = file_id(&file.metadata()?);
        if self.file_id.is_some_and(|known| known != id) {
            self.reset();
        }
        self.file_id = Some(id);
        let file = self.log_file.insert(file);
        let mut buf = Vec::new();
        file.seek(SeekFrom::Start(self.scanned_to))?;
        file.read_to_end(&mut buf)?;
        let consumed = self.parse(&buf, self.scanned_to);
        self.scanned_to += consumed as u64;
        Ok(())
    }

    /// Parses log batches from `buf`, read from offset `base` of the log; returns how many
    /// bytes were consumed (an incomplete batch at the end, perhaps being written right now,
    /// is left for the next read).
    fn parse(&mut self, buf: &[u8], base: u64) -> usize {
        let next_magic = |from: usize| {
            buf.get(from..)
                .and_then(|rest| rest.windows(MAGIC.len()).position(|w| w == MAGIC))
                .map(|p| from + p)
        };
        let mut pos = 0;
        while pos + HEADER <= buf.len() {
            if &buf[pos..pos + 8] == MAGIC {
                let len = u32::from_le_bytes(buf[pos + 8..pos + 12].try_into().unwrap()) as usize;
                let end = pos + HEADER + len;
                if end > buf.len() {
                    match next_magic(pos + 1) {
                        // A damaged length: skip to the next batch.
                        Some(next) => {
                            pos = next;
                            continue;
                        }
                        // The tail, perhaps still being written.
                        None => return pos,
                    }
                }
                let body = &buf[pos + HEADER..end];
                if blake3::hash(body).as_bytes()[..] == buf[pos + 12..pos + HEADER]
                    && self.apply(body, base + (pos + HEADER) as u64)
                {
                    pos = end;
                    continue;
                }
            }
            // Damaged or torn: resynchronise on the next batch.
            match next_magic(pos + 1) {
                Some(next) => pos = next,
                None => return pos.max(buf.len().saturating_sub(HEADER - 1)),
            }
        }
        pos
    }

    /// Applies one verified batch body, found at offset `body_at` of the log; false if it
    /// does not parse.
    fn apply(&mut self, body: &[u8], body_at: u64) -> bool {
        let Some(sri_len) = body
            .get(..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
        else {
            return false;
        };
        let Some(sri) = body
            .get(2..2 + sri_len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse::<Integrity>().ok())
        else {
            return false;
        };
        let at = 2 + sri_len;
        let Some(count) = body
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
        else {
            return false;
        };
        let entries_at = at + 4;
        let entries = &body[entries_at..];
        if entries.len() != count * ENTRY {
            return false;
        }
        let pack = self.pack_id(sri);
        for (i, e) in entries.chunks_exact(ENTRY).enumerate() {
            let key = CacheKey(e[0..32].try_into().unwrap());
            let entry_at = body_at + (entries_at + i * ENTRY) as u64;
            self.map.insert(key, Slot { pack, entry_at });
        }
        true
    }

    /// The location `slot` points to, read from its entry in the log; `None` if that is not
    /// an entry for `key` (the log was damaged since it was read) or cannot be read.
    fn locate(&mut self, key: &CacheKey, slot: Slot) -> Option<Loc> {
        let file = self.log_file.as_mut()?;
        let mut e = [0u8; ENTRY];
        file.seek(SeekFrom::Start(slot.entry_at))
            .and_then(|_| file.read_exact(&mut e))
            .ok()?;
        (e[0..32] == key.0).then(|| Loc {
            pack: slot.pack,
            offset: u64::from_le_bytes(e[32..40].try_into().unwrap()),
            preimage_len: u32::from_le_bytes(e[40..44].try_into().unwrap()),
            record_len: u32::from_le_bytes(e[44..48].try_into().unwrap()),
            hash: e[48..80].try_into().unwrap(),
        })
    }

    /// Where `key`'s result is, reading the log's new batches if it is not known yet.
    ///
    /// An entry that no longer reads back as `key`'s (the log was damaged since) is
    /// forgotten: a miss, and the result is written again.
    pub(super) fn find(&mut self, key: &CacheKey) -> Option<Loc> {
        let known = if self.loaded {
            self.map.get(key).copied()
        } else {
            None
        };
        let slot = match known {
            Some(slot) => slot,
            None => {
                self.refresh();
                *self.map.get(key)?
            }
        };
        let loc = self.locate(key, slot);
        if loc.is_none() {
            self.map.remove(key);
        }
        loc
    }

    /// Whether `key` is known, without reading the log again (once it was read).
    pub(super) fn known(&mut self, key: &CacheKey) -> bool {
        if !self.loaded {
            self.refresh();
        }
        self.map.contains_key(key)
    }

    /// Forgets a location (its bytes were found damaged: the next read looks again).
    pub(super) fn forget(&mut self, key: &CacheKey) {
        self.map.remove(key);
    }

    /// Every key in the log (read up to now).
    pub(super) fn keys(&mut self) -> Vec<CacheKey> {
        self.refresh();
        self.map.keys().copied().collect()
    }

    /// The packs the log names.
    pub(super) fn packs(&mut self) -> Vec<Integrity> {
        self.refresh();
        let mut used: Vec<u32> = self.map.values().map(|s| s.pack).collect();
        used.sort_unstable();
        used.dedup();
        used.into_iter()
            .map(|i| self.packs[i as usize].clone())
            .collect()
    }

    /// Reads one result's preimage and record, verifying their hash.
    pub(super) fn read(&mut self, loc: Loc) -> Result<(Vec<u8>, Vec<u8>), ReadError> {
        if self.open.as_ref().map(|(id, _)| *id) != Some(loc.pack) {
            let path = content_path(&self.dir, &self.packs[loc.pack as usize]);
            let file = File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ReadError::Damaged("content file missing".into()),
                _ => ReadError::Io(e),
            })?;
            self.open = Some((loc.pack, file));
        }
        let (_, file) = self.open.as_mut().expect("opened above");
        let mut bytes = vec![0u8; loc.preimage_len as usize + loc.record_len as usize];
        let read = file
            .seek(SeekFrom::Start(loc.offset))
            .and_then(|_| file.read_exact(&mut bytes));
        if let Err(e) = read {
            self.open = None;
            return Err(match e.kind() {
                std::io::ErrorKind::UnexpectedEof => ReadError::Damaged("pack truncated".into()),
                _ => ReadError::Io(e),
            });
        }
        if blake3::hash(&bytes).as_bytes() != &loc.hash {
            // Drop the handle: a repair renames a new file over this one.
            self.open = None;
            return Err(ReadError::Damaged(
                "record does not match its hash (blake3)".into(),
            ));
        }
        let record = bytes.split_off(loc.preimage_len as usize);
        Ok((bytes, record))
    }

    /// Appends a batch naming `pack` (stored under `sri`) to the log, and learns its
    /// entries (by reading the log up to its end: where the batch landed is known only
    /// once read, since other processes append too). Returns whether the log file was
    /// created.
    pub(super) fn append(&mut self, sri: Integrity, pack: &Pack) -> std::io::Result<bool> {
        let created = !self.log.exists();
        let batch = encode_batch(&sri, pack);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        file.write_all(&batch)?;
        self.refresh();
        Ok(created)
    }

    /// Replaces the log by one batch naming `pack` (or by nothing), durably: written aside,
    /// fsynced, renamed over the old one. Used by garbage collection.
    pub(super) fn rewrite(&mut self, packed: Option<(Integrity, &Pack)>) -> std::io::Result<()> {
        match packed {
            Some((sri, pack)) => {
                let tmp = self.dir.join(format!("{LOG_FILE}.tmp"));
                let mut file = File::create(&tmp)?;
                file.write_all(&encode_batch(&sri, pack))?;
                file.sync_all()?;
                std::fs::rename(&tmp, &self.log)?;
            }
            None => match std::fs::remove_file(&self.log) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            },
        }
        sync_dir(&self.dir)?;
        self.reset();
        self.refresh();
        Ok(())
    }
}

fn encode_batch(sri: &Integrity, pack: &Pack) -> Vec<u8> {
    let sri = sri.to_string();
    let mut body = Vec::with_capacity(6 + sri.len() + pack.entries.len() * ENTRY);
    body.extend_from_slice(&(sri.len() as u16).to_le_bytes());
    body.extend_from_slice(sri.as_bytes());
    body.extend_from_slice(&(pack.entries.len() as u32).to_le_bytes());
    for (key, loc) in &pack.entries {
        body.extend_from_slice(&key.0);
        body.extend_from_slice(&loc.offset.to_le_bytes());
        body.extend_from_slice(&loc.preimage_len.to_le_bytes());
        body.extend_from_slice(&loc.record_len.to_le_bytes());
        body.extend_from_slice(&loc.hash);
    }
    let mut batch = Vec::with_capacity(HEADER + body.len());
    batch.extend_from_slice(MAGIC);
    batch.extend_from_slice(&(body.len() as u32).to_le_bytes());
    batch.extend_from_slice(blake3::hash(&body).as_bytes());
    batch.extend_from_slice(&body);
    batch
}

/// fsyncs a directory (so the names it holds survive a power loss). A no-op where
/// directories cannot be opened (Windows).
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u8) -> (CacheKey, Vec<u8>, Vec<u8>) {
        (
            CacheKey([i; 32]),
            format!("{{\"p\":{i}}}").into_bytes(),
            vec![i; 10],
        )
    }

    fn append(index: &mut RecordIndex, dir: &Path, items: &[(CacheKey, Vec<u8>, Vec<u8>)]) {
        let pack = Pack::build(items.iter().map(|(key, preimage, record)| PackEntry {
            key: *key,
            preimage,
            record,
        }));
        let sri = cacache::write_hash_sync(dir, &pack.bytes).unwrap();
        index.append(sri, &pack).unwrap();
    }

    #[test]
    fn batches_appended_by_another_handle_and_after_a_torn_tail_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = RecordIndex::new(dir.path());
        let mut reader = RecordIndex::new(dir.path());
        append(&mut writer, dir.path(), &[entry(1), entry(2)]);
        let loc = reader.find(&CacheKey([2; 32])).unwrap();
        assert_eq!(
            reader.read(loc).ok().unwrap(),
            (b"{\"p\":2}".to_vec(), vec![2; 10])
        );
        // A batch cut short by a crash, then more batches after it.
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        log.write_all(&[MAGIC.as_slice(), &[200, 0, 0, 0], &[7; 40]].concat())
            .unwrap();
        append(&mut writer, dir.path(), &[entry(3)]);
        append(&mut writer, dir.path(), &[entry(4)]);
        for i in 1..=4 {
            let loc = reader.find(&CacheKey([i; 32])).unwrap();
            assert_eq!(reader.read(loc).ok().unwrap().1, vec![i; 10]);
        }
        assert!(reader.find(&CacheKey([9; 32])).is_none());
        // A fresh handle reads the whole log the same way.
        let mut fresh = RecordIndex::new(dir.path());
        assert_eq!(fresh.keys().len(), 4);
    }

    #[test]
    fn an_entry_damaged_after_the_log_was_read_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = RecordIndex::new(dir.path());
        append(&mut index, dir.path(), &[entry(1), entry(2)]);
        assert!(index.known(&CacheKey([2; 32])));
        // Entry 2's key changes on disk (in place: the file the index has open).
        let path = dir.path().join(LOG_FILE);
        let log = std::fs::read(&path).unwrap();
        let at = log.windows(32).position(|w| w == [2; 32]).unwrap();
        let mut file = OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(at as u64)).unwrap();
        file.write_all(&[3; 32]).unwrap();
        assert!(index.find(&CacheKey([2; 32])).is_none());
        assert!(!index.known(&CacheKey([2; 32])), "forgotten: written again");
        let loc = index.find(&CacheKey([1; 32])).unwrap();
        assert_eq!(index.read(loc).ok().unwrap().1, vec![1; 10]);
    }

    #[test]
    fn a_damaged_record_is_reported_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = RecordIndex::new(dir.path());
        append(&mut index, dir.path(), &[entry(1), entry(2)]);
        let sri = index.packs()[0].clone();
        let path = content_path(dir.path(), &sri);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1; // in entry 2's record
        std::fs::write(&path, bytes).unwrap();
        let mut fresh = RecordIndex::new(dir.path());
        let ok = fresh.find(&CacheKey([1; 32])).unwrap();
        assert!(fresh.read(ok).is_ok(), "the other record is intact");
        let bad = fresh.find(&CacheKey([2; 32])).unwrap();
        assert!(matches!(fresh.read(bad), Err(ReadError::Damaged(_))));
        std::fs::remove_file(&path).unwrap();
        let mut fresh = RecordIndex::new(dir.path());
        let gone = fresh.find(&CacheKey([1; 32])).unwrap();
        assert!(matches!(fresh.read(gone), Err(ReadError::Damaged(_))));
    }
}
