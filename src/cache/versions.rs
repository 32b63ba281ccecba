//! The data version of each table, as last announced on the
//! `widget_data_changes` channel.
//!
//! A table's version is the change number of the latest write committed to
//! it, in commit order (every listener hears commits in the same order, so
//! every instance agrees). Until a table's first write is heard, its
//! version is the base marker of the listening session: a change number
//! drawn for the session alone, so no other session (of this instance or
//! another) shares it. A lost connection takes a new base and forgets
//! everything, since changes may have been missed meanwhile, and entries
//! of the old session must never be reached again.

use std::collections::HashMap;
use std::sync::RwLock;

/// The channel the change triggers announce on.
pub const CHANNEL: &str = "widget_data_changes";

#[derive(Default)]
pub struct Versions {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `None` until listening has started: nothing may be cached then.
    base: Option<String>,
    /// The base before listening stopped, for stale answers only.
    last_base: Option<String>,
    tables: HashMap<String, String>,
    /// The digest of every role's permissions (`schema::permissions`),
    /// as of the last schema load.
    permissions: String,
}

impl Versions {
    /// Listening (re)started with `session`, a change number drawn for it
    /// alone: every table's version becomes a marker no change and no
    /// other session can carry.
    pub fn reset(&self, session: i64) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.base = Some(format!("base:{session}"));
        inner.last_base = inner.base.clone();
        inner.tables.clear();
    }

    /// Whether changes are being heard (and so answers may be cached).
    pub fn listening(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .base
            .is_some()
    }

    /// Listening stopped: until it resumes, nothing is cached.
    pub fn suspend(&self) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).base = None;
    }

    /// Permissions changed (or were read afresh): keys made under other
    /// permissions become unreachable.
    pub fn set_permissions(&self, digest: String) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .permissions = digest;
    }

    /// Applies a `schema.table:n` payload; returns the table it changed.
    pub fn apply(&self, payload: &str) -> Option<String> {
        let (table, number) = payload.rsplit_once(':')?;
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.tables.insert(table.to_owned(), number.to_owned());
        Some(table.to_owned())
    }

    /// The versions last heard for `tables`, even while not listening: for
    /// finding an entry to serve stale, never a fresh one.
    pub fn last_known<'a>(
        &self,
        tables: impl IntoIterator<Item = &'a str>,
    ) -> Option<(Vec<(String, String)>, String)> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let versions = inner.versions(inner.last_base.as_ref()?, tables)?;
        Some((versions, inner.permissions.clone()))
    }

    /// Calls `f` with `(table, version)` for each of `tables` and the
    /// permissions digest, without copying them (the cache-hit path);
    /// `None` when changes are not being heard.
    pub fn with<R>(
        &self,
        tables: &[String],
        f: impl FnOnce(&[(&str, &str)], &str) -> R,
    ) -> Option<R> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let base = inner.base.as_deref()?;
        let pairs: Vec<(&str, &str)> = tables
            .iter()
            .map(|t| (t.as_str(), inner.tables.get(t).map_or(base, String::as_str)))
            .collect();
        Some(f(&pairs, &inner.permissions))
    }

    /// Every change heard this session, `(table, version)`, and the
    /// permissions digest: what the purge compares stored rows with.
    pub fn heard(&self) -> (Vec<(String, String)>, String) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let tables = inner
            .tables
            .iter()
            .map(|(t, v)| (t.clone(), v.clone()))
            .collect();
        (tables, inner.permissions.clone())
    }

    /// The versions of `tables` (`schema.table`), or `None` when changes
    /// are not being heard.
    pub fn of<'a>(
        &self,
        tables: impl IntoIterator<Item = &'a str>,
    ) -> Option<Vec<(String, String)>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.versions(inner.base.as_ref()?, tables)
    }
}

impl Inner {
    fn versions<'a>(
        &self,
        base: &str,
        tables: impl IntoIterator<Item = &'a str>,
    ) -> Option<Vec<(String, String)>> {
        let version = |t: &str| self.tables.get(t).map_or(base, String::as_str).to_owned();
        Some(
            tables
                .into_iter()
                .map(|t| (t.to_owned(), version(t)))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_versioned_before_listening_starts() {
        let v = Versions::default();
        assert_eq!(v.of(["public.servers"]), None);
        v.reset(7);
        assert_eq!(v.of(["public.servers"]).unwrap()[0].1, "base:7");
    }

    #[test]
    fn every_announced_change_gives_a_new_version_even_out_of_number_order() {
        let v = Versions::default();
        v.reset(10);
        let at = |v: &Versions| v.of(["public.servers"]).unwrap()[0].1.clone();
        let before = at(&v);
        assert_eq!(
            v.apply("public.servers:12").as_deref(),
            Some("public.servers")
        );
        let after_12 = at(&v);
        // A transaction that drew 11 commits after the one that drew 12.
        v.apply("public.servers:11");
        let after_11 = at(&v);
        assert!(before != after_12 && after_12 != after_11 && before != after_11);
        // Other tables keep theirs.
        assert_eq!(v.of(["public.notes"]).unwrap()[0].1, "base:10");
        v.suspend();
        assert_eq!(v.of(["public.servers"]), None);
    }
}
