//! A private PostgreSQL cluster for `cargo run` and the tests, made with the
//! machine's own PostgreSQL binaries.
//!
//! Takes a directory; gives a running server listening on a unix socket
//! (never on a TCP port, so clusters never clash). As root, every
//! PostgreSQL binary runs as the `postgres` system user, and a directory
//! that user cannot reach is exchanged for one it can ([`location`]). The
//! cluster is private to the account running it: its socket is in a 0700
//! directory of that account ([`socket`]) and every connection must give
//! the superuser's random password ([`password`]), which [`url`] carries.
//! The server cannot outlive this process: it runs under a watchdog shell
//! that stops it as soon as our end of its stdin pipe closes, even on a
//! crash. [`EmbeddedPostgres::supervise`] restarts it whenever it dies
//! ([`supervisor`]); [`EmbeddedPostgres::start_standby`] makes a streaming
//! hot standby of it ([`standby`]).
//!
//! [`url`]: EmbeddedPostgres::url

mod location;
mod password;
mod socket;
mod standby;
mod supervisor;

pub use supervisor::{ClusterState, Supervisor};

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use location::Location;
use password::Password;
use socket::SocketDir;

const SUPERUSER: &str = "postgres";
const OS_USER: &str = "postgres";
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop waits for a live server to finish its fast shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL binaries not found: install PostgreSQL (e.g. apt-get install postgresql) or set DATABASE_URL"
    )]
    NoBinaries,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed: {output}")]
    Command { command: String, output: String },
    #[error("PostgreSQL did not start: {reason}\n--- server log (tail) ---\n{log}")]
    Start { reason: String, log: String },
    #[error("refusing to keep the cluster in {}: {problem}", path.display())]
    UnsafeDirectory { path: PathBuf, problem: String },
    #[error(
        "{} holds a cluster, but the `{OS_USER}` user cannot reach it: a parent directory is not traversable; \
         make it traversable (chmod o+x) or move the cluster and set DATA_DIR",
        path.display()
    )]
    UnreachableCluster { path: PathBuf },
    #[error("refusing to use {} as a private directory of the cluster: {problem}", path.display())]
    PrivateDirectory { path: PathBuf, problem: String },
    #[error(
        "refusing the cluster's password file {}: {problem}; remove it, and the next start makes and sets a new password",
        path.display()
    )]
    PasswordFile { path: PathBuf, problem: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let what = what.into();
    move |source| EmbeddedError::Io { what, source }
}

/// Finds the directory holding `initdb` and `postgres`: `pg_config
/// --bindir`, then `PATH`, then the newest `/usr/lib/postgresql/*/bin`.
pub fn find_bindir() -> Result<PathBuf, EmbeddedError> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    search_bindir(
        from_pg_config,
        std::env::var_os("PATH"),
        Path::new("/usr/lib/postgresql"),
    )
}

