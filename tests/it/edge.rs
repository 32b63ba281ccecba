//! The HTTP edge over real sockets: slow and idle connections are closed on
//! time, the connection cap holds, an unread body closes its connection
//! openly, the client's address reaches handlers, and shutdown finishes the
//! requests in flight.

use crate::harness::*;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use serde_json::json;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use widget_data::http::serve::{EdgeLimits, bind, serve};

/// `serve` on 127.0.0.1:0, stopped by dropping or sending on `stop`.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

async fn start(router: Router, limits: EdgeLimits) -> Server {
    let listener = bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, router, limits, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        task,
    }
}

/// The app on a fresh database, served with the edge limits its
/// configuration gives.
async fn start_app(extra: &[(&str, &str)]) -> (TestApp, Server) {
    let t = test_app_with(extra).await;
    // The file limit of this machine; the tests set MAX_CONNECTIONS.
    let limits = EdgeLimits::from_config(&t.app.config, 20_000);
    let server = start(t.router.clone(), limits).await;
    (t, server)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads one response with a `content-length` body.
async fn read_response(stream: &mut TcpStream) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .ok_or_else(|| io::Error::other(format!("no content-length in {head:?}")))?;
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(Response {
                status,
                headers,
                body: buf[end + 4..end + 4 + length].to_vec(),
            });
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n";

async fn get_health(addr: SocketAddr) -> io::Result<(Response, Duration)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(HEALTH).await?;
    let response = tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok((response, started.elapsed()))
}

