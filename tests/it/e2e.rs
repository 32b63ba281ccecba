//! The real binary, started as a user starts it: embedded PostgreSQL,
//! migrations, seed, printed tokens, HTTP on a socket, graceful shutdown.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real binary, run as a child process; shared with `supervisor`.
pub(crate) struct Service {
    child: Child,
    addr: String,
    pub(crate) database_url: String,
    tokens: Vec<(String, String)>,
    /// Where `/metrics` is served without a token, with METRICS_ADDR.
    metrics_addr: Option<String>,
}

pub(crate) fn start(data_dir: &Path) -> Service {
    start_with(data_dir, &[])
}

/// `start` with more environment variables.
pub(crate) fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_widget-data"))
        .envs(env.iter().copied())
        .env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env("DATA_DIR", data_dir)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start widget-data");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = None;
    let mut metrics_addr = None;
    let mut database_url = None;
    let mut tokens = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.trim().strip_prefix("widget-data listening on http://") {
            addr = Some(rest.to_owned());
        }
        if let Some(rest) = line.trim().strip_prefix("metrics (no token): http://") {
            metrics_addr = rest.strip_suffix("/metrics").map(str::to_owned);
        }
        if let Some(url) = line.trim().strip_prefix("database: ") {
            database_url = Some(url.to_owned());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [name @ ("anon" | "service_role"), token] = words[..] {
            tokens.push((name.to_owned(), token.to_owned()));
        }
        if let ["demo", "user", token] = words[..] {
            tokens.push(("demo user".to_owned(), token.to_owned()));
        }
        if line.trim().starts_with("try:") {
            break;
        }
    }
    // Keep draining stdout so the service never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Service {
        child,
        addr: addr.expect("the service printed its address"),
        database_url: database_url.expect("the service printed its database URL"),
        tokens,
        metrics_addr,
    }
}

/// A test that fails half-way must not leave the service (and so its
/// PostgreSQL) running: killing the service closes the watchdog's pipe.
impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Service {
    pub(crate) fn token(&self, name: &str) -> &str {
        &self
            .tokens
            .iter()
            .find(|(n, _)| n == name)
            .expect("printed token")
            .1
    }

    /// A minimal HTTP/1.1 client: one request per connection.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let status: u16 = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
        let payload = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, serde_json::from_str(payload).unwrap_or(Value::Null))
    }

    pub(crate) fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.call("GET", "/ready", None, None).0 != 200 {
            assert!(Instant::now() < deadline, "service never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then the process must finish by itself.
    pub(crate) fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                assert!(exit.success(), "exit status {exit}");
                return;
            }
            assert!(Instant::now() < deadline, "did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn the_binary_serves_the_seeded_data_and_restarts_on_the_same_cluster() {
    let dir = std::env::temp_dir().join(format!("widget-data-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let service = start(&dir);
    service.wait_ready();
    assert_eq!(service.call("GET", "/health", None, None).0, 200);
    let user = service.token("demo user").to_owned();
    let (status, body) = service.call(
        "POST",
        "/functions/v1/widget-data",
        Some(&user),
        Some(json!({"config": {"table": "servers", "aggregation": "count", "groupBy": "status"}})),
    );
    assert_eq!(status, 200, "{body}");
    let by_status = body["data"].clone();
    let total: i64 = by_status
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_i64().unwrap())
        .sum();
    assert!(
        (4000..=6000).contains(&total),
        "about 5,000 seeded servers, got {total}"
    );
    // The README's promise: the same counts as the SQL, on the printed database.
    let want: Vec<(String, i64)> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = widget_data::db::connect(&service.database_url, 1)
            .await
            .unwrap();
        let rows =
            sqlx::query_as("SELECT status, count(*) FROM servers GROUP BY status ORDER BY status")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows
    });
    let got: Vec<(String, i64)> = by_status
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["value"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 4, "all four statuses are seeded");
    // Without a token: 401, as JSON.
    let (status, body) = service.call(
        "POST",
        "/functions/v1/widget-data",
        None,
        Some(json!({"config": {"table": "servers"}})),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("missing_token"))
    );
    // The anon and service_role tokens work too.
    for name in ["anon", "service_role"] {
        let (status, _) = service.call(
            "POST",
            "/functions/v1/widget-data",
            Some(service.token(name)),
            Some(json!({"config": {"table": "servers"}})),
        );
        assert_eq!(status, 200, "{name}");
    }
    let (status, doc) = service.call("GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    assert!(doc["paths"]["/functions/v1/widget-data"].is_object());
    service.terminate();
    assert!(
        !dir.join("postgres").join("postmaster.pid").exists(),
        "PostgreSQL still running after shutdown"
    );

    // A second start reuses the cluster: same data, not seeded twice.
    let service = start(&dir);
    service.wait_ready();
    let (status, body) = service.call(
        "POST",
        "/functions/v1/widget-data",
        Some(service.token("demo user")),
        Some(json!({"config": {"table": "servers", "groupBy": "status"}})),
    );
    assert_eq!(status, 200);
    assert_eq!(body["data"], by_status);
    service.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

/// GET `path` at `addr` with an optional token: the status and the body.
fn get_text(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    )
}

#[test]
fn metrics_need_a_token_except_on_metrics_addr() {
    let dir = std::env::temp_dir().join(format!("widget-data-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let service = start_with(&dir, &[("METRICS_ADDR", "127.0.0.1:0")]);
    let open = service
        .metrics_addr
        .clone()
        .expect("the banner names METRICS_ADDR");
    let (status, text) = get_text(&open, "/metrics", None);
    assert_eq!(status, 200);
    assert!(text.contains("widget_data_cache_hits_total"), "{text}");
    assert_eq!(get_text(&service.addr, "/metrics", None).0, 401);
    assert_eq!(
        get_text(&service.addr, "/metrics", Some(service.token("anon"))).0,
        403
    );
    assert_eq!(
        get_text(
            &service.addr,
            "/metrics",
            Some(service.token("service_role"))
        )
        .0,
        200
    );
    // Only /metrics is served there.
    assert_eq!(
        get_text(&open, "/functions/v1/widget-data/stats", None).0,
        404
    );
    drop(service);
    let _ = std::fs::remove_dir_all(&dir);
}
