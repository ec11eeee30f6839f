//! The in-memory memo in front of the disk, and its memory limit.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{Cache, CacheKey};
use crate::value::Value;

/// The default bound of the in-memory memo.
pub const DEFAULT_MEMO_BYTES: usize = 256 * 1024 * 1024;

/// The in-memory memo in front of the disk: bounded by the encoded size of what it holds,
/// evicting the oldest entries first, so a long-running process does not grow without end.
pub(super) struct Memo {
    entries: HashMap<CacheKey, (Arc<[Value]>, usize)>,
    order: VecDeque<CacheKey>,
    bytes: usize,
    limit: usize,
}

impl Memo {
    pub(super) fn new(limit: usize) -> Self {
        Memo {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    pub(super) fn get(&self, key: &CacheKey) -> Option<Arc<[Value]>> {
        self.entries.get(key).map(|(v, _)| v.clone())
    }

    pub(super) fn insert(&mut self, key: CacheKey, values: Arc<[Value]>) {
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

    pub(super) fn remove(&mut self, key: &CacheKey) {
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
}
