//! The streaming replicas widget queries may run on (`DATABASE_READ_URLS`).
//!
//! Takes the replicas' URLs; gives one lazily connecting pool per replica,
//! each with a breaker of its own, the next healthy replica in turn (round
//! robin), the [`Lsn`] a read must have seen, and counters of where reads
//! ran. Whether a replica has replayed enough to answer a given read is
//! decided per read, in [`super::Database::query_json_read`]; here runs no
//! SQL but the probe's.
//!
//! A replica a query finds unreachable or silent is skipped at once, until
//! its probe (one fresh connection, as [`crate::db::health`] does for the
//! primary) connects again. URLs carry passwords: replicas are named in
//! logs by their place in `DATABASE_READ_URLS` only.

use serde::Serialize;
use sqlx::postgres::{PgArgumentBuffer, PgConnectOptions, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a probe may take to connect and ask: longer is not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a replica that is down is probed.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How often a healthy replica is looked at anyway: a promotion, or a
/// replica that failed while no query used it, shows within this.
const RECHECK_INTERVAL: Duration = Duration::from_secs(10);

/// A position in PostgreSQL's write-ahead log (`pg_lsn`), written `X/Y`:
/// the high and low 32 bits in hexadecimal. A read that must see a write
/// asks for the primary's LSN after it; a replica that has replayed the
/// log that far holds the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(u64);

/// `pg_lsn`'s fixed type OID (`pg_type.dat`).
const PG_LSN_OID: u32 = 3220;

impl From<u64> for Lsn {
    fn from(position: u64) -> Self {
        Self(position)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> Self {
        lsn.0
    }
}

/// Not a `pg_lsn`: two groups of one to eight hex digits around a slash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a WAL position (X/Y, hexadecimal): {0:?}")]
pub struct BadLsn(String);

impl FromStr for Lsn {
    type Err = BadLsn;

    /// What `pg_lsn`'s input function accepts.
    fn from_str(s: &str) -> Result<Self, BadLsn> {
        let half = |part: &str| {
            let hex =
                !part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_hexdigit());
            hex.then(|| u32::from_str_radix(part, 16).ok()).flatten()
        };
        let (high, low) = s.split_once('/').ok_or_else(|| BadLsn(s.to_owned()))?;
        match (half(high), half(low)) {
            (Some(high), Some(low)) => Ok(Self((u64::from(high) << 32) | u64::from(low))),
            _ => Err(BadLsn(s.to_owned())),
        }
    }
}

/// As PostgreSQL writes it: upper-case hex, no leading zeros.
impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl sqlx::Type<Postgres> for Lsn {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(PG_LSN_OID))
    }
}

/// On the wire a `pg_lsn` is a big-endian 64-bit integer.
impl sqlx::Encode<'_, Postgres> for Lsn {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        buf.extend_from_slice(&self.0.to_be_bytes());
        Ok(sqlx::encode::IsNull::No)
    }
}

impl sqlx::Decode<'_, Postgres> for Lsn {
    fn decode(value: PgValueRef<'_>) -> Result<Self, sqlx::error::BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let bytes: [u8; 8] = value.as_bytes()?.try_into()?;
                Ok(Self(u64::from_be_bytes(bytes)))
            }
            PgValueFormat::Text => Ok(value.as_str()?.parse()?),
        }
    }
}

/// One replica: its pool and whether it answers.
pub struct Replica {
    /// Its place in `DATABASE_READ_URLS`, from 0.
    index: usize,
    pool: PgPool,
    down: AtomicBool,
    /// Wakes the probe.
    suspected: Notify,
    /// What the probe last saw: [`RECOVERY_UNKNOWN`], ...
    recovery: AtomicU8,
}

const RECOVERY_UNKNOWN: u8 = 0;
const IN_RECOVERY: u8 = 1;
const NOT_IN_RECOVERY: u8 = 2;

impl Replica {
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn is_healthy(&self) -> bool {
        !self.down.load(Relaxed)
    }

    /// A query could not reach it, or it did not answer: it is skipped
    /// until its probe connects again.
    pub fn failed(&self) {
        self.set_down(true);
        self.suspected.notify_one();
    }

    fn set_down(&self, down: bool) {
        if self.down.swap(down, Relaxed) != down {
            if down {
                tracing::warn!(
                    replica = self.index,
                    "a read replica is not answering; reads go elsewhere"
                );
            } else {
                tracing::info!(replica = self.index, "a read replica answers again");
            }
        }
    }

