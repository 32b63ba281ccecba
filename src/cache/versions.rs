//! The data version of each table: what every cache key is made of.
//!
//! A table's version lives in PostgreSQL (`migrations/0012`): every write
//! draws a number from the table's own sequence, and the version is
//! `<sequence oid>.<last number drawn>`. Every instance reads the same
//! version for the same data, so an instance started later, or one that
//! reconnected, reaches the entries others stored for unchanged data.
//!
//! Reading it costs a round trip, so an instance keeps a table's version
//! in memory while it can vouch for it: from a read made while it
//! *watches* the table (`watch`) until it hears the table's next change.
//! The hit path reads only this memory.
//!
//! Why a key made of these versions is exact. Read `V` while watching,
//! then wait out the writes in flight (the barrier), then query:
//!
//! * A write that drew a number up to `V` took its writer lock before
//!   drawing it, so before the read: it has committed before the barrier
//!   ends, and the query's snapshot, taken after, holds it.
//! * A write that draws a number past `V` changes the version every later
//!   reader reads; and since it tests for watchers after drawing, so after
//!   the watch began, it is announced, and this instance stops vouching
//!   for `V` when it hears it.
//!
//! So whoever reads `V` (from the database, or from memory while it still
//! vouches) sees data that holds every write up to `V` and none after:
//! the data the entry stored under `V` was computed from, give or take
//! writes that were in flight at the time. The one window left is the
//! notification's own delivery, between a write's commit and its being
//! heard, as before.
//!
//! Alongside each version the instance keeps the primary's WAL position
//! read after the barrier: a replica that has replayed it holds every
//! write up to the version, so its answer may be stored under the key.

use std::collections::HashMap;
use std::sync::RwLock;

/// The channel the change triggers announce on.
pub const CHANNEL: &str = "widget_data_changes";

/// A `schema.table` name, as the versions and notifications spell it.
pub type TableName = String;

#[derive(Default)]
pub struct Versions {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// False until listening starts and while it is interrupted: nothing
    /// may be cached then.
    listening: bool,
    /// Tables watched on the listening session now.
    watched: HashMap<TableName, Watched>,
    /// The version each table last had while vouched for: for finding an
    /// entry to serve when the database cannot answer, never a fresh one.
    last_known: HashMap<TableName, String>,
    /// The highest change number heard for each table: every version
    /// numbered below it is unreachable for good.
    heard: HashMap<TableName, u64>,
    /// The digest of every role's permissions (`schema::permissions`),
    /// as of the last schema load.
    permissions: String,
}

/// A table watched on the listening session.
#[derive(Debug, Clone)]
pub struct Watched {
    pub oid: i32,
    /// Tells this watch from an earlier one of the same table.
    pub generation: u64,
    /// Its version, once read under this watch; `None` until then.
    pub current: Option<Current>,
}

/// A version this instance vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub version: String,
    /// The primary's WAL insert position read after the version's writes
    /// had all ended.
    pub lsn: u64,
}

/// What the versions say about a set of tables.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<R> {
    /// Every table's version is vouched for: the key can be made now.
    Known(R),
    /// Some table's version must be read first ([`Versions::unsettled`]).
    Unknown,
    /// Changes are not being heard: nothing may be cached.
    Deaf,
}

impl Versions {
    /// Listening (re)started on a new session: the old session's watches
    /// ended with it, and changes may have been missed meanwhile.
    pub fn listening(&self) {
        let mut inner = self.write();
        inner.listening = true;
        inner.watched.clear();
    }

    /// Whether changes are being heard (and so answers may be cached).
    pub fn is_listening(&self) -> bool {
        self.read().listening
    }

    /// Listening stopped: until it resumes, nothing is cached.
    pub fn suspend(&self) {
        let mut inner = self.write();
        inner.listening = false;
        inner.watched.clear();
    }

    /// Permissions changed (or were read afresh): keys made under other
    /// permissions become unreachable.
    pub fn set_permissions(&self, digest: String) {
        self.write().permissions = digest;
    }

