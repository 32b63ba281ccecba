//! Keeps an embedded cluster running. Takes a started [`EmbeddedPostgres`];
//! gives a [`Supervisor`] whose task restarts the server when it dies, in
//! the same directories and socket directory (so connection URLs stay
//! valid), with exponential backoff, and reports the cluster's
//! [`ClusterState`] on a watch channel. A failed restart is logged once and
//! tried again later; it never panics. The socket's directory is removed
//! only once the supervisor stops.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Cluster, EmbeddedError, EmbeddedPostgres, password};

/// How often the watchdog is asked whether it (and so the server) exited.
const POLL: Duration = Duration::from_millis(150);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A server that ran this long before dying is restarted without the
/// backoff its earlier deaths built up.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// What the supervised cluster is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// The server runs and accepted a connection when it started.
    Up,
    /// The server died; a restart is pending.
    Down,
    /// The `attempt`th restart since the server died is under way.
    Restarting { attempt: u32 },
    /// Stopped on purpose; nothing will restart it.
    Stopped,
}

impl fmt::Display for ClusterState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Up => f.write_str("up"),
            Self::Down => f.write_str("down"),
            Self::Restarting { attempt } => write!(f, "restarting (attempt {attempt})"),
            Self::Stopped => f.write_str("stopped"),
        }
    }
}

/// A cluster whose server is restarted when it dies. Dropping it stops
/// the server too, without waiting.
pub struct Supervisor {
    cluster: Cluster,
    state: watch::Receiver<ClusterState>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), EmbeddedError>>,
}

impl EmbeddedPostgres {
    /// Hands the running cluster to a supervisor. Its task runs on the
    /// current tokio runtime (so call this within one).
    pub fn supervise(self) -> Supervisor {
        let cluster = self.cluster.clone();
        let (state_tx, state) = watch::channel(ClusterState::Up);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(keep_running(self, state_tx, stop_rx));
        Supervisor {
            cluster,
            state,
            stop,
            task,
        }
    }
}

impl Supervisor {
    /// The cluster's state, kept current until the supervisor stops.
    pub fn state(&self) -> watch::Receiver<ClusterState> {
        self.state.clone()
    }

    /// A sqlx connection URL for `database`, with the superuser's
    /// password, valid across restarts.
    pub fn url(&self, database: &str) -> String {
        self.cluster.url(database)
    }

    /// Where the cluster's files live.
    pub fn data_dir(&self) -> &Path {
        &self.cluster.location.data_dir
    }

    /// The directory holding the server's unix socket (`psql -h`).
    pub fn socket_dir(&self) -> &Path {
        self.cluster.socket.path()
    }

    /// The file holding the superuser's password (`PGPASSWORD`), readable
    /// by this process's account only.
    pub fn password_file(&self) -> PathBuf {
        password::file(self.data_dir())
    }

    /// The directory asked for, when the cluster lives elsewhere because
    /// the `postgres` user cannot reach it (as root only).
    pub fn relocated_from(&self) -> Option<&Path> {
        self.cluster.location.relocated_from.as_deref()
    }

