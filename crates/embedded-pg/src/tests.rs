//! Tests of the unsupervised cluster: binaries, start, stop, locks,
//! relocation as root, and the watchdog. They start real servers.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory name under the temp dir, unique per test and run.
pub(super) fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "widget-data-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_newest_versioned_install_is_chosen_and_none_is_one_clear_error() {
    let root = scratch("bindir");
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
    // PATH wins over the versioned directories, pg_config over PATH.
    let on_path = root.join("9.6").join("bin");
    assert_eq!(
        search_bindir(None, Some(on_path.clone().into_os_string()), &root).unwrap(),
        on_path
    );
    let from_pg_config = root.join("15").join("bin");
    assert_eq!(
        search_bindir(
            Some(from_pg_config.clone()),
            Some(on_path.into_os_string()),
            &root
        )
        .unwrap(),
        from_pg_config
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_machines_binaries_are_found() {
    let dir = find_bindir().expect("PostgreSQL is installed on test machines");
    assert!(dir.join("initdb").is_file());
    assert!(dir.join("postgres").is_file());
}

#[tokio::test]
async fn a_cluster_starts_stops_and_keeps_its_data() {
    let dir = scratch("embedded");
    let pg = EmbeddedPostgres::start(&dir).await.unwrap();
    assert!(pg.url("postgres").contains("?host=/"), "a unix socket");
    let mut conn = PgConnection::connect(&pg.url("postgres")).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    sqlx::raw_sql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let url = pg.url("postgres");
    pg.stop().await.unwrap();
    assert!(!dir.join("postmaster.pid").exists(), "stopped");

    // A stale lock naming a live process that is not PostgreSQL (as
    // after a reboot that reused the pid) does not stop a restart.
    std::fs::write(
        dir.join("postmaster.pid"),
        format!("{}\n{}\n", std::process::id(), dir.display()),
    )
    .unwrap();
    let pg = EmbeddedPostgres::start(&dir).await.unwrap();
    assert_eq!(pg.url("postgres"), url, "the same socket and password");
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

#[tokio::test]
async fn a_long_directory_gets_a_short_fresh_private_socket_directory_removed_on_stop() {
    let dir = scratch("long").join("x".repeat(60)).join("y".repeat(60));
    let pg = EmbeddedPostgres::start(&dir).await.unwrap();
    let socket_dir = pg.socket_dir().to_path_buf();
    assert!(socket_dir.join(".s.PGSQL.5432.lock").as_os_str().len() < 100);
    assert!(!socket_dir.starts_with(&dir));
    let account = Account::of_cluster(running_as_root()).unwrap();
    assert_eq!(owner_and_mode(&socket_dir), (account.uid, 0o700));
    let mut conn = PgConnection::connect(&pg.url("postgres")).await.unwrap();
    conn.ping().await.unwrap();
    conn.close().await.unwrap();
    pg.stop().await.unwrap();
    assert!(!socket_dir.exists(), "removed once the cluster stopped");

    // Not derived from the path: the next start gets another one.
    let pg = EmbeddedPostgres::start(&dir).await.unwrap();
    assert_ne!(pg.socket_dir(), socket_dir);
    let again = pg.socket_dir().to_path_buf();
    pg.stop().await.unwrap();
    assert!(!again.exists());
    let _ = std::fs::remove_dir_all(scratch_root(&dir));
}

fn owner_and_mode(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.mode() & 0o7777)
}

/// The URL without its password.
fn without_password(pg: &EmbeddedPostgres) -> String {
    let password = std::fs::read_to_string(pg.password_file()).unwrap();
    let url = pg.url("postgres");
    let stripped = url.replacen(&format!(":{}@", password.trim()), "@", 1);
    assert_ne!(stripped, url, "the URL carries the password");
    stripped
}

/// `psql -c 'select 1'` on the cluster as the local account `user`, with
/// `password` if given; never prompts.
fn psql_as(user: &str, socket_dir: &Path, password: Option<&str>) -> std::process::Output {
    let mut psql = Command::new("runuser");
    psql.args(["-u", user, "--"])
        .arg(find_bindir().unwrap().join("psql"))
        .arg("-w")
        .arg("-h")
        .arg(socket_dir)
        .args(["-U", SUPERUSER, "-At", "-c", "select 1", "postgres"])
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .current_dir("/");
    if let Some(password) = password {
        psql.env("PGPASSWORD", password);
    }
    psql.output().unwrap()
}

#[tokio::test]
async fn another_local_account_cannot_connect_and_even_ours_needs_the_password() {
    // The socket in the data directory, and in a fresh directory.
    let long = scratch("private-long").join("z".repeat(90));
    for dir in [scratch("private"), long.clone()] {
        let pg = EmbeddedPostgres::start(&dir).await.unwrap();
        let account = Account::of_cluster(running_as_root()).unwrap();
        assert_eq!(owner_and_mode(pg.socket_dir()), (account.uid, 0o700));
        assert_eq!(
            owner_and_mode(&pg.socket_dir().join(".s.PGSQL.5432")),
            (account.uid, 0o700),
            "the socket itself"
        );
        assert_eq!(
            owner_and_mode(&pg.password_file()),
            (effective_uid().unwrap(), 0o600)
        );
        // The URL's password lets us in; without it, no one gets in.
        let mut conn = PgConnection::connect(&pg.url("postgres")).await.unwrap();
        conn.ping().await.unwrap();
        conn.close().await.unwrap();
        let err = PgConnection::connect(&without_password(&pg))
            .await
            .expect_err("refused without the password")
            .to_string();
        assert!(err.contains("password"), "{err}");

        if running_as_root() {
            let password = std::fs::read_to_string(pg.password_file()).unwrap();
            let password = password.trim();
            // Another local account, even knowing the password, cannot
            // enter the socket's directory.
            let out = psql_as("nobody", pg.socket_dir(), Some(password));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "nobody got in: {stderr}");
            assert!(stderr.contains("Permission denied"), "{stderr}");
            // The same psql works for the server's account with the
            // password, and not without it: no trust, no peer.
            let out = psql_as(OS_USER, pg.socket_dir(), Some(password));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
            let out = psql_as(OS_USER, pg.socket_dir(), None);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "in without a password");
            assert!(stderr.contains("password"), "{stderr}");
        }
        pg.stop().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(long.parent().unwrap());
}