    /// The listening session now watches `table` (its lock is held).
    pub fn watching(&self, table: TableName, oid: i32, generation: u64) {
        self.write().watched.entry(table).or_insert(Watched {
            oid,
            generation,
            current: None,
        });
    }

    pub fn is_watched(&self, table: &str) -> bool {
        self.read().watched.contains_key(table)
    }

    /// How many tables are watched now.
    pub fn watched(&self) -> usize {
        self.read().watched.len()
    }

    /// A change to `table` was heard (a `schema.table:n` payload names
    /// it): its version is no longer vouched for. Returns the table, and
    /// the oid whose watch to let go of when it was watched.
    pub fn changed(&self, payload: &str) -> Option<(TableName, Option<i32>)> {
        let (table, number) = payload.rsplit_once(':')?;
        let mut inner = self.write();
        inner.last_known.remove(table);
        if let Ok(number) = number.parse::<u64>() {
            let heard = inner.heard.entry(table.to_owned()).or_default();
            *heard = (*heard).max(number);
        }
        let oid = inner.watched.remove(table).map(|w| w.oid);
        Some((table.to_owned(), oid))
    }

    /// Of `tables`, those watched whose version is not read yet, as
    /// `(table, oid, generation)`; `None` when one of them is not watched.
    pub fn unsettled(&self, tables: &[TableName]) -> Option<Vec<(TableName, i32, u64)>> {
        let inner = self.read();
        let mut unsettled = Vec::new();
        for table in tables {
            let w = inner.watched.get(table)?;
            if w.current.is_none() {
                unsettled.push((table.clone(), w.oid, w.generation));
            }
        }
        Some(unsettled)
    }

    /// Records `current` as `table`'s version, read under the watch of
    /// `generation`; false when that watch has ended meanwhile (a change
    /// was heard: the version read may already be out of date).
    pub fn settle(&self, table: &str, generation: u64, current: Current) -> bool {
        let mut inner = self.write();
        let Some(w) = inner.watched.get_mut(table) else {
            return false;
        };
        if w.generation != generation {
            return false;
        }
        let version = current.version.clone();
        w.current = Some(current);
        inner.last_known.insert(table.to_owned(), version);
        true
    }

    /// Calls `f` with `(table, version)` for each of `tables` and the
    /// permissions digest, without copying them (the cache-hit path).
    pub fn with<R>(
        &self,
        tables: &[String],
        f: impl FnOnce(&[(&str, &str)], &str) -> R,
    ) -> Lookup<R> {
        let inner = self.read();
        if !inner.listening {
            return Lookup::Deaf;
        }
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(tables.len());
        for t in tables {
            match inner.watched.get(t).and_then(|w| w.current.as_ref()) {
                Some(c) => pairs.push((t.as_str(), c.version.as_str())),
                None => return Lookup::Unknown,
            }
        }
        Lookup::Known(f(&pairs, &inner.permissions))
    }

    /// The WAL position a replica must have replayed to answer for
    /// `tables` at their current versions; `None` unless all are known.
    pub fn lsn(&self, tables: &[String]) -> Option<u64> {
        let inner = self.read();
        tables.iter().try_fold(0, |lsn, t| {
            let current = inner.watched.get(t)?.current.as_ref()?;
            Some(lsn.max(current.lsn))
        })
    }

