//! The in-process level: entries by key, bounded in bytes, least recently
//! used evicted first (moka, with its LRU policy and a weigher). Expired
//! entries stay (until evicted) so they can be served stale when the
//! database cannot answer: moka knows nothing of lifetimes, the callers
//! check `expires_at`.
//!
//! moka applies its bookkeeping (recency, sizes, evictions) in batches.
//! An insert runs it at once, so the bound holds when `insert` returns,
//! not some writes later; a hit only queues its read, as moka does.

use super::Entry;
use super::key::Key;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub struct Memory {
    capacity_bytes: usize,
    entries: moka::sync::Cache<Key, Arc<Entry>>,
    /// Entries evicted to stay within the bound (not replaced or removed).
    evictions: Arc<AtomicU64>,
}

fn size(entry: &Entry) -> usize {
    entry.weight()
}

impl Memory {
    pub fn new(capacity_bytes: usize) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&evictions);
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes as u64)
            .weigher(|_, entry: &Arc<Entry>| u32::try_from(size(entry)).unwrap_or(u32::MAX))
            .eviction_policy(EvictionPolicy::lru())
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    counted.fetch_add(1, Relaxed);
                }
            })
            .build();
        Self {
            capacity_bytes,
            entries,
            evictions,
        }
    }

    /// The entry for `key`, marked used.
    pub fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    pub fn insert(&self, key: Key, entry: Arc<Entry>) {
        if size(&entry) > self.capacity_bytes {
            return; // larger than the whole level: not worth keeping
        }
        self.entries.insert(key, entry);
        // Evict now: a flood of large misses must not outrun the bound.
        self.entries.run_pending_tasks();
    }

    pub fn remove(&self, key: &Key) {
        self.entries.invalidate(key);
    }

    /// Brings the figures below up to date (moka counts in batches).
    pub fn sync(&self) {
        self.entries.run_pending_tasks();
    }

    pub fn len(&self) -> usize {
        usize::try_from(self.entries.entry_count()).unwrap_or(usize::MAX)
    }

    pub fn bytes(&self) -> usize {
        usize::try_from(self.entries.weighted_size()).unwrap_or(usize::MAX)
    }

    pub fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn entry() -> Arc<Entry> {
        let now = chrono::Utc::now();
        Arc::new(Entry::new(
            RawValue::from_string("[1]".into()).unwrap(),
            now,
            now,
        ))
    }

    fn key(n: u8) -> Key {
        Key::parse(&format!("{n:02x}").repeat(32)).unwrap()
    }

    #[test]
    fn the_least_recently_used_entry_goes_first_and_bytes_stay_bounded() {
        let one = size(&entry());
        let m = Memory::new(3 * one);
        for n in 0..3 {
            m.insert(key(n), entry());
        }
        // 0 is used, so 1 is now the least recently used.
        assert!(m.get(&key(0)).is_some());
        m.insert(key(3), entry());
        assert!(m.get(&key(1)).is_none(), "the least recently used went");
        assert!(m.get(&key(0)).is_some() && m.get(&key(2)).is_some());
        m.sync();
        assert_eq!((m.len(), m.bytes(), m.evictions()), (3, 3 * one, 1));
        // Replacing an entry many times leaves no trace in the figures.
        for _ in 0..100 {
            m.insert(key(2), entry());
        }
        m.sync();
        assert_eq!((m.len(), m.bytes(), m.evictions()), (3, 3 * one, 1));
    }

    #[test]
    fn an_entry_larger_than_the_whole_level_is_not_kept_nor_counted_as_an_eviction() {
        let one = size(&entry());
        let m = Memory::new(one - 1);
        m.insert(key(0), entry());
        m.sync();
        assert!(m.get(&key(0)).is_none());
        assert_eq!((m.len(), m.bytes(), m.evictions()), (0, 0, 0));
    }
}
