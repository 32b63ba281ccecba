//! A private PostgreSQL cluster for `cargo run` and the tests, made with the
//! machine's own PostgreSQL binaries.
//!
//! Takes a directory; gives a running server listening on a unix socket in
//! that directory (never on a TCP port, so clusters never clash). As root,
//! every PostgreSQL binary runs as the `postgres` system user. The server
//! cannot outlive this process: it runs under a watchdog shell that stops it
//! as soon as our end of its stdin pipe closes, even on a crash.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const SUPERUSER: &str = "postgres";
const OS_USER: &str = "postgres";
/// Unix socket paths are limited to 107 bytes; `.s.PGSQL.5432` adds 14.
const MAX_SOCKET_DIR: usize = 90;
const START_TIMEOUT: Duration = Duration::from_secs(60);

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
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// A running cluster. Dropping it stops the server (without waiting).
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    watchdog: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl EmbeddedPostgres {
    /// Creates the cluster under `dir` on first use, or reuses it; starts
    /// it and waits until it accepts connections.
    pub async fn start(dir: &Path) -> Result<Self, EmbeddedError> {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::start_blocking(&dir))
            .await
            .map_err(|e| EmbeddedError::Start {
                reason: e.to_string(),
                log: String::new(),
            })?
    }

    fn start_blocking(dir: &Path) -> Result<Self, EmbeddedError> {
        let bindir = find_bindir()?;
        let root = running_as_root();
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let data_dir = dir
            .canonicalize()
            .map_err(io(format!("resolving {}", dir.display())))?;
        if root {
            chown_to_postgres(&data_dir)?;
        }
        if !data_dir.join("PG_VERSION").exists() {
            let mut initdb = as_cluster_user(root, &bindir.join("initdb"));
            initdb.arg("-D").arg(&data_dir).args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ]);
            run(initdb, "initdb")?;
        }
        let socket_dir = socket_dir_for(&data_dir, root)?;
        let log = data_dir.join("server.log");
        // The watchdog: the server runs in the background of a shell that
        // waits on its stdin; when the pipe closes (we stopped, or died),
        // the server gets a fast shutdown.
        let script = r#"