    /// The versions `tables` last had while vouched for, and the
    /// permissions digest: for finding an entry to serve when the database
    /// cannot answer, never a fresh one. `None` when one is not known.
    pub fn last_known<'a>(
        &self,
        tables: impl IntoIterator<Item = &'a str>,
    ) -> Option<(Vec<(String, String)>, String)> {
        let inner = self.read();
        let versions = tables
            .into_iter()
            .map(|t| Some((t.to_owned(), inner.last_known.get(t)?.clone())))
            .collect::<Option<Vec<_>>>()?;
        Some((versions, inner.permissions.clone()))
    }

    /// The highest change number heard for each table, and the
    /// permissions digest: what the purge compares stored rows with.
    pub fn heard(&self) -> (Vec<(String, u64)>, String) {
        let inner = self.read();
        let tables = inner.heard.iter().map(|(t, n)| (t.clone(), *n)).collect();
        (tables, inner.permissions.clone())
    }

    /// Every table heard of, watched or known, by name.
    pub fn tables(&self) -> Vec<super::TableState> {
        let inner = self.read();
        let mut names: Vec<&TableName> = inner
            .watched
            .keys()
            .chain(inner.heard.keys())
            .chain(inner.last_known.keys())
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let watched = inner.watched.get(name);
                super::TableState {
                    table: name.clone(),
                    watched: watched.is_some(),
                    version: watched
                        .and_then(|w| w.current.as_ref())
                        .map(|c| c.version.clone()),
                    changes_heard: inner.heard.get(name).copied(),
                }
            })
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current(version: &str, lsn: u64) -> Current {
        Current {
            version: version.into(),
            lsn,
        }
    }

    fn key_versions(v: &Versions, tables: &[&str]) -> Lookup<Vec<String>> {
        let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        v.with(&tables, |pairs, _| {
            pairs.iter().map(|(_, v)| v.to_string()).collect()
        })
    }

    #[test]
    fn nothing_is_keyed_before_listening_nor_before_the_version_is_read_under_a_watch() {
        let v = Versions::default();
        assert_eq!(key_versions(&v, &["public.servers"]), Lookup::Deaf);
        v.listening();
        assert_eq!(key_versions(&v, &["public.servers"]), Lookup::Unknown);
        assert_eq!(v.unsettled(&["public.servers".into()]), None, "not watched");
        v.watching("public.servers".into(), 42, 1);
        assert_eq!(
            v.unsettled(&["public.servers".into()]),
            Some(vec![("public.servers".into(), 42, 1)])
        );
        assert!(v.settle("public.servers", 1, current("7.3", 100)));
        assert_eq!(
            key_versions(&v, &["public.servers"]),
            Lookup::Known(vec!["7.3".to_string()])
        );
        assert_eq!(v.lsn(&["public.servers".into()]), Some(100));
        v.suspend();
        assert_eq!(key_versions(&v, &["public.servers"]), Lookup::Deaf);
    }

    #[test]
    fn a_heard_change_ends_the_vouching_and_a_read_under_an_ended_watch_is_not_kept() {
        let v = Versions::default();
        v.listening();
        v.watching("public.servers".into(), 42, 1);
        v.watching("public.notes".into(), 43, 2);
        assert!(v.settle("public.servers", 1, current("7.3", 100)));
        assert!(v.settle("public.notes", 2, current("8.0", 90)));
        assert_eq!(
            v.changed("public.servers:4"),
            Some(("public.servers".into(), Some(42)))
        );
        assert_eq!(key_versions(&v, &["public.servers"]), Lookup::Unknown);
        assert_eq!(
            key_versions(&v, &["public.notes"]),
            Lookup::Known(vec!["8.0".to_string()]),
            "other tables keep theirs"
        );
        // A read made under the ended watch (generation 1) is refused; one
        // under the next watch is kept.
        assert!(!v.settle("public.servers", 1, current("7.3", 100)));
        v.watching("public.servers".into(), 42, 3);
        assert!(!v.settle("public.servers", 1, current("7.3", 100)));
        assert!(v.settle("public.servers", 3, current("7.4", 120)));
        // A change to an unwatched table is still a change heard.
        assert_eq!(
            v.changed("public.other:9"),
            Some(("public.other".into(), None))
        );
        // Stale answers come from the last versions vouched for.
        assert_eq!(
            v.last_known(["public.servers"]).unwrap().0,
            vec![("public.servers".to_string(), "7.4".to_string())]
        );
        v.changed("public.servers:5");
        assert_eq!(v.last_known(["public.servers"]), None);
    }

    #[test]
    fn a_new_listening_session_forgets_its_watches_but_not_the_versions_last_known() {
        let v = Versions::default();
        v.listening();
        v.watching("public.servers".into(), 42, 1);
        assert!(v.settle("public.servers", 1, current("7.3", 100)));
        v.listening();
        assert_eq!(v.watched(), 0);
        assert_eq!(key_versions(&v, &["public.servers"]), Lookup::Unknown);
        assert!(v.last_known(["public.servers"]).is_some());
    }
}
