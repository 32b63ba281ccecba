//! Streaming standbys of an embedded cluster, for tests of read replicas.
//! Takes a running [`EmbeddedPostgres`] (the primary) and a directory;
//! gives a hot standby made there with `pg_basebackup -R`, streaming from
//! the primary over its unix socket, run like any embedded cluster (its own
//! socket, the watchdog, the same superuser and password, since it is a
//! copy). Stopped, it is started again with [`EmbeddedPostgres::start`].
//!
//! The primary needs nothing set for this: `wal_level = replica` and ten
//! WAL senders are PostgreSQL's defaults, and our `pg_hba.conf` lets the
//! superuser replicate over the socket with the password. The password
//! reaches `pg_basebackup` in its environment, never on a command line,
//! and `-R` keeps it in the standby's `primary_conninfo` (in its
//! `postgresql.auto.conf`, which only the server's account may read).

use std::path::Path;
use std::sync::Mutex;

use super::location::Location;
use super::{
    Cluster, EmbeddedError, EmbeddedPostgres, SUPERUSER, as_cluster_user, blocking, io, password,
    run, running_as_root,
};

/// One base backup at a time in this process: each sets the primary's
/// password file aside and puts it back.
static BACKUPS: Mutex<()> = Mutex::new(());

impl EmbeddedPostgres {
    /// Makes `dir` (empty or not there yet) a hot standby of this running
    /// cluster, starts it and waits until it accepts connections. As root,
    /// a `dir` the `postgres` user cannot reach is exchanged for one it
    /// can, as [`start`](Self::start) does.
    pub async fn start_standby(&self, dir: &Path) -> Result<EmbeddedPostgres, EmbeddedError> {
        let dir = std::path::absolute(dir).map_err(io(format!("resolving {}", dir.display())))?;
        let primary = self.cluster.clone();
        let mut standby = blocking(move || base_backup(&primary, &dir)?.spawn()).await?;
        standby.wait_until_ready().await?;
        Ok(standby)
    }
}

