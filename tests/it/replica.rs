//! A PostgreSQL primary with a streaming hot standby, of this test
//! process's own: not the shared cluster of `harness`, which holds every
//! other test's database and must never lag or stop. For tests of read
//! replicas and, end to end, of the cache over them.
//!
//! Made once per test process, on first use, with `embedded_pg` (every
//! server runs as the `postgres` user, on unix sockets only, with the
//! generated superuser password): the primary, with database [`DATABASE`]
//! migrated and seeded as the harness's template is, then the standby,
//! made from it with `pg_basebackup -R` (`EmbeddedPostgres::start_standby`)
//! and streaming from it. PostgreSQL's defaults allow this as they are
//! (`wal_level = replica`, ten WAL senders, `hot_standby = on`), and the
//! crate's `pg_hba.conf` has a `local replication` line asking for the
//! password. Both servers stop when the process ends (their watchdogs see
//! it go, even after a crash); the next test process removes the
//! directories of processes that are gone.
//!
//! Tests change its state (replay paused, the standby stopped), so each
//! holds the fixture alone for as long as it uses it:
//!
//! ```ignore
//! let rep = replica::exclusive().await; // standby running, replaying, caught up
//! let app = App::new(config(&rep.primary_url(), &[("DATABASE_READ_URLS", &rep.replica_url())]), pool);
//! rep.pause_replay().await;             // writes on the primary now wait
//! let lsn = rep.primary_lsn().await;    // where the primary's WAL ends
//! rep.resume_replay().await;
//! rep.wait_for_replay(lsn).await;       // the standby has it all
//! rep.stop_replica().await;             // fast shutdown; its URL stays valid
//! rep.start_replica().await;            // back, catching up
//! ```
//!
//! A test that fails half-way leaves no trace for the next: [`exclusive`]
//! starts the standby again and resumes its replay before handing it out.

use embedded_pg::EmbeddedPostgres;
use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use widget_data::db;
use widget_data::exec::Lsn;

/// The database on the primary (and so on the standby): migrated and
/// seeded.
pub const DATABASE: &str = "widget_data";

/// Directories of this fixture: `<temp>/widget-data-replication-<pid>`.
/// Not `widget-data-it-`: the harness removes those of dead processes.
const DIR_PREFIX: &str = "widget-data-replication-";

/// How long a condition polled here may take to come true.
const PATIENCE: Duration = Duration::from_secs(30);

pub struct Replication {
    dir: PathBuf,
    primary: Option<EmbeddedPostgres>,
    /// `None` while stopped.
    standby: Mutex<Option<EmbeddedPostgres>>,
    /// What the standby is started from again.
    standby_dir: PathBuf,
    primary_url: String,
    replica_url: String,
}

static REPLICATION: OnceLock<Replication> = OnceLock::new();
static IN_USE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The fixture, for this test alone until dropped.
pub struct Exclusive {
    replication: &'static Replication,
    _held: tokio::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for Exclusive {
    type Target = Replication;

    fn deref(&self) -> &Replication {
        self.replication
    }
}

/// Waits until no other test uses the fixture, starts it on first use,
/// and hands it over in its normal state: the standby running, replaying
/// and caught up with the primary.
pub async fn exclusive() -> Exclusive {
    let held = IN_USE.lock().await;
    let replication = REPLICATION.get_or_init(|| {
        // Its own thread and runtime, as the harness's cluster: each test
        // has a runtime of its own, and the servers outlive them all.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(Replication::start())
        })
        .join()
        .expect("replication fixture thread")
    });
    replication.normal().await;
    Exclusive {
        replication,
        _held: held,
    }
}

impl Replication {
    /// Both servers in a fresh directory of this process.
    async fn start() -> Self {
        remove_stale_directories();
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fixture directory");
        let primary = EmbeddedPostgres::start(&dir.join("primary"))
            .await
            .expect("start the primary");
        let mut admin = PgConnection::connect(&primary.url("postgres"))
            .await
            .expect("connect to the primary");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
            .execute(&mut admin)
            .await
            .expect("create the database");
        admin.close().await.ok();
        let pool = db::connect(&primary.url(DATABASE), 2)
            .await
            .expect("connect to the database");
        db::migrate(&pool).await.expect("migrate");
        db::seed(&pool).await.expect("seed");
        pool.close().await;
        let standby_dir = dir.join("standby");
        let standby = primary
            .start_standby(&standby_dir)
            .await
            .expect("start the standby");
        let replication = Self {
            primary_url: primary.url(DATABASE),
            replica_url: standby.url(DATABASE),
            dir,
            primary: Some(primary),
            standby: Mutex::new(Some(standby)),
            standby_dir,
        };
        let lsn = replication.primary_lsn().await;
        replication.wait_for_replay(lsn).await;
        replication
    }

