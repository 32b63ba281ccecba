//! The in-process level: entries by key, bounded in bytes, least recently
//! used evicted first. Expired entries stay (until evicted) so they can be
//! served stale when the database cannot answer.

use super::Entry;
use super::key::Key;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

struct Slot {
    entry: Arc<Entry>,
    /// The tick of its last use.
    used: u64,
    /// Its key in `recency`: the tick it was last indexed at, which a hit
    /// does not move (eviction catches up).
    indexed: u64,
}

pub struct Memory {
    capacity_bytes: usize,
    used_bytes: usize,
    tick: u64,
    entries: HashMap<Key, Slot>,
    /// Indexed tick -> key, oldest first.
    recency: BTreeMap<u64, Key>,
    pub evictions: u64,
}

fn size(entry: &Entry) -> usize {
    entry.weight()
}

impl Memory {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity_bytes,
            used_bytes: 0,
            tick: 0,
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            evictions: 0,
        }
    }

    /// The entry for `key`, marked used. O(1) and allocation-free: the
    /// recency index is brought up to date only when something is evicted.
    pub fn get(&mut self, key: &Key) -> Option<Arc<Entry>> {
        self.tick += 1;
        let slot = self.entries.get_mut(key)?;
        slot.used = self.tick;
        Some(Arc::clone(&slot.entry))
    }

    pub fn insert(&mut self, key: Key, entry: Arc<Entry>) {
        let bytes = size(&entry);
        if bytes > self.capacity_bytes {
            return; // larger than the whole level: not worth keeping
        }
        self.remove(&key);
        while self.used_bytes + bytes > self.capacity_bytes && self.evict_one() {}
        self.tick += 1;
        self.recency.insert(self.tick, key.clone());
        self.entries.insert(
            key,
            Slot {
                entry,
                used: self.tick,
                indexed: self.tick,
            },
        );
        self.used_bytes += bytes;
    }

    pub fn remove(&mut self, key: &Key) {
        if let Some(slot) = self.entries.remove(key) {
            self.recency.remove(&slot.indexed);
            self.used_bytes -= size(&slot.entry);
        }
    }

    /// Evicts the least recently used entry; false when empty.
    fn evict_one(&mut self) -> bool {
        while let Some((tick, oldest)) = self.recency.pop_first() {
            let Some(slot) = self.entries.get_mut(&oldest) else {
                continue;
            };
            if slot.used != tick {
                // Used since it was indexed: index it at its last use.
                slot.indexed = slot.used;
                self.recency.insert(slot.used, oldest);
                continue;
            }
            if let Some(slot) = self.entries.remove(&oldest) {
                self.used_bytes -= size(&slot.entry);
                self.evictions += 1;
            }
            return true;
        }
        false
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.used_bytes
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
        let mut m = Memory::new(3 * one);
        for n in 0..3 {
            m.insert(key(n), entry());
        }
        // 0 is used, so 1 is now the least recently used.
        assert!(m.get(&key(0)).is_some());
        m.insert(key(3), entry());
        assert!(m.get(&key(1)).is_none(), "the least recently used went");
        assert!(m.get(&key(0)).is_some() && m.get(&key(2)).is_some());
        assert_eq!((m.len(), m.bytes(), m.evictions), (3, 3 * one, 1));
        // Replacing an entry many times leaves no trace in the index.
        for _ in 0..100 {
            m.insert(key(2), entry());
        }
        assert_eq!(m.recency.len(), m.len());
    }
}