"$0" -D "$1" -c listen_addresses= -c unix_socket_directories="$2" -c unix_socket_permissions=0777 >>"$3" 2>&1 &
pid=$!
trap 'kill -INT $pid; wait $pid; exit 0' TERM INT
read _
kill -INT $pid 2>/dev/null
wait $pid
"#;
        let mut cmd = as_cluster_user(root, Path::new("sh"));
        cmd.arg("-c")
            .arg(script)
            .arg(bindir.join("postgres"))
            .arg(&data_dir)
            .arg(&socket_dir)
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: a terminal's Ctrl-C reaches only the
        // service, which finishes in-flight requests and then stops us.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut watchdog = cmd.spawn().map_err(io("starting the PostgreSQL server"))?;
        let stdin = watchdog.stdin.take();
        let mut pg = Self {
            data_dir,
            socket_dir,
            watchdog: Some(watchdog),
            stdin,
        };
        pg.wait_until_ready(&bindir, &log)?;
        Ok(pg)
    }

    fn wait_until_ready(&mut self, bindir: &Path, log: &Path) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let failed = |reason: String| EmbeddedError::Start {
            reason,
            log: tail(log),
        };
        loop {
            let ready = Command::new(bindir.join("pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(&self.socket_dir)
                .args(["-U", SUPERUSER, "-d", "postgres"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if let Some(child) = self.watchdog.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(failed(format!("the server exited ({status})")));
            }
            if Instant::now() > deadline {
                return Err(failed(format!("not ready after {START_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A sqlx connection URL for `database`, as the cluster's superuser.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost/{database}?host={}",
            self.socket_dir.display()
        )
    }

    /// Where the cluster's files live.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding the server's unix socket (`psql -h`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Fast shutdown; returns once the server has exited.
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        let child = self.watchdog.take();
        let stdin = self.stdin.take();
        let pid_file = self.data_dir.join("postmaster.pid");
        tokio::task::spawn_blocking(move || {
            drop(stdin);
            if let Some(mut child) = child {
                child.wait().map_err(io("waiting for PostgreSQL to stop"))?;
            }
            // The shell waits for the server; the pid file goes last.
            let deadline = Instant::now() + Duration::from_secs(30);
            while pid_file.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        })
        .await
        .map_err(|e| EmbeddedError::Start {
            reason: e.to_string(),
            log: String::new(),
        })?
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

fn as_cluster_user(root: bool, program: &Path) -> Command {
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", OS_USER, "--"]).arg(program);
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

fn chown_to_postgres(dir: &Path) -> Result<(), EmbeddedError> {
    let mut chown = Command::new("chown");
    chown.arg("-R").arg(format!("{OS_USER}:")).arg(dir);
    run(chown, "chown")?;
    // The server user must be able to reach the directory.
    let mut probe = as_cluster_user(true, Path::new("test"));
    probe.arg("-w").arg(dir);
    if run(probe, "access check").is_err() {
        return Err(EmbeddedError::Command {
            command: "access check".into(),
            output: format!(
                "the `{OS_USER}` user cannot write {}: a parent directory is not traversable; \
                 set DATA_DIR to a directory it can reach (e.g. under /tmp or /var/lib)",
                dir.display()
            ),
        });
    }
    Ok(())
}

/// The data directory itself when its path is short enough for a unix
/// socket, else a short directory under /tmp.
fn socket_dir_for(data_dir: &Path, root: bool) -> Result<PathBuf, EmbeddedError> {
    if data_dir.as_os_str().len() <= MAX_SOCKET_DIR {
        return Ok(data_dir.to_path_buf());
    }
    let hash = data_dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x100000001b3)
        });
    let dir = std::env::temp_dir().join(format!("wd-pg-{hash:016x}"));
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    if root {
        chown_to_postgres(&dir)?;
    }
    Ok(dir)
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{Connection, PgConnection};

    #[test]
    fn the_newest_versioned_install_is_chosen_and_none_is_one_clear_error() {
        let root = std::env::temp_dir().join(format!("widget-data-bindir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(
            search_bindir(None, None, &root).unwrap_err().to_string(),
            "PostgreSQL binaries not found: install PostgreSQL (e.g. apt-get install postgresql) or set DATABASE_URL"
        );
        for version in ["9.6", "15", "16", "notes"] {
            let bin = root.join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            if version != "16" {
                // 16 is incomplete: no postgres binary.
                std::fs::write(bin.join("postgres"), "").unwrap();
            }
            std::fs::write(bin.join("initdb"), "").unwrap();
        }
        assert_eq!(
            search_bindir(None, None, &root).unwrap(),
            root.join("15").join("bin")
        );
        // PATH wins over the versioned directories.
        let on_path = root.join("9.6").join("bin");
        assert_eq!(
            search_bindir(None, Some(on_path.clone().into_os_string()), &root).unwrap(),
            on_path
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_machines_binaries_are_found() {
        let dir = find_bindir().expect("PostgreSQL is installed on test machines");
        assert!(dir.join("initdb").is_file());
    }

    #[tokio::test]
    async fn a_cluster_starts_stops_and_keeps_its_data() {
        let dir = std::env::temp_dir().join(format!("widget-data-embedded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pg = EmbeddedPostgres::start(&dir).await.unwrap();
        let mut conn = PgConnection::connect(&pg.url("postgres")).await.unwrap();
        sqlx::raw_sql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        pg.stop().await.unwrap();
        assert!(!dir.join("postmaster.pid").exists(), "stopped");

        let pg = EmbeddedPostgres::start(&dir).await.unwrap();
        let mut conn = PgConnection::connect(&pg.url("postgres")).await.unwrap();
        let n: i32 = sqlx::query_scalar("SELECT n FROM kept")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 42);
        conn.close().await.unwrap();
        pg.stop().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
