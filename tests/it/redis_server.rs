//! A throwaway `redis-server` for tests: one per [`RedisServer`], on
//! 127.0.0.1 only, on a port that was free, with nothing persisted (no RDB
//! snapshots, no AOF) and its working directory and log in a temporary
//! directory of its own, removed with it.
//!
//! Takes the `redis-server` on `PATH` (`REDIS_SERVER` names another;
//! Debian's package puts it at /usr/bin/redis-server). Gives its URL, a
//! raw connection for checking what the code under test did, and the
//! failures a client must survive: [`RedisServer::kill`] (SIGKILL) with
//! [`RedisServer::restart`] on the same port, and [`RedisServer::freeze`]
//! (SIGSTOP: connections stay open, nothing answers) with
//! [`RedisServer::thaw`]. Dropping it kills the server, frozen or not.
//!
//! ```ignore
//! let mut server = RedisServer::start().await;
//! let redis = Redis::start(&server.url(), Duration::from_millis(50))?;
//! server.kill();            // calls now fail fast
//! server.restart().await;   // same port, empty, answering
//! ```

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// How long a starting server may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    /// `None` once killed.
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server and waits until it answers. Panics (with the
    /// server's log) when it cannot be started.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "widget-data-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let mut server = Self {
            port: 0,
            dir,
            child: None,
        };
        // The port was free a moment ago; another process may take it
        // first, so a server that cannot bind is tried on another.
        for _ in 0..5 {
            server.port = free_port();
            if server.run().await {
                return server;
            }
        }
        panic!("redis-server would not start; its log:\n{}", server.log());
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A connection of the test's own, for raw commands (`TTL`, `CLIENT
    /// LIST`, ...). It does not reconnect after a kill.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("the fixture's URL")
            .get_multiplexed_async_connection()
            .await
            .expect("a raw connection to the test redis-server")
    }

    /// SIGKILL, and waits until the process is gone: its connections are
    /// reset and its port refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts a new, empty one on the
    /// same port and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            self.run().await,
            "redis-server would not restart on port {}; its log:\n{}",
            self.port,
            self.log()
        );
    }

    /// SIGSTOP: the server keeps its connections and port but answers
    /// nothing until [`RedisServer::thaw`].
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: a frozen server answers again, pending requests first.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a running redis-server");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {signal} failed");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// Starts the server on `self.port`; `true` once it answers, `false`
    /// when it exited first (the port was taken). A server that never
    /// answers is killed by `Drop` after the panic.
    async fn run(&mut self) -> bool {
        let program = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&program)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--protected-mode", "yes"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {program} ({e}); install it: apt-get install redis-server")
            });
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("the fixture's URL");
        let deadline = Instant::now() + START_TIMEOUT;
        let ours = format!(
            "process_id:{}\r\n",
            self.child.as_ref().expect("started").id()
        );
        loop {
            // Answered by this process, not another server that took the
            // port first.
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && let Ok(info) = redis::cmd("INFO")
                    .arg("server")
                    .query_async::<String>(&mut conn)
                    .await
                && info.contains(&ours)
            {
                return true;
            }
            let child = self.child.as_mut().expect("started");
            if child.try_wait().ok().flatten().is_some() {
                self.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within {START_TIMEOUT:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listened on a moment ago, on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}
