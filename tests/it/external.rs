//! A PostgreSQL server of a test's own, over TCP on loopback, as a
//! deployment has one (not the embedded cluster): started and stopped with
//! `pg_ctl`, killed and frozen with signals, to see the service through
//! the faults a real database goes through.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct TcpCluster {
    dir: PathBuf,
    port: u16,
    bindir: PathBuf,
    root: bool,
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl TcpCluster {
    /// initdb in a fresh directory under the temp dir, then start on a
    /// free loopback port.
    pub fn create(name: &str) -> Self {
        let root = running_as_root();
        let dir = std::env::temp_dir().join(format!("widget-data-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster directory");
        if root {
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown {}", dir.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            dir,
            port,
            bindir: embedded_pg::find_bindir().expect("PostgreSQL binaries"),
            root,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                cluster.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        cluster.start();
        cluster
    }

    fn data(&self) -> &str {
        self.dir.to_str().expect("a UTF-8 path")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        if self.root {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"])
                .arg(path)
                .current_dir("/");
            cmd
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> bool {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        if !out.status.success() {
            eprintln!(
                "{program} {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server, retrying while a killed one's processes linger.
    pub fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=100",
            self.port
        );
        let log = self.dir.join("server.log");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.run(
            "pg_ctl",
            &[
                "-D",
                self.data(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "20",
                "start",
            ],
        ) {
            assert!(Instant::now() < deadline, "PostgreSQL did not start again");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `pg_ctl stop -m <mode>` (`fast`, `immediate`).
    pub fn stop(&self, mode: &str) {
        assert!(self.run("pg_ctl", &["-D", self.data(), "-m", mode, "-w", "stop"]));
    }

    pub fn postmaster_pid(&self) -> u32 {
        let text =
            std::fs::read_to_string(self.dir.join("postmaster.pid")).expect("postmaster.pid");
        text.lines().next().unwrap().trim().parse().expect("a pid")
    }

    /// `kill -<signal>` to the postmaster alone.
    pub fn signal(&self, signal: &str) {
        signal_pids(signal, &[self.postmaster_pid()]);
    }

    /// Freezes every process of the server (postmaster and backends), as a
    /// paused VM or a stalled disk would.
    pub fn freeze(&self) {
        let pid = self.postmaster_pid();
        let mut pids = children(pid);
        pids.push(pid);
        signal_pids("STOP", &pids);
    }

    pub fn thaw(&self) {
        let pid = self.postmaster_pid();
        let mut pids = children(pid);
        pids.push(pid);
        signal_pids("CONT", &pids);
    }

    /// Whether the postmaster process still exists.
    pub fn postmaster_alive(&self, pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }
}

fn signal_pids(signal: &str, pids: &[u32]) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pids:?}");
}

/// Direct children of `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                // pid (comm) state ppid ...: comm may hold spaces.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

impl Drop for TcpCluster {
    fn drop(&mut self) {
        if std::fs::metadata(self.dir.join("postmaster.pid")).is_ok() {
            let pid = self.postmaster_pid();
            let mut pids = children(pid);
            pids.push(pid);
            let _ = Command::new("kill")
                .arg("-CONT")
                .args(pids.iter().map(u32::to_string))
                .status();
            let _ = self
                .command("pg_ctl")
                .args(["-D", self.data(), "-m", "immediate", "-w", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