    /// Logs when the probe finds the server promoted, or never a standby:
    /// still usable, but only for reads of what it replayed while it was
    /// one (none, if it never was).
    fn saw_recovery(&self, in_recovery: bool) {
        let now = if in_recovery {
            IN_RECOVERY
        } else {
            NOT_IN_RECOVERY
        };
        let before = self.recovery.swap(now, Relaxed);
        if before == now {
            return;
        }
        if in_recovery {
            if before == NOT_IN_RECOVERY {
                tracing::info!(replica = self.index, "a read replica is a standby again");
            }
        } else {
            tracing::warn!(
                replica = self.index,
                "a read replica is not in recovery (promoted, or not a standby): \
                 it answers only reads of what it replayed as a standby, others go to the primary"
            );
        }
    }
}

/// Where reads ran, since start.
#[derive(Default)]
struct Counters {
    on_replicas: AtomicU64,
    on_primary: AtomicU64,
    refused_for_lag: AtomicU64,
    failures: AtomicU64,
}

/// The replicas' figures for the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReplicaFigures {
    /// Replicas configured, and of them not known to be down.
    pub replicas: usize,
    pub healthy: usize,
    /// Reads answered by a replica.
    pub on_replicas: u64,
    /// Reads of `query_json_read` sent to the primary: no LSN asked for,
    /// no healthy replica, or one that was behind or failed. (Reads of
    /// `query_json`, which never use a replica, are not counted.)
    pub on_primary: u64,
    /// Replicas that had not replayed the LSN a read asked for in time.
    pub refused_for_lag: u64,
    /// Replicas that failed under a read (unreachable, silent, shutting
    /// down, or a query cancelled by replay); the read went elsewhere.
    pub failures: u64,
}

/// What became of one read, for the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    OnReplica,
    OnPrimary,
    Behind,
    Failed,
}

/// A `DATABASE_READ_URLS` entry that is not a usable URL, named by its
/// place (from 0), never by its text, which may hold a password.
#[derive(Debug, thiserror::Error)]
#[error("DATABASE_READ_URLS: URL {index} (counting from 0): {source}")]
pub struct BadReplicaUrl {
    pub index: usize,
    #[source]
    source: sqlx::Error,
}

/// Every configured replica (none: every read runs on the primary).
#[derive(Default)]
pub struct Replicas {
    replicas: Vec<Replica>,
    next: AtomicUsize,
    counters: Counters,
}

impl Replicas {
    /// A pool of at most `max_connections` per URL, connecting on first
    /// use; fails only on a URL that cannot be parsed.
    pub fn new(urls: &[String], max_connections: u32) -> Result<Self, BadReplicaUrl> {
        let replicas = urls
            .iter()
            .enumerate()
            .map(|(index, url)| {
                let pool = crate::db::connect_lazy(url, max_connections)
                    .map_err(|source| BadReplicaUrl { index, source })?;
                Ok(Replica {
                    index,
                    pool,
                    down: AtomicBool::new(false),
                    suspected: Notify::new(),
                    recovery: AtomicU8::new(RECOVERY_UNKNOWN),
                })
            })
            .collect::<Result<_, BadReplicaUrl>>()?;
        Ok(Self {
            replicas,
            ..Self::default()
        })
    }

    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&Replica> {
        self.replicas.get(index)
    }

    pub fn any_healthy(&self) -> bool {
        self.replicas.iter().any(Replica::is_healthy)
    }

    /// The next healthy replica in turn, skipping those in `tried`.
    pub fn pick(&self, tried: &[usize]) -> Option<&Replica> {
        let n = self.replicas.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Relaxed);
        (0..n)
            .map(|offset| &self.replicas[start.wrapping_add(offset) % n])
            .find(|r| r.is_healthy() && !tried.contains(&r.index))
    }

    pub(crate) fn count(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::OnReplica => &self.counters.on_replicas,
            Outcome::OnPrimary => &self.counters.on_primary,
            Outcome::Behind => &self.counters.refused_for_lag,
            Outcome::Failed => &self.counters.failures,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn figures(&self) -> ReplicaFigures {
        let c = &self.counters;
        ReplicaFigures {
            replicas: self.replicas.len(),
            healthy: self.replicas.iter().filter(|r| r.is_healthy()).count(),
            on_replicas: c.on_replicas.load(Relaxed),
            on_primary: c.on_primary.load(Relaxed),
            refused_for_lag: c.refused_for_lag.load(Relaxed),
            failures: c.failures.load(Relaxed),
        }
    }

    /// One probe per replica, for the life of the process (none without
    /// replicas).
    pub fn spawn_probes(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.replicas.len())
            .map(|index| tokio::spawn(probe(Arc::clone(self), index)))
            .collect()
    }
}