/// Waits until the server closes `stream` (end of stream or reset),
/// reading and discarding anything it sends first (hyper answers a head
/// cut short with a 408). `trickle`: meanwhile send one byte every 100 ms.
async fn wait_for_close(stream: &mut TcpStream, trickle: bool) {
    let mut buf = [0u8; 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = tick.tick(), if trickle => {
                if stream.write_all(b"a").await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_at_the_header_timeout_and_health_still_answers() {
    let timeout = Duration::from_secs(1);
    let (_t, server) = start_app(&[
        ("HTTP_HEADER_TIMEOUT_SECS", "1"),
        ("MAX_CONNECTIONS", "1000"),
    ])
    .await;
    let addr = server.addr;
    let mut flood = Vec::new();
    for i in 0..300 {
        flood.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let mut since = Instant::now();
            let kind = match i % 3 {
                // Nothing sent at all.
                0 => "idle",
                // A head that never ends, a byte at a time.
                1 => {
                    stream
                        .write_all(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
                        .await
                        .expect("write");
                    "slowloris"
                }
                // One request answered, then idle on keep-alive.
                _ => {
                    stream.write_all(HEALTH).await.expect("write");
                    let response = read_response(&mut stream).await.expect("first answer");
                    assert_eq!(response.status, 200);
                    since = Instant::now();
                    "keep-alive"
                }
            };
            // Bounded, so a server that never closes fails the test
            // instead of hanging it.
            let waited = tokio::time::timeout(
                Duration::from_secs(5),
                wait_for_close(&mut stream, kind == "slowloris"),
            )
            .await;
            (kind, since.elapsed(), waited.is_ok())
        }));
    }
    // While the flood is held, the service still answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (during, _) = get_health(addr).await.expect("/health during the flood");
    assert_eq!(during.status, 200);

    for held in flood {
        let (kind, open_for, closed) = held.await.expect("flood task");
        assert!(closed, "a {kind} connection was never closed");
        assert!(
            open_for >= timeout - Duration::from_millis(150),
            "a {kind} connection was closed after {open_for:?}, before the timeout"
        );
        assert!(
            open_for <= timeout + Duration::from_secs(2),
            "a {kind} connection was still open after {open_for:?}"
        );
    }
    let mut took = Vec::new();
    for _ in 0..5 {
        let (response, elapsed) = get_health(addr).await.expect("/health after the flood");
        assert_eq!(response.status, 200);
        took.push(elapsed);
    }
    took.sort();
    assert!(
        took[2] < Duration::from_millis(100),
        "/health after the flood took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_max_connections_waits_until_a_slot_frees() {
    let (_t, server) =
        start_app(&[("HTTP_HEADER_TIMEOUT_SECS", "30"), ("MAX_CONNECTIONS", "2")]).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(HEALTH).await.expect("write");
        let response = read_response(&mut stream).await.expect("answer");
        assert_eq!(response.status, 200);
        open.push(stream);
    }
    // The kernel completes the handshake, but the server does not accept.
    let mut third = TcpStream::connect(server.addr).await.expect("connect");
    third.write_all(HEALTH).await.expect("write");
    let early = tokio::time::timeout(Duration::from_millis(500), read_response(&mut third)).await;
    assert!(
        early.is_err(),
        "a third connection was served while two were open"
    );
    drop(open.pop());
    let late = tokio::time::timeout(Duration::from_secs(5), read_response(&mut third))
        .await
        .expect("the third connection is served once one closes")
        .expect("answer");
    assert_eq!(late.status, 200);
}

/// A POST to the widget-data endpoint; the body goes in a second write
/// when `body_trails`, as a client streaming a body sends it.
async fn post(
    stream: &mut TcpStream,
    token: &str,
    body: &str,
    body_trails: bool,
) -> io::Result<Response> {
    let head = format!(
        "POST /functions/v1/widget-data HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if body_trails {
        stream.write_all(head.as_bytes()).await?;
        stream.flush().await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
        stream.write_all(body.as_bytes()).await?;
    } else {
        stream.write_all(format!("{head}{body}").as_bytes()).await?;
    }
    tokio::time::timeout(Duration::from_secs(10), read_response(stream))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

fn query_body() -> String {
    json!({"config": {"table": "servers", "groupBy": "status"}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_body_closes_the_connection_and_says_so() {
    let (_t, server) = start_app(&[]).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // A body that is read keeps the connection for the next request.
    let token = user(DEMO_USER);
    for _ in 0..2 {
        let ok = post(&mut stream, &token, &query_body(), false)
            .await
            .expect("answer");
        assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
        assert!(!ok.closes(), "a read body closed the connection");
    }
    let rejected = post(&mut stream, "not-a-token", &query_body(), true)
        .await
        .expect("answer");
    assert_eq!(rejected.status, 401);
    assert!(rejected.closes(), "headers: {:?}", rejected.headers);
    // And the server does close it.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_rejected_and_normal_requests_on_reused_connections_never_fail() {
    let (_t, server) = start_app(&[]).await;
    let good = user(DEMO_USER);
    // A valid token whose role is not one the service serves: a 403.
    let stranger = sign(json!({"role": "stranger", "exp": now() + 600}));
    let body = query_body();
    let mut stream: Option<TcpStream> = None;
    let (mut failures, mut connections, mut closes) = (Vec::new(), 0, 0);
    for i in 0..400 {
        let (token, expected, trails) = match i % 5 {
            1 => ("not-a-token", 401, true),
            3 => (stranger.as_str(), 403, true),
            _ => (good.as_str(), 200, false),
        };
        if stream.is_none() {
            stream = Some(TcpStream::connect(server.addr).await.expect("connect"));
            connections += 1;
        }
        let Some(conn) = stream.as_mut() else {
            unreachable!("connected above")
        };
        match post(conn, token, &body, trails).await {
            Ok(response) if response.status == expected => {
                // A client that honours `Connection: close` opens a new one.
                if response.closes() {
                    closes += 1;
                    stream = None;
                }
                assert_eq!(
                    response.closes(),
                    expected != 200,
                    "request {i}: only an unread body closes the connection"
                );
            }
            Ok(response) => {
                failures.push(format!("request {i}: status {}", response.status));
                stream = None;
            }
            Err(e) => {
                failures.push(format!("request {i}: {e}"));
                stream = None;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert_eq!(closes, 160);
    assert!(connections <= 161, "{connections} connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_the_client_address() {
    let router = Router::new().route(
        "/whoami",
        get(|ConnectInfo(addr): ConnectInfo<SocketAddr>| async move { addr.to_string() }),
    );
    let server = start(
        router,
        EdgeLimits {
            header_timeout: Duration::from_secs(5),
            max_connections: 10,
        },
    )
    .await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    let response = read_response(&mut stream).await.expect("answer");
    assert_eq!(response.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&response.body),
        stream.local_addr().expect("address").to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight_and_refuses_new_connections() {
    let router = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "done"
        }),
    );
    let mut server = start(
        router,
        EdgeLimits {
            header_timeout: Duration::from_secs(5),
            max_connections: 10,
        },
    )
    .await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("write");
    // An idle keep-alive connection does not hold shutdown up.
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    idle.write_all(HEALTH).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = server.stop.take().map(|stop| stop.send(()));
    let response = read_response(&mut stream).await.expect("the slow answer");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"done");
    let served = tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve returns once the request is done")
        .expect("serve task");
    assert!(served.is_ok(), "{served:?}");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "a connection was accepted after shutdown"
    );
}