#[tokio::test]
async fn a_cluster_made_with_trust_by_an_older_version_gets_a_password() {
    let dir = scratch("trust");
    // What older versions made.
    let location = Location::prepare(&dir, running_as_root()).unwrap();
    let mut initdb = as_cluster_user(location.as_root, &find_bindir().unwrap().join("initdb"));
    initdb
        .arg("-D")
        .arg(&dir)
        .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"]);
    run(initdb, "initdb").unwrap();
    let hba = || std::fs::read_to_string(dir.join("pg_hba.conf")).unwrap();
    let methods = |hba: String| -> Vec<String> {
        hba.lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
            .collect()
    };
    assert!(methods(hba()).contains(&"trust".to_owned()));

    let pg = EmbeddedPostgres::start(&dir).await.unwrap();
    let methods_now = methods(hba());
    assert!(
        !methods_now.is_empty() && methods_now.iter().all(|m| m == "scram-sha-256"),
        "{methods_now:?}"
    );
    let mut conn = PgConnection::connect(&pg.url("postgres")).await.unwrap();
    sqlx::raw_sql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (5)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert!(PgConnection::connect(&without_password(&pg)).await.is_err());
    let url = pg.url("postgres");
    pg.stop().await.unwrap();

    // The password is kept: the next start's URL is the same.
    let pg = EmbeddedPostgres::start(&dir).await.unwrap();
    assert_eq!(pg.url("postgres"), url);
    pg.stop().await.unwrap();

    // A removed password file: a new password is made and set.
    std::fs::remove_file(dir.join(password::PASSWORD_FILE)).unwrap();
    let pg = EmbeddedPostgres::start(&dir).await.unwrap();
    assert_ne!(pg.url("postgres"), url);
    let mut conn = PgConnection::connect(&pg.url("postgres")).await.unwrap();
    let n: i32 = sqlx::query_scalar("SELECT n FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 5);
    conn.close().await.unwrap();
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "the old one is gone"
    );
    pg.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_server_that_cannot_start_fails_fast_with_its_log() {
    let dir = scratch("broken");
    EmbeddedPostgres::start(&dir)
        .await
        .unwrap()
        .stop()
        .await
        .unwrap();
    let conf = dir.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\nshared_buffers = 'plenty'\n");
    std::fs::write(&conf, text).unwrap();
    let started = Instant::now();
    let err = EmbeddedPostgres::start(&dir).await.err().expect("fails");
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    let text = err.to_string();
    assert!(text.contains("the server exited"), "{text}");
    assert!(text.contains("shared_buffers"), "the log's tail: {text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn stopping_a_server_that_was_killed_is_quick() {
    let dir = scratch("killed");
    let mut pg = EmbeddedPostgres::start(&dir).await.unwrap();
    kill_9(postmaster_pid(&dir));
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg.exit_status().is_none() {
        assert!(
            Instant::now() < deadline,
            "the watchdog outlived its server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        dir.join("postmaster.pid").exists(),
        "a killed server leaves its pid file"
    );
    let started = Instant::now();
    pg.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        !dir.join("postmaster.pid").exists(),
        "the stale lock is cleared"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_server_stopped_as_it_starts_still_stops() {
    let dir = scratch("early-stop");
    EmbeddedPostgres::start(&dir)
        .await
        .unwrap()
        .stop()
        .await
        .unwrap();
    let cluster = Cluster::create(&dir).unwrap();
    // Before the server has set up its signal handlers.
    let pg = EmbeddedPostgres::respawn(cluster).await.unwrap();
    let started = Instant::now();
    pg.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(!dir.join("postmaster.pid").exists(), "no server left");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Removes what a relocation test made under the real relocation root,
/// even when the test fails half-way: its own clusters (named after a
/// directory only it asks for), then the parents if nothing else is in
/// them.
struct RelocatedCleanup {
    prefix: String,
    private: PathBuf,
}

impl Drop for RelocatedCleanup {
    fn drop(&mut self) {
        let root = Path::new(location::RELOCATION_ROOT);
        let clusters = root.join("clusters");
        for entry in std::fs::read_dir(&clusters).into_iter().flatten().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&self.prefix)
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let _ = std::fs::remove_dir(&clusters);
        let _ = std::fs::remove_dir(root);
        let _ = std::fs::remove_dir_all(&self.private);
    }
}

#[tokio::test]
async fn as_root_an_unreachable_directory_gets_a_reachable_cluster_that_is_reused() {
    if !running_as_root() {
        return;
    }
    let private = scratch("private");
    let name = format!("relocated-{}", std::process::id());
    let _cleanup = RelocatedCleanup {
        prefix: format!("{name}-"),
        private: private.clone(),
    };
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let asked = private.join(&name);
    let pg = EmbeddedPostgres::start(&asked).await.unwrap();
    let home = pg.data_dir().to_path_buf();
    assert_eq!(
        pg.relocated_from(),
        Some(asked.canonicalize().unwrap().as_path())
    );
    assert!(
        home.starts_with(Path::new(location::RELOCATION_ROOT).join("clusters")),
        "{}",
        home.display()
    );
    assert!(
        !asked.join("PG_VERSION").exists(),
        "nothing made where asked"
    );
    let mut conn = PgConnection::connect(&pg.url("postgres")).await.unwrap();
    sqlx::raw_sql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    pg.stop().await.unwrap();

    let pg = EmbeddedPostgres::start(&asked).await.unwrap();
    assert_eq!(
        pg.data_dir(),
        home,
        "the second start finds the same cluster"
    );
    let mut conn = PgConnection::connect(&pg.url("postgres")).await.unwrap();
    let n: i32 = sqlx::query_scalar("SELECT n FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 7);
    conn.close().await.unwrap();
    pg.stop().await.unwrap();
}

/// The pid on the first line of a running server's `postmaster.pid`.
pub(super) fn postmaster_pid(data_dir: &Path) -> u32 {
    lock_pid(&data_dir.join("postmaster.pid")).expect("a running server's pid file")
}

/// SIGKILL: the process gets no chance to clean up.
pub(super) fn kill_9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid}");
}

fn scratch_root(dir: &Path) -> PathBuf {
    dir.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Run by `the_server_dies_with_its_owner` in a child process: starts a
/// cluster, says so, and waits to be killed without running any
/// destructor.
#[tokio::test]
#[ignore = "helper process of the_server_dies_with_its_owner"]
async fn owner_process() {
    let (Some(dir), Some(marker)) = (
        std::env::var_os("WIDGET_DATA_OWNER_DIR"),
        std::env::var_os("WIDGET_DATA_OWNER_MARKER"),
    ) else {
        return;
    };
    let pg = EmbeddedPostgres::start(Path::new(&dir)).await.unwrap();
    std::mem::forget(pg);
    std::fs::write(marker, "started").unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
}

#[test]
fn the_server_dies_with_its_owner() {
    let dir = scratch("owner");
    let marker = dir.with_extension("started");
    let mut owner = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "tests::owner_process", "--ignored"])
        .env("WIDGET_DATA_OWNER_DIR", &dir)
        .env("WIDGET_DATA_OWNER_MARKER", &marker)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(owner.try_wait().unwrap().is_none(), "the owner failed");
        assert!(Instant::now() < deadline, "the owner never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid_file = dir.join("postmaster.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let pid = pid.lines().next().unwrap().trim().to_owned();
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "running");
    owner.kill().unwrap(); // SIGKILL: no destructor, no cleanup
    owner.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pid_file.exists() || Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "the server outlived its owner");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&marker);
    let _ = std::fs::remove_dir_all(&dir);
}
