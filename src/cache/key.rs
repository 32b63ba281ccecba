//! The cache key. Pure.
//!
//! A key is the SHA-256 of four parts, so that an entry is only ever
//! served for the same question about the same data to a caller allowed
//! the same answer:
//!
//! 1. **the query**: the validated plan's canonical form (not the raw JSON:
//!    two spellings of one query are one entry), filters already merged,
//!    and its lifetime (a widget's new `refresh_interval` is a new entry);
//! 2. **the data versions** of every table it reads: the last change number
//!    announced for each (`migrations/0004`, `0006`, `watch`), so any committed write makes
//!    new keys and old entries unreachable;
//! 3. **the permissions in force**: a digest of every privilege, RLS
//!    switch, policy and role membership (`schema::permissions`), read at
//!    every schema reload, which DDL of those kinds triggers; so a REVOKE
//!    or a dropped policy makes every older entry unreachable at once;
//! 4. **the caller's scope**: the role (GRANTs differ per role), plus the
//!    user's identifying claims whenever row-level security can make the
//!    answer differ per user: a table read has RLS enabled and the role does
//!    not bypass it. Claims that only change with token refresh (`exp`,
//!    `iat`, `nbf`, `jti`) are left out, so a refreshed token keeps its
//!    entries.

use crate::auth::{Principal, Role};
use crate::plan::QueryPlan;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;

/// Claims that change with every token refresh without changing who the
/// caller is.
const VOLATILE_CLAIMS: &[&str] = &["exp", "iat", "nbf", "jti"];

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// Parses the hex form (`Display`), as other instances announce it.
    pub fn parse(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Key(bytes))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

/// Whether the answer may differ between users of one role.
pub fn per_user(plan: &QueryPlan, principal: &Principal) -> bool {
    plan.reads_rls_table() && principal.role != Role::ServiceRole
}

/// `versions` are `(table, version)` for every table the plan reads.
pub fn key(
    plan: &QueryPlan,
    ttl_secs: u64,
    versions: &[(&str, &str)],
    permissions: &str,
    principal: &Principal,
) -> Key {
    let mut h = Sha256::new();
    // Each part is length-prefixed so no two inputs run together.
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(b"widget-data cache key v1");
    part(plan.canonical());
    part(&ttl_secs.to_le_bytes());
    for (table, version) in versions {
        part(table.as_bytes());
        part(version.as_bytes());
    }
    part(permissions.as_bytes());
    part(principal.role.as_str().as_bytes());
    if per_user(plan, principal) {
        part(identity(principal).as_bytes());
    }
    Key(h.finalize().into())
}

/// Who the caller is: the claims, less those that change with every token
/// refresh. serde_json's map is ordered by key, so this is canonical.
fn identity(principal: &Principal) -> String {
    let mut claims = principal.claims.clone();
    if let Value::Object(map) = &mut claims {
        for name in VOLATILE_CLAIMS {
            map.remove(*name);
        }
    }
    claims.to_string()
}

/// The caller's whole scope, role and identity, as one string.
pub fn scope(principal: &Principal) -> String {
    format!("{}:{}", principal.role.as_str(), identity(principal))
}