fn search_bindir(
    from_pg_config: Option<PathBuf>,
    path: Option<std::ffi::OsString>,
    versions_root: &Path,
) -> Result<PathBuf, EmbeddedError> {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = from_pg_config.filter(|d| usable(d)) {
        return Ok(dir);
    }
    if let Some(path) = path
        && let Some(dir) = std::env::split_paths(&path).find(|d| usable(d))
    {
        return Ok(dir);
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(versions_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: Vec<u32> = e
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = e.path().join("bin");
            usable(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(EmbeddedError::NoBinaries)
}

fn running_as_root() -> bool {
    effective_uid().is_ok_and(|uid| uid == 0)
}

/// The uid this process acts as (the second field of `Uid:`).
fn effective_uid() -> Result<u32, EmbeddedError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(io("reading /proc/self/status for our uid"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| EmbeddedError::Io {
            what: "reading /proc/self/status for our uid".into(),
            source: std::io::Error::other("no effective uid on its Uid: line"),
        })
}

/// The account the server runs as: the `postgres` user when we are root,
/// else our own.
#[derive(Clone, Copy, Debug)]
struct Account {
    uid: u32,
    /// `Some((uid, gid))` when that account is not ours: what we make for
    /// it is handed over.
    hand_to: Option<(u32, u32)>,
}

impl Account {
    fn of_cluster(as_root: bool) -> Result<Self, EmbeddedError> {
        if as_root {
            let (uid, gid) = location::os_user_ids()?;
            Ok(Self {
                uid,
                hand_to: Some((uid, gid)),
            })
        } else {
            Ok(Self {
                uid: effective_uid()?,
                hand_to: None,
            })
        }
    }
}

/// A created cluster: what it takes to start its server, again and again.
#[derive(Clone, Debug)]
struct Cluster {
    bindir: PathBuf,
    location: Location,
    socket: SocketDir,
    password: Password,
}

impl Cluster {
    /// Finds the binaries, makes the directories and, on first use, the
    /// cluster itself (initdb) with a new password; a cluster made before
    /// with `trust` gets a password. Chooses the socket's directory.
    fn create(dir: &Path) -> Result<Self, EmbeddedError> {
        let bindir = find_bindir()?;
        let location = Location::prepare(dir, running_as_root())?;
        let account = Account::of_cluster(location.as_root)?;
        let data_dir = &location.data_dir;
        let password_file = password::file(data_dir);
        let password = if !data_dir.join("PG_VERSION").exists() {
            let password = Password::generate();
            initdb(&bindir, &location, account, &password)?;
            password::write(&password_file, &password)?;
            password::write_hba(data_dir, account)?;
            password
        } else {
            password::put_back(data_dir)?;
            let (password, is_new) = match password::read(&password_file, effective_uid()?)? {
                Some(password) => (password, false),
                None => {
                    // Kept before it is set: a crash in between must not
                    // leave a password no one knows.
                    let password = Password::generate();
                    password::write(&password_file, &password)?;
                    (password, true)
                }
            };
            if is_new || !password::hba_is_current(data_dir) {
                // A cluster of an older version (`trust`), one whose first
                // start stopped half-way, or one whose password file was
                // removed. The password is set with no server running, so
                // nothing connects without it; if we stop half-way again,
                // the next start redoes this.
                set_superuser_password(&bindir, &location, &password)?;
                password::write_hba(data_dir, account)?;
            }
            password
        };
        let socket = SocketDir::prepare(data_dir, account)?;
        Ok(Self {
            bindir,
            location,
            socket,
            password,
        })
    }

    /// A sqlx connection URL for `database`, as the superuser, with the
    /// password, over the unix socket.
    fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@localhost/{database}?host={}",
            self.password.url_encoded(),
            self.socket.path().display()
        )
    }

    fn pid_file(&self) -> PathBuf {
        self.location.data_dir.join("postmaster.pid")
    }

    fn socket_lock(&self) -> PathBuf {
        self.socket.path().join(".s.PGSQL.5432.lock")
    }

    /// The server under its watchdog; does not wait for it to be ready.
    fn spawn(self) -> Result<EmbeddedPostgres, EmbeddedError> {
        // Again before each restart: the socket goes only where no one but
        // the server's account can reach it.
        self.socket.verify()?;
        let Location {
            data_dir, as_root, ..
        } = &self.location;
        let socket_dir = self.socket.path();
        // After a crash (of the machine, or a SIGKILL of the watchdog or the
        // server) the lock files stay; PostgreSQL copes unless their pid now
        // belongs to another live process.
        clear_stale_lock(&self.pid_file());
        clear_stale_lock(&self.socket_lock());
        let log = data_dir.join("server.log");
        // The watchdog: the server runs in the background of a shell; a
        // reader waits on our pipe (fd 3) and, when it closes (we stopped,
        // or died without cleanup), asks the server for a fast shutdown.
        // The shell exits with the server, so an early exit is seen at once.
        // A background job of a non-interactive shell starts with SIGINT
        // ignored, until the server installs its handler: a stop that early
        // would be lost, so the reader repeats it until the server is gone.
        let script = r#"
"$0" -D "$1" -c listen_addresses= -c unix_socket_directories="$2" -c unix_socket_permissions=0700 >>"$3" 2>&1 &
pid=$!
exec 3<&0
(read _ <&3; while kill -INT $pid 2>/dev/null; do sleep 0.2; done) &
reader=$!
exec 3<&- 0</dev/null
trap 'kill -INT $pid 2>/dev/null' TERM INT
wait $pid
status=$?
while kill -0 $pid 2>/dev/null; do wait $pid; status=$?; done
kill $reader 2>/dev/null
exit $status
"#;
        let mut cmd = as_cluster_user(*as_root, Path::new("sh"));
        cmd.arg("-c")
            .arg(script)
            .arg(self.bindir.join("postgres"))
            .arg(data_dir)
            .arg(socket_dir)
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: a terminal's Ctrl-C reaches only the
        // service, which finishes in-flight requests and then stops us.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut watchdog = cmd.spawn().map_err(io("starting the PostgreSQL server"))?;
        let stdin = watchdog.stdin.take();
        Ok(EmbeddedPostgres {
            cluster: self,
            log,
            watchdog: Some(watchdog),
            stdin,
        })
    }
}

/// A running cluster. Dropping it stops the server (without waiting).
pub struct EmbeddedPostgres {
    cluster: Cluster,
    log: PathBuf,
    watchdog: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl EmbeddedPostgres {
    /// Creates the cluster under `dir` on first use (initdb), or reuses it;
    /// starts it and waits until it accepts connections. As root, when the
    /// `postgres` user cannot reach `dir`, the cluster lives in a place it
    /// can reach instead ([`relocated_from`](Self::relocated_from)).
    pub async fn start(dir: &Path) -> Result<Self, EmbeddedError> {
        let dir = std::path::absolute(dir).map_err(io(format!("resolving {}", dir.display())))?;
        let mut pg = blocking(move || Cluster::create(&dir)?.spawn()).await?;
        pg.wait_until_ready().await?;
        Ok(pg)
    }

    /// Starts the server of a cluster started before, in the same
    /// directories; does not wait for it to be ready.
    async fn respawn(cluster: Cluster) -> Result<Self, EmbeddedError> {
        blocking(move || cluster.spawn()).await
    }

    /// Polls with real connections (no client binaries needed), failing
    /// early when the server exits.
    async fn wait_until_ready(&mut self) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = self.url("postgres");
        loop {
            let attempt =
                tokio::time::timeout(Duration::from_secs(2), PgConnection::connect(&url)).await;
            let last_error = match attempt {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                    return Ok(());
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "connecting timed out".to_owned(),
            };
            if let Some(status) = self.exit_status() {
                return Err(self.start_failed(format!("the server exited ({status})")));
            }
            if Instant::now() > deadline {
                return Err(self.start_failed(format!(
                    "not accepting connections after {START_TIMEOUT:?} (last error: {last_error})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How the watchdog, and so the server, exited, once it has.
    fn exit_status(&mut self) -> Option<String> {
        match self.watchdog.as_mut()?.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(status.to_string()),
            Err(e) => Some(format!("it cannot be waited for: {e}")),
        }
    }

    fn start_failed(&self, reason: String) -> EmbeddedError {
        EmbeddedError::Start {
            reason,
            log: tail(&self.log),
        }
    }

    /// A sqlx (and libpq) connection URL for `database`, as the cluster's
    /// superuser `postgres`, with its password, over the unix socket.
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

    /// Fast shutdown, for good; returns once the server has exited and a
    /// socket directory made for it is removed. A server that died before
    /// leaves its lock files behind; they are cleared.
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        let socket = self.cluster.socket.clone();
        self.stop_server().await?;
        socket.remove()
    }

    /// Fast shutdown of this server, keeping the socket's directory for
    /// the next one.
    async fn stop_server(mut self) -> Result<(), EmbeddedError> {
        let watchdog = self.watchdog.take();
        let stdin = self.stdin.take();
        let cluster = self.cluster.clone();
        blocking(move || {
            drop(stdin);
            let deadline = Instant::now() + STOP_TIMEOUT;
            let still_running = |what: String| EmbeddedError::Io {
                what: "waiting for PostgreSQL to stop".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{what} after {STOP_TIMEOUT:?}"),
                ),
            };
            if let Some(mut watchdog) = watchdog {
                while watchdog
                    .try_wait()
                    .map_err(io("waiting for PostgreSQL to stop"))?
                    .is_none()
                {
                    if Instant::now() > deadline {
                        return Err(still_running(format!(
                            "the server of {} still runs",
                            cluster.location.data_dir.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            // The shell waits for the server, which removes its pid file
            // last. A killed server leaves the file naming a dead process:
            // nothing to wait for. A live one means the watchdog was killed
            // by others; its reader still stops the server.
            let pid_file = cluster.pid_file();
            while pid_file.exists() {
                if lock_pid(&pid_file).and_then(is_live_postgres) == Some(false) {
                    clear_stale_lock(&pid_file);
                    clear_stale_lock(&cluster.socket_lock());
                    break;
                }
                if Instant::now() > deadline {
                    return Err(still_running(format!(
                        "{} still names a running server",
                        pid_file.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        })
        .await
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        // Closing the pipe is enough: the watchdog stops the server.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        if let Some(mut child) = self.watchdog.take() {
            let _ = child.try_wait();
        }
    }
}

/// Runs blocking work (process spawning and waiting) off the runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EmbeddedError> + Send + 'static,
) -> Result<T, EmbeddedError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| EmbeddedError::Io {
            what: "running a PostgreSQL start or stop".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// Removes a PostgreSQL lock file whose pid is no live `postgres` process
/// (a reused pid would otherwise make the server refuse to start). A live
/// server's lock is left alone; the server then explains in its log.
fn clear_stale_lock(lock: &Path) {
    if lock_pid(lock).and_then(is_live_postgres) == Some(false) {
        let _ = std::fs::remove_file(lock);
    }
}

/// The pid on the first line of a PostgreSQL lock file (negative for a
/// single-user backend).
fn lock_pid(lock: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(lock).ok()?;
    let pid = text.lines().next()?.trim().parse::<i64>().ok()?;
    u32::try_from(pid.unsigned_abs()).ok()
}

/// Whether `pid` is a running `postgres` process (a zombie is not); `None`
/// where there is no /proc to tell.
fn is_live_postgres(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self/stat").exists() {
        return None;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Some(false);
    };
    // "pid (comm) state ...": the name may itself hold parentheses.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return Some(false);
    };
    let state = stat[close + 1..].split_whitespace().next();
    Some(&stat[open + 1..close] == "postgres" && !matches!(state, Some("Z" | "X")))
}

/// Makes the cluster with `password` for the superuser. initdb reads it from
/// a file: a copy in a directory made fresh for it, which only the server's
/// account may enter, removed as soon as initdb is done.
fn initdb(
    bindir: &Path,
    location: &Location,
    account: Account,
    password: &Password,
) -> Result<(), EmbeddedError> {
    let (dir, _) = socket::fresh_private_dir(Path::new(socket::FRESH_PARENT), account, || {
        socket::fresh_name("wd-initdb-")
    })?;
    let _remove = RemoveOnDrop(dir.clone());
    let pwfile = dir.join("pwfile");
    let written = (|| {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pwfile)?;
        writeln!(out, "{}", password.expose())?;
        if let Some((uid, gid)) = account.hand_to {
            std::os::unix::fs::lchown(&pwfile, Some(uid), Some(gid))?;
        }
        Ok(())
    })();
    written.map_err(io(format!("writing {}", pwfile.display())))?;
    let mut initdb = as_cluster_user(location.as_root, &bindir.join("initdb"));
    initdb
        .arg("-D")
        .arg(&location.data_dir)
        .args(["-U", SUPERUSER, "--auth=scram-sha-256"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["-E", "UTF8", "--locale=C"]);
    run(initdb, "initdb")
}

/// Removes a directory of ours when dropped, whatever happened meanwhile.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Gives the superuser `password` (SCRAM) in single-user mode: no server
/// runs, so nothing can connect while `pg_hba.conf` may still say `trust`.
/// The password travels on stdin, never on a command line others can see.
fn set_superuser_password(
    bindir: &Path,
    location: &Location,
    password: &Password,
) -> Result<(), EmbeddedError> {
    // A server that died (even one whose pid was since reused) would make
    // single-user mode refuse to start.
    clear_stale_lock(&location.data_dir.join("postmaster.pid"));
    let mut single = as_cluster_user(location.as_root, &bindir.join("postgres"));
    single
        .arg("--single")
        .arg("-D")
        .arg(&location.data_dir)
        // Any error ends the session with a failure status, and no failing
        // statement (holding the password) is echoed.
        .args([
            "-c",
            "exit_on_error=on",
            "-c",
            "log_min_error_statement=panic",
        ])
        .arg(SUPERUSER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = single
        .spawn()
        .map_err(io("running postgres --single to set the password"))?;
    // One statement a line, as single-user mode reads them.
    let sql = format!(
        "SET password_encryption = 'scram-sha-256';\nALTER ROLE {SUPERUSER} PASSWORD {};\n",
        password.sql_literal()
    );
    if let Some(mut stdin) = child.stdin.take() {
        // A failure to write shows in the exit status and output below.
        let _ = stdin.write_all(sql.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(io("running postgres --single to set the password"))?;
    let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && !output.contains("ERROR") && !output.contains("FATAL") {
        return Ok(());
    }
    output.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(EmbeddedError::Command {
        command: "postgres --single (setting the superuser's password)".into(),
        output: output
            .replace(password.expose(), "<password>")
            .trim()
            .to_owned(),
    })
}

fn as_cluster_user(root: bool, program: &Path) -> Command {
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", OS_USER, "--"]).arg(program);
        // Not root's home, which the server user may not enter.
        cmd.current_dir("/");
        cmd
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, name: &str) -> Result<(), EmbeddedError> {
    let out = cmd.output().map_err(io(format!("running {name}")))?;
    if out.status.success() {
        return Ok(());
    }
    let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(EmbeddedError::Command {
        command: name.to_owned(),
        output: output.trim().to_owned(),
    })
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests;
