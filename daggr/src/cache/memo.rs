//! The in-memory memo in front of the disk, and its memory limit.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Cache, CacheKey};
use crate::value::Value;

/// The default bound of the in-memory memo.
pub const DEFAULT_MEMO_BYTES: usize = 256 * 1024 * 1024;

/// The in-memory memo in front of the disk: bounded by the encoded size of what it holds,
/// evicting the oldest entries first, so a long-running process does not grow without end.
///
/// The order of insertion is kept as a stamp in each entry rather than as a queue of keys
/// beside them (32 bytes more per entry, for every result a big graph computes): the queue
/// of the oldest keys is made only once the memo is over its limit, from the stamps.
pub(super) struct Memo {
    entries: HashMap<CacheKey, Entry>,
    /// The stamp the next new entry gets: stamps grow with insertion order.
    next_stamp: u32,
    /// Made when the memo goes over its limit: the entries there were then as
    /// `(stamp, key)`, newest first, so `pop` gives the oldest. Whatever was inserted since
    /// is newer than all of them; keys removed meanwhile are skipped.
    oldest: Vec<(u32, CacheKey)>,
    bytes: usize,
    limit: usize,
}

struct Entry {
    values: Arc<[Value]>,
    /// What the entry counts for in `bytes` (an entry of 4 GiB or more counts as 4 GiB).
    size: u32,
    stamp: u32,
}

impl Memo {
    pub(super) fn new(limit: usize) -> Self {
        Memo {
            entries: HashMap::new(),
            next_stamp: 0,
            oldest: Vec::new(),
            bytes: 0,
            limit,
        }
    }

    pub(super) fn get(&self, key: &CacheKey) -> Option<Arc<[Value]>> {
        self.entries.get(key).map(|e| e.values.clone())
    }

    pub(super) fn insert(&mut self, key: CacheKey, values: Arc<[Value]>) {
        // Encodings plus media bytes, plus a fixed overhead per entry.
        let size = 128
            + values
                .iter()
                .map(|v| v.encoded().len() + v.blobs().iter().map(|b| b.bytes.len()).sum::<usize>())
                .sum::<usize>();
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        if let Some(entry) = self.entries.get_mut(&key) {
            // Replaced in place: it keeps its age.
            self.bytes -= entry.size as usize;
            entry.values = values;
            entry.size = size;
        } else {
            if self.next_stamp == u32::MAX {
                self.restamp();
            }
            let stamp = self.next_stamp;
            self.next_stamp += 1;
            self.entries.insert(
                key,
                Entry {
                    values,
                    size,
                    stamp,
                },
            );
        }
        self.bytes += size as usize;
        self.shrink();
    }

    pub(super) fn remove(&mut self, key: &CacheKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.size as usize;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.oldest = Vec::new();
        self.bytes = 0;
    }

    fn shrink(&mut self) {
        while self.bytes > self.limit {
            let Some((stamp, key)) = self.oldest.pop() else {
                if self.entries.is_empty() {
                    break;
                }
                self.oldest = self.entries.iter().map(|(k, e)| (e.stamp, *k)).collect();
                self.oldest
                    .sort_unstable_by_key(|(stamp, _)| std::cmp::Reverse(*stamp));
                continue;
            };
            // A key removed since (and perhaps inserted again, then younger) is skipped.
            if self.entries.get(&key).is_some_and(|e| e.stamp == stamp) {
                self.remove(&key);
            }
        }
        if self.oldest.is_empty() && self.oldest.capacity() > 0 {
            self.oldest = Vec::new();
        }
    }

    /// Numbers the entries again from 0, in the same order (after 2^32 insertions).
    fn restamp(&mut self) {
        let mut order: Vec<(u32, CacheKey)> =
            self.entries.iter().map(|(k, e)| (e.stamp, *k)).collect();
        order.sort_unstable_by_key(|(stamp, _)| *stamp);
        for (stamp, (_, key)) in order.into_iter().enumerate() {
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.stamp = stamp as u32;
            }
        }
        self.next_stamp = self.entries.len() as u32;
        self.oldest = Vec::new();
    }
}

impl Cache {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::preimage;
    use crate::value::PortType;

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
    fn a_result_stored_again_after_being_forgotten_is_young_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let values = || -> Arc<[Value]> { vec![Value::new(vec![7u8; 500]).unwrap()].into() };
        let store = |i: u8| cache.store(preimage(i).key(), &preimage(i), values(), false);
        store(0);
        let entry = cache.memory_bytes();
        // Room for ten results.
        cache.set_memory_limit(10 * entry);
        for i in 1..10 {
            store(i);
        }
        cache.forget_in_memory(&preimage(0).key());
        store(0);
        store(10); // one too many: the oldest goes, and that is 1, not 0
        let types = [PortType::of::<Vec<u8>>()];
        let held = |i: u8| cache.lookup(&preimage(i).key(), &types, true).is_some();
        assert_eq!(cache.memory_bytes(), 10 * entry);
        assert!(held(0), "stored again after 9: younger than 1 to 9");
        assert!(!held(1), "the oldest went");
        assert!((2..=10).all(held));
    }
}