/// `pg_basebackup -R` of `primary` into `dir`; gives the standby's cluster,
/// ready to be started.
fn base_backup(primary: &Cluster, dir: &Path) -> Result<Cluster, EmbeddedError> {
    let location = Location::prepare(dir, running_as_root())?;
    let data_dir = &location.data_dir;
    if data_dir.join("PG_VERSION").exists() {
        return Err(EmbeddedError::Command {
            command: "pg_basebackup".into(),
            output: format!(
                "{} holds a cluster already; start it with EmbeddedPostgres::start",
                data_dir.display()
            ),
        });
    }
    // What the server demands of a data directory; one made by `prepare`
    // may have the umask's 0755.
    std::fs::set_permissions(
        data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(io(format!("setting the mode of {}", data_dir.display())))?;
    {
        let _one_at_a_time = BACKUPS.lock().unwrap_or_else(|e| e.into_inner());
        // The primary's server sends its files and may not read our
        // password file (as root it is ours alone): the backup would fail.
        let _aside = password::SetAside::new(&primary.location.data_dir)?;
        let mut backup = as_cluster_user(location.as_root, &primary.bindir.join("pg_basebackup"));
        backup
            .arg("-D")
            .arg(data_dir)
            .arg("-h")
            .arg(primary.socket.path())
            .args(["-U", SUPERUSER, "-w", "-R", "-X", "stream", "-c", "fast"])
            .arg("--no-manifest")
            .env("PGPASSWORD", primary.password.expose())
            .env_remove("PGPASSFILE");
        run(backup, "pg_basebackup")?;
    }
    // The primary's log came along, and the lock of its socket when that
    // is in its data directory (naming the primary's live postmaster, it
    // would stop the standby from starting); the standby makes its own.
    let _ = std::fs::remove_file(data_dir.join("server.log"));
    for entry in std::fs::read_dir(data_dir)
        .map_err(io(format!("reading {}", data_dir.display())))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(".s.PGSQL.") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    password::write(&password::file(data_dir), &primary.password)?;
    Cluster::create(dir)
}

#[cfg(test)]
mod tests {
    use super::super::tests::scratch;
    use super::*;
    use sqlx::{Connection, PgConnection};
    use std::time::{Duration, Instant};

    async fn scalar<T>(url: &str, sql: &'static str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        let mut conn = PgConnection::connect(url).await.unwrap();
        let value = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        value
    }

    async fn execute(url: &str, sql: &'static str) {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }

    /// Polls `sum(n)` of table `kept` on the standby until it is `want`.
    async fn until_replayed(url: &str, want: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut conn = PgConnection::connect(url).await.unwrap();
            let sum: Option<i64> = sqlx::query_scalar("SELECT sum(n)::bigint FROM kept")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            if sum == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby has {sum:?}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_standby_streams_what_the_primary_writes_and_starts_again_as_one() {
        let dir = scratch("standby");
        let primary = EmbeddedPostgres::start(&dir.join("primary")).await.unwrap();
        let password_before = std::fs::read_to_string(primary.password_file()).unwrap();
        execute(
            &primary.url("postgres"),
            "CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)",
        )
        .await;

        let standby = primary.start_standby(&dir.join("standby")).await.unwrap();
        let url = standby.url("postgres");
        assert_ne!(url, primary.url("postgres"), "a socket of its own");
        assert!(scalar::<bool>(&url, "SELECT pg_is_in_recovery()").await);
        // The primary's password file is back, unchanged; the standby has
        // its own copy, ours alone, and nothing of the backup lingers.
        assert_eq!(
            std::fs::read_to_string(primary.password_file()).unwrap(),
            password_before
        );
        assert!(!primary.data_dir().join(password::SET_ASIDE).exists());
        assert_eq!(
            std::fs::read_to_string(standby.password_file()).unwrap(),
            password_before
        );
        until_replayed(&url, 1).await;

        // Streaming: a later write arrives without anything else done.
        execute(&primary.url("postgres"), "INSERT INTO kept VALUES (2)").await;
        until_replayed(&url, 3).await;
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let write = sqlx::query("INSERT INTO kept VALUES (4)")
            .execute(&mut conn)
            .await
            .expect_err("a standby is read-only");
        assert!(write.to_string().contains("read-only"), "{write}");
        conn.close().await.unwrap();

        // Stopped and started again: still a standby, catching up on what
        // was written meanwhile.
        let standby_dir = standby.data_dir().to_path_buf();
        standby.stop().await.unwrap();
        execute(&primary.url("postgres"), "INSERT INTO kept VALUES (4)").await;
        let standby = EmbeddedPostgres::start(&standby_dir).await.unwrap();
        assert_eq!(standby.url("postgres"), url, "the same URL");
        assert!(scalar::<bool>(&url, "SELECT pg_is_in_recovery()").await);
        until_replayed(&url, 7).await;

        // A second standby into a directory holding one is refused.
        let err = primary
            .start_standby(&standby_dir)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("holds a cluster already"), "{err}");
        standby.stop().await.unwrap();
        primary.stop().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_password_file_left_aside_by_a_dead_process_is_put_back() {
        let dir = scratch("aside");
        std::fs::create_dir_all(&dir).unwrap();
        let kept = password::Password::generate();
        password::write(&password::file(&dir), &kept).unwrap();
        let aside = password::SetAside::new(&dir).unwrap();
        assert!(!password::file(&dir).exists());
        assert!(dir.join(password::SET_ASIDE).exists());
        std::mem::forget(aside); // as if the process died here
        password::put_back(&dir).unwrap();
        let uid = super::super::effective_uid().unwrap();
        assert_eq!(
            password::read(&password::file(&dir), uid).unwrap(),
            Some(kept)
        );
        assert!(!dir.join(password::SET_ASIDE).exists());
        // Set aside and dropped: back at once.
        drop(password::SetAside::new(&dir).unwrap());
        assert!(password::file(&dir).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