    /// Stops the server, or the restart under way, or the wait before the
    /// next one; returns once no server of this cluster runs and a socket
    /// directory made for it is removed.
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        self.stop.send_replace(true);
        self.task.await.map_err(|e| EmbeddedError::Io {
            what: "stopping the PostgreSQL supervisor".into(),
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

/// The supervisor's task: keeps the server running until a stop is asked
/// for, then removes the socket's directory once no server uses it.
async fn keep_running(
    pg: EmbeddedPostgres,
    state: watch::Sender<ClusterState>,
    stop: watch::Receiver<bool>,
) -> Result<(), EmbeddedError> {
    let socket = pg.cluster.socket.clone();
    restart_until_stopped(pg, state, stop).await?;
    socket.remove()
}

/// Watches the server; when it dies, restarts it until it runs again or a
/// stop is asked for.
async fn restart_until_stopped(
    pg: EmbeddedPostgres,
    state: watch::Sender<ClusterState>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), EmbeddedError> {
    let cluster = pg.cluster.clone();
    let mut running = Some(pg);
    let mut up_since = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        if let Some(mut pg) = running.take() {
            let died = tokio::select! {
                status = exited(&mut pg) => Some(status),
                () = stop_requested(&mut stop) => None,
            };
            let Some(status) = died else {
                let stopped = pg.stop_server().await;
                state.send_replace(ClusterState::Stopped);
                return stopped;
            };
            state.send_replace(ClusterState::Down);
            tracing::warn!(
                %status,
                data_dir = %cluster.location.data_dir.display(),
                "embedded PostgreSQL exited unexpectedly; restarting it"
            );
            // Reaps the watchdog and clears the dead server's lock files;
            // quick, since nothing of it runs.
            if let Err(e) = pg.stop_server().await {
                tracing::warn!(error = %e, "cleaning up after the dead PostgreSQL server");
            }
            if up_since.elapsed() >= HEALTHY_AFTER {
                backoff = FIRST_BACKOFF;
            }
            attempt = 0;
        }
        let wait = backoff;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        let stopped = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = stop_requested(&mut stop) => true,
        };
        if stopped {
            state.send_replace(ClusterState::Stopped);
            return Ok(());
        }
        attempt += 1;
        state.send_replace(ClusterState::Restarting { attempt });
        match restart(&cluster, &mut stop).await {
            Restart::Up(pg) => {
                tracing::info!(attempt, "embedded PostgreSQL is running again");
                running = Some(pg);
                up_since = Instant::now();
                state.send_replace(ClusterState::Up);
            }
            Restart::Failed(e) => {
                tracing::warn!(
                    attempt,
                    retry_in_ms = backoff.as_millis() as u64,
                    error = %e,
                    "restarting embedded PostgreSQL failed"
                );
                state.send_replace(ClusterState::Down);
            }
            Restart::Stopped(stopped) => {
                state.send_replace(ClusterState::Stopped);
                return stopped;
            }
        }
    }
}

enum Restart {
    Up(EmbeddedPostgres),
    Failed(EmbeddedError),
    /// A stop was asked for meanwhile; the server started is stopped again.
    Stopped(Result<(), EmbeddedError>),
}

async fn restart(cluster: &Cluster, stop: &mut watch::Receiver<bool>) -> Restart {
    let mut pg = match EmbeddedPostgres::respawn(cluster.clone()).await {
        Ok(pg) => pg,
        Err(e) => return Restart::Failed(e),
    };
    let ready = tokio::select! {
        ready = pg.wait_until_ready() => Some(ready),
        () = stop_requested(stop) => None,
    };
    match ready {
        Some(Ok(())) => Restart::Up(pg),
        Some(Err(e)) => {
            // A server that started but never answered must be gone before
            // the next attempt, or its lock would fail that one too; if it
            // is not, that attempt says so.
            let _ = pg.stop_server().await;
            Restart::Failed(e)
        }
        None => Restart::Stopped(pg.stop_server().await),
    }
}

/// Returns the watchdog's exit status once it exits.
async fn exited(pg: &mut EmbeddedPostgres) -> String {
    loop {
        if let Some(status) = pg.exit_status() {
            return status;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Returns once a stop is asked for, or the [`Supervisor`] is dropped.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&stop| stop).await;
}

#[cfg(test)]
mod tests {
    use super::super::tests::{kill_9, postmaster_pid, scratch};
    use super::*;
    use sqlx::{Connection, PgConnection};

    /// A supervised cluster under a fresh directory, holding a table `kept`.
    async fn supervised(name: &str) -> (PathBuf, Supervisor) {
        supervised_in(scratch(name)).await
    }

    async fn supervised_in(dir: PathBuf) -> (PathBuf, Supervisor) {
        let pg = EmbeddedPostgres::start(&dir).await.unwrap();
        let mut conn = PgConnection::connect(&pg.url("postgres")).await.unwrap();
        sqlx::raw_sql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        (dir, pg.supervise())
    }

    /// The states the cluster goes through until it reaches `last`.
    async fn states_until(
        state: &mut watch::Receiver<ClusterState>,
        last: ClusterState,
    ) -> Vec<ClusterState> {
        let mut seen = Vec::new();
        let record = async {
            while state.changed().await.is_ok() {
                let now = *state.borrow_and_update();
                seen.push(now);
                if now == last {
                    return;
                }
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(60), record).await;
        assert!(outcome.is_ok(), "never {last}; went through {seen:?}");
        seen
    }

    async fn wait_for(state: &mut watch::Receiver<ClusterState>, want: fn(ClusterState) -> bool) {
        let reached = tokio::time::timeout(Duration::from_secs(60), state.wait_for(|s| want(*s)))
            .await
            .is_ok_and(|changed| changed.is_ok());
        assert!(reached, "stuck at {}", *state.borrow());
    }

    async fn kept(url: &str) -> Result<i32, sqlx::Error> {
        let mut conn = PgConnection::connect(url).await?;
        let n = sqlx::query_scalar("SELECT n FROM kept")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        Ok(n)
    }

    fn server_runs(dir: &Path) -> bool {
        super::super::lock_pid(&dir.join("postmaster.pid"))
            .and_then(super::super::is_live_postgres)
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn a_killed_server_comes_back_with_its_data_and_the_state_says_so() {
        let (dir, pg) = supervised("supervised").await;
        let mut state = pg.state();
        assert_eq!(*state.borrow_and_update(), ClusterState::Up);
        let killed = postmaster_pid(&dir);
        kill_9(killed);

        let seen = states_until(&mut state, ClusterState::Up).await;
        assert_eq!(seen.first(), Some(&ClusterState::Down), "{seen:?}");
        assert!(
            seen.contains(&ClusterState::Restarting { attempt: 1 }),
            "{seen:?}"
        );
        // A first attempt may meet the dead server's last processes still
        // holding its shared memory; any retry is Down then Restarting.
        assert!(
            seen[..seen.len() - 1]
                .iter()
                .all(|s| matches!(s, ClusterState::Down | ClusterState::Restarting { .. })),
            "{seen:?}"
        );
        assert_ne!(postmaster_pid(&dir), killed, "a new server");
        // The same URL reaches it, with what was written before the kill.
        assert_eq!(kept(&pg.url("postgres")).await.unwrap(), 42);

        pg.stop().await.unwrap();
        assert_eq!(*state.borrow(), ClusterState::Stopped);
        assert!(!server_runs(&dir), "stopped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_restart_keeps_a_fresh_socket_directory_and_the_stop_removes_it() {
        let root = scratch("supervised-long");
        let (dir, pg) = supervised_in(root.join("w".repeat(90))).await;
        let socket_dir = pg.socket_dir().to_path_buf();
        assert!(!socket_dir.starts_with(&dir), "a directory of its own");
        let url = pg.url("postgres");
        let mut state = pg.state();
        state.borrow_and_update();
        kill_9(postmaster_pid(&dir));
        states_until(&mut state, ClusterState::Up).await;
        assert_eq!(pg.socket_dir(), socket_dir);
        assert_eq!(kept(&url).await.unwrap(), 42, "the same URL");
        pg.stop().await.unwrap();
        assert!(!socket_dir.exists(), "removed once stopped for good");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn a_stop_right_after_a_kill_is_quick_and_restarts_nothing() {
        let (dir, pg) = supervised("supervised-kill-stop").await;
        let mut state = pg.state();
        kill_9(postmaster_pid(&dir));
        wait_for(&mut state, |s| s != ClusterState::Up).await;
        let url = pg.url("postgres");
        let started = Instant::now();
        pg.stop().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(*state.borrow(), ClusterState::Stopped);
        // Past the first backoff: nothing came back.
        tokio::time::sleep(FIRST_BACKOFF * 4).await;
        assert!(!server_runs(&dir));
        assert!(kept(&url).await.is_err(), "no server answers");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_stop_during_a_restart_leaves_no_server_running() {
        let (dir, pg) = supervised("supervised-restart-stop").await;
        let mut state = pg.state();
        kill_9(postmaster_pid(&dir));
        wait_for(&mut state, |s| matches!(s, ClusterState::Restarting { .. })).await;
        pg.stop().await.unwrap();
        assert_eq!(*state.borrow(), ClusterState::Stopped);
        // Whatever the restart had got to, its server is gone and stays so.
        tokio::time::sleep(FIRST_BACKOFF * 4).await;
        assert!(!server_runs(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_restart_that_fails_is_retried_with_growing_waits_until_it_works() {
        let (dir, pg) = supervised("supervised-broken").await;
        let mut state = pg.state();
        let conf = dir.join("postgresql.conf");
        let good = std::fs::read_to_string(&conf).unwrap();
        std::fs::write(&conf, format!("{good}\nshared_buffers = 'plenty'\n")).unwrap();
        kill_9(postmaster_pid(&dir));

        // Waits of 250 ms, 500 ms, 1 s between the first three attempts.
        wait_for(&mut state, |s| s == ClusterState::Restarting { attempt: 1 }).await;
        let first = Instant::now();
        wait_for(&mut state, |s| s == ClusterState::Restarting { attempt: 3 }).await;
        let waited = first.elapsed();
        assert!(
            waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
            "{waited:?} from the first attempt to the third"
        );
        std::fs::write(&conf, good).unwrap();
        wait_for(&mut state, |s| s == ClusterState::Up).await;
        assert_eq!(kept(&pg.url("postgres")).await.unwrap(), 42);
        pg.stop().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