    /// The primary's [`DATABASE`], as its superuser, over its socket.
    pub fn primary_url(&self) -> String {
        self.primary_url.clone()
    }

    /// The standby's [`DATABASE`]: the same URL across stops and starts.
    pub fn replica_url(&self) -> String {
        self.replica_url.clone()
    }

    /// `pg_current_wal_insert_lsn()` on the primary: a read that must see
    /// every write made so far asks a replica for this.
    pub async fn primary_lsn(&self) -> Lsn {
        scalar(&self.primary_url, "SELECT pg_current_wal_insert_lsn()").await
    }

    /// `pg_last_wal_replay_lsn()` on the standby.
    pub async fn replay_lsn(&self) -> Lsn {
        scalar(&self.replica_url, "SELECT pg_last_wal_replay_lsn()").await
    }

    /// Polls until the standby has replayed the WAL up to `lsn`.
    pub async fn wait_for_replay(&self, lsn: Lsn) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let replayed = self.replay_lsn().await;
            if replayed >= lsn {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby replayed up to {replayed}, not {lsn}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops replay on the standby (it keeps receiving WAL): it answers
    /// with the data it had until [`resume_replay`](Self::resume_replay).
    /// Returns once it is paused, not merely asked to.
    pub async fn pause_replay(&self) {
        execute(&self.replica_url, "SELECT pg_wal_replay_pause()").await;
        self.until_pause_state("paused").await;
    }

    pub async fn resume_replay(&self) {
        execute(&self.replica_url, "SELECT pg_wal_replay_resume()").await;
        self.until_pause_state("not paused").await;
    }

    async fn until_pause_state(&self, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let state: String =
                scalar(&self.replica_url, "SELECT pg_get_wal_replay_pause_state()").await;
            if state == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replay is {state:?}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Fast shutdown of the standby; returns once it has exited.
    pub async fn stop_replica(&self) {
        let standby = self.lock_standby().take();
        if let Some(standby) = standby {
            standby.stop().await.expect("stop the standby");
        }
    }

    /// Starts the stopped standby again, on the same socket; returns once
    /// it accepts connections (it catches up from there).
    pub async fn start_replica(&self) {
        if self.lock_standby().is_some() {
            return;
        }
        let standby = EmbeddedPostgres::start(&self.standby_dir)
            .await
            .expect("start the standby again");
        assert_eq!(
            standby.url(DATABASE),
            self.replica_url,
            "the standby's URL changed"
        );
        *self.lock_standby() = Some(standby);
    }

    /// The state [`exclusive`] hands out.
    async fn normal(&self) {
        self.start_replica().await;
        let paused: String =
            scalar(&self.replica_url, "SELECT pg_get_wal_replay_pause_state()").await;
        if paused != "not paused" {
            self.resume_replay().await;
        }
        let lsn = self.primary_lsn().await;
        self.wait_for_replay(lsn).await;
    }

    fn lock_standby(&self) -> std::sync::MutexGuard<'_, Option<EmbeddedPostgres>> {
        self.standby.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops both servers (each exits once it sees its owner gone) and, once
/// they have, removes their directory.
impl Drop for Replication {
    fn drop(&mut self) {
        drop(self.lock_standby().take());
        drop(self.primary.take());
        let deadline = Instant::now() + PATIENCE;
        let running = |dir: &Path| dir.join("postmaster.pid").exists();
        while running(&self.dir.join("primary")) || running(&self.standby_dir) {
            if Instant::now() > deadline {
                eprintln!(
                    "the replication fixture's servers did not stop; leaving {}",
                    self.dir.display()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Directories of test processes that are gone (their servers stopped
/// with them; only the files are left).
fn remove_stale_directories() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(DIR_PREFIX)
            && pid.bytes().all(|b| b.is_ascii_digit())
            && !PathBuf::from(format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

async fn scalar<T>(url: &str, sql: &'static str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let value = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.ok();
    value
}

async fn execute(url: &str, sql: &'static str) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.ok();
}
