//! Holds many idle connections open against a running widget-data and
//! reports what they cost: the server's resident memory before, while held
//! and after they close, and `/health` latency while they are held.
//! Takes a server address and its process id; gives one report on stdout;
//! sends nothing but `GET /health` and never more than one request per
//! held connection. `bench/idle.sh` drives it.
//!
//! `cargo run --release --example idle_conns -- <addr> <server pid> <connections> [idle|request]`
//!
//! `request`: each held connection first gets one `/health` answer, then
//! sits idle on keep-alive (the server's buffers have been used).
//! `idle`: each connection sends nothing at all.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, pid, count, rest @ ..] = &args[..] else {
        return Err("usage: idle_conns <addr> <server pid> <connections> [idle|request]".into());
    };
    let addr: SocketAddr = addr.parse()?;
    let pid: u32 = pid.parse()?;
    let count: usize = count.parse()?;
    let send_request = match rest.first().map(String::as_str) {
        None | Some("request") => true,
        Some("idle") => false,
        Some(other) => return Err(format!("unknown mode {other:?}").into()),
    };
    // This process holds one descriptor per connection too.
    let nofile = rlimit::increase_nofile_limit(u64::MAX)?;
    if (nofile as usize) < count + 64 {
        return Err(format!("this process may open only {nofile} files").into());
    }

    let idle_kb = rss_kb(pid)?;
    let started = Instant::now();
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        if send_request {
            get_health(&mut stream)?;
        }
        held.push(stream);
    }
    let opened = started.elapsed();
    // Let the server finish accepting and settle its buffers.
    std::thread::sleep(Duration::from_secs(2));
    let held_kb = rss_kb(pid)?;
    let (p50, p99, max) = probe_health(addr, 500)?;
    let alive = held.iter().filter(|s| is_open(s)).count();
    drop(held);

    println!(
        "connections: {count} ({}), opened in {opened:.2?}",
        if send_request {
            "one request each, then idle"
        } else {
            "idle, nothing sent"
        }
    );
    println!("server RSS idle: {} MB", idle_kb / 1024);
    println!(
        "server RSS with {count} held: {} MB (+{} MB, {:.1} KB per connection); {alive} still open after the probes",
        held_kb / 1024,
        held_kb.saturating_sub(idle_kb) / 1024,
        held_kb.saturating_sub(idle_kb) as f64 / count as f64,
    );
    println!(
        "/health while held (new connection each, 500 probes): p50 {p50:.2?} p99 {p99:.2?} max {max:.2?}"
    );
    let mut waited = 0;
    for after in [1, 5, 15, 30] {
        std::thread::sleep(Duration::from_secs(after - waited));
        waited = after;
        println!(
            "server RSS {after:>2} s after close: {} MB",
            rss_kb(pid)? / 1024
        );
    }
    Ok(())
}

/// The server's resident set in KiB, from /proc.
fn rss_kb(pid: u32) -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/<pid>/status".into())
}

/// Sends `GET /health` and reads the whole answer (headers and the
/// `content-length` body).
fn get_health(stream: &mut TcpStream) -> Result<(), Box<dyn std::error::Error>> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(HEALTH)?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                if !head.starts_with("http/1.1 200") {
                    return Err(format!("unexpected answer: {head}").into());
                }
                return Ok(());
            }
        }
    }
}

/// `/health` on a fresh connection each time, as a load balancer checks it:
/// p50, p99 and max.
fn probe_health(
    addr: SocketAddr,
    probes: usize,
) -> Result<(Duration, Duration, Duration), Box<dyn std::error::Error>> {
    let mut times = Vec::with_capacity(probes);
    for _ in 0..probes {
        let started = Instant::now();
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        get_health(&mut stream)?;
        times.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(2));
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Ok((at(0.5), at(0.99), times[times.len() - 1]))
}

/// True while the server has not closed the connection.
fn is_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let open = match stream.peek(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    open
}