/// Looks at replica `index` at once, then whenever a query suspects it,
/// every [`PROBE_INTERVAL`] while it is down and every
/// [`RECHECK_INTERVAL`] while it is up.
async fn probe(replicas: Arc<Replicas>, index: usize) {
    let replica = &replicas.replicas[index];
    let options = (*replica.pool.connect_options())
        .clone()
        .disable_statement_logging();
    loop {
        match tokio::time::timeout(PROBE_TIMEOUT, in_recovery(&options)).await {
            Ok(Ok(in_recovery)) => {
                replica.saw_recovery(in_recovery);
                replica.set_down(false);
            }
            outcome => {
                tracing::debug!(replica = index, ?outcome, "read replica probe failed");
                replica.set_down(true);
            }
        }
        let wait = if replica.is_healthy() {
            RECHECK_INTERVAL
        } else {
            PROBE_INTERVAL
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = replica.suspected.notified() => {}
        }
    }
}

/// One fresh connection (never a pooled one: a busy pool is not a dead
/// server): whether the server is replaying WAL.
async fn in_recovery(options: &PgConnectOptions) -> Result<bool, sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect_with(options).await?;
    let in_recovery = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(in_recovery)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_read_and_write_as_postgresql_does() {
        for (text, value, written) in [
            ("0/0", 0u64, "0/0"),
            ("0/16B3748", 0x16B_3748, "0/16B3748"),
            ("1/0", 1 << 32, "1/0"),
            ("ffffffff/ffffffff", u64::MAX, "FFFFFFFF/FFFFFFFF"),
            ("00000002/0000000A", (2 << 32) | 10, "2/A"),
        ] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(u64::from(lsn), value, "{text}");
            assert_eq!(lsn.to_string(), written, "{text}");
        }
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "0",
            "0/0/0",
            "g/0",
            "0/-1",
            "0/+1",
            "123456789/0",
            " 0/0",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} was accepted");
        }
        let low: Lsn = "0/FFFFFFFF".parse().unwrap();
        let high: Lsn = "1/0".parse().unwrap();
        assert!(low < high, "ordered by position, not by text");
    }

    fn three() -> Replicas {
        let urls: Vec<String> = (1..=3)
            .map(|port| format!("postgres://u@127.0.0.1:{port}/db"))
            .collect();
        Replicas::new(&urls, 2).unwrap()
    }

    fn picks(replicas: &Replicas, tried: &[usize], n: usize) -> Vec<Option<usize>> {
        (0..n)
            .map(|_| replicas.pick(tried).map(Replica::index))
            .collect()
    }

    #[tokio::test]
    async fn replicas_take_turns_and_one_that_failed_is_skipped() {
        let replicas = three();
        assert_eq!(
            picks(&replicas, &[], 4),
            [Some(0), Some(1), Some(2), Some(0)]
        );
        replicas.get(1).unwrap().failed();
        let taken = picks(&replicas, &[], 4);
        assert!(!taken.contains(&Some(1)), "{taken:?}");
        assert!(taken.contains(&Some(0)) && taken.contains(&Some(2)));
        assert_eq!(picks(&replicas, &[0], 2), [Some(2), Some(2)]);
        assert_eq!(picks(&replicas, &[0, 2], 1), [None], "all tried");
        replicas.get(0).unwrap().failed();
        replicas.get(2).unwrap().failed();
        assert!(!replicas.any_healthy());
        assert_eq!(picks(&replicas, &[], 1), [None]);
        let figures = replicas.figures();
        assert_eq!((figures.replicas, figures.healthy), (3, 0));
        assert!(Replicas::default().pick(&[]).is_none());
    }

    #[tokio::test]
    async fn a_replica_url_that_cannot_be_parsed_is_refused_by_its_place_alone() {
        let urls = [
            "postgres://u@127.0.0.1:5/db".to_owned(),
            "postgres://u:secret@127.0.0.1:99999999/db".to_owned(),
        ];
        let err = Replicas::new(&urls, 2).err().expect("refused");
        assert_eq!(err.index, 1);
        let text = err.to_string();
        assert!(text.contains("URL 1") && !text.contains("secret"), "{text}");
    }

    #[tokio::test]
    async fn the_probe_marks_a_replica_nobody_answers_for_as_down() {
        // Nothing listens on port 1 of loopback: refused at once.
        let urls = ["postgres://u@127.0.0.1:1/db".to_owned()];
        let replicas = Arc::new(Replicas::new(&urls, 2).unwrap());
        assert!(replicas.any_healthy(), "healthy until shown otherwise");
        let probes = replicas.spawn_probes();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while replicas.any_healthy() {
            assert!(tokio::time::Instant::now() < deadline, "never marked down");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(replicas.figures().healthy, 0);
        for probe in probes {
            probe.abort();
        }
    }
}
