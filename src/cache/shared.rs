//! The level shared by every instance in Redis (`REDIS_URL`), between
//! memory and the cache table.
//!
//! Keys are the cache's own (`widget-data:e:<key>`): a key names a plan,
//! the data versions and the caller's scope, so an entry is exact for as
//! long as it lives and none is ever deleted; each lives as long as it
//! would in memory, and at most `CACHE_REDIS_MAX_TTL_SECS` (`SET … EX`).
//! Values are the rendered rows with their timestamps:
//! `cached_at` and `expires_at` in microseconds (two little-endian i64),
//! then the rows' JSON.
//!
//! Redis being slow or gone costs nothing but this level: the client
//! answers `None` after its short timeout, and at once while its breaker
//! is open (`crate::shared`).

use super::Entry;
use super::key::Key;
use crate::shared::{Redis, RedisFigures};
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use std::sync::Arc;

/// How long a warming claim holds in Redis.
const CLAIM_SECS: u64 = 60;

#[derive(Clone)]
pub struct Level {
    redis: Arc<Redis>,
    max_ttl_secs: u64,
}

impl Level {
    pub fn new(redis: Arc<Redis>, max_ttl_secs: u64) -> Self {
        Self {
            redis,
            max_ttl_secs,
        }
    }

    /// The unexpired entry for `key`, if any instance stored one.
    pub async fn get(&self, key: &Key) -> Option<Entry> {
        let bytes = self.redis.get(&entry_key(key)).await?;
        decode(&bytes).filter(|e| e.expires_at > Utc::now())
    }

    /// Stores `entry` under `key` for the rest of its lifetime (at most
    /// the level's own); a failure is counted by the client, not returned.
    pub async fn put(&self, key: &Key, entry: &Entry) {
        let secs = (entry.expires_at - Utc::now()).num_seconds();
        let Some(ttl) = u64::try_from(secs).ok().filter(|&s| s > 0) else {
            return; // expiring this second: not worth a round trip
        };
        let ttl = ttl.min(self.max_ttl_secs);
        self.redis
            .set_ex(&entry_key(key), &encode(entry), ttl)
            .await;
    }

    /// Claims the warming of `key`: `None` when Redis cannot answer.
    pub async fn claim(&self, key: &Key) -> Option<bool> {
        self.redis
            .claim(&crate::shared::key("warm", &key.to_string()), CLAIM_SECS)
            .await
    }

    pub fn figures(&self) -> RedisFigures {
        self.redis.figures()
    }
}

fn entry_key(key: &Key) -> String {
    crate::shared::key("e", &key.to_string())
}

fn encode(entry: &Entry) -> Vec<u8> {
    let data = entry.data.get().as_bytes();
    let mut out = Vec::with_capacity(16 + data.len());
    out.extend_from_slice(&entry.cached_at.timestamp_micros().to_le_bytes());
    out.extend_from_slice(&entry.expires_at.timestamp_micros().to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// `None` for anything not written by [`encode`] (then it is a miss).
fn decode(bytes: &[u8]) -> Option<Entry> {
    let micros = |at: &[u8]| -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(i64::from_le_bytes(at.try_into().ok()?))
    };
    let cached_at = micros(bytes.get(..8)?)?;
    let expires_at = micros(bytes.get(8..16)?)?;
    let data = String::from_utf8(bytes.get(16..)?.to_vec()).ok()?;
    let data = RawValue::from_string(data).ok()?;
    Some(Entry::new(data, cached_at, expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_it_was_stored_and_anything_else_is_a_miss() {
        let now = Utc::now();
        let entry = Entry::new(
            RawValue::from_string(r#"[{"value":1}]"#.into()).unwrap(),
            now,
            now + chrono::Duration::seconds(300),
        );
        let back = decode(&encode(&entry)).unwrap();
        assert_eq!(back.data.get(), entry.data.get());
        assert_eq!(
            (back.cached_at, back.expires_at),
            (entry.cached_at, entry.expires_at)
        );
        assert_eq!(back.etag, entry.etag, "the same answer, the same tag");
        let mut broken = encode(&entry);
        broken.truncate(20);
        assert!(decode(&broken).is_none());
        assert!(decode(b"short").is_none());
    }
}
