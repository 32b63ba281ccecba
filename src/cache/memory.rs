//! The in-process level: entries by key, bounded in bytes, least recently
//! used evicted first. Expired entries stay (until evicted) so they can be
//! served stale when the database cannot answer.

use super::Entry;
use super::key::Key;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Bookkeeping bytes counted per entry on top of its data.
const OVERHEAD_BYTES: usize = 160;

pub struct Memory {
    capacity_bytes: usize,
    used_bytes: usize,
    tick: u64,
    entries: HashMap<Key, (Arc<Entry>, u64)>,
    /// tick of last use -> key, oldest first
    recency: BTreeMap<u64, Key>,
    pub evictions: u64,
}

fn size(entry: &Entry) -> usize {
    entry.data.get().len() + OVERHEAD_BYTES
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

    pub fn get(&mut self, key: &Key) -> Option<Arc<Entry>> {
        self.tick += 1;
        let tick = self.tick;
        let (entry, last) = self.entries.get_mut(key)?;
        self.recency.remove(last);
        *last = tick;
        self.recency.insert(tick, key.clone());
        Some(Arc::clone(entry))
    }

    pub fn insert(&mut self, key: Key, entry: Arc<Entry>) {
        let bytes = size(&entry);
        if bytes > self.capacity_bytes {
            return; // larger than the whole level: not worth keeping
        }
        self.remove(&key);
        while self.used_bytes + bytes > self.capacity_bytes {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            if let Some((e, _)) = self.entries.remove(&oldest) {
                self.used_bytes -= size(&e);
                self.evictions += 1;
            }
        }
        self.tick += 1;
        self.recency.insert(self.tick, key.clone());
        self.entries.insert(key, (entry, self.tick));
        self.used_bytes += bytes;
    }

    pub fn remove(&mut self, key: &Key) {
        if let Some((e, tick)) = self.entries.remove(key) {
            self.recency.remove(&tick);
            self.used_bytes -= size(&e);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.used_bytes
    }
}
