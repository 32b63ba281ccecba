//! The address classification, pure; then end-to-end fetches from an
//! origin this test starts on loopback, writing HTTP/1.1 by hand so it can
//! lie. Nothing here sends a packet beyond loopback: every refusal is of a
//! loopback address (127.0.0.2, its other spellings, `localhost`), and the
//! listener bound there proves it was never connected to.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------
// Classification: no connection.

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().expect("an IPv4 address"))
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().expect("an IPv6 address"))
}

#[test]
fn every_special_purpose_ipv4_range_is_not_public() {
    for (ip, why) in [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "this network"),
        ("10.0.0.1", "private 10/8"),
        ("10.255.255.255", "private 10/8, last"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT, last"),
        ("127.0.0.1", "loopback"),
        ("127.0.0.2", "loopback"),
        ("127.255.255.255", "loopback, last"),
        ("169.254.169.254", "link-local: cloud metadata"),
        ("172.16.0.1", "private 172.16/12"),
        ("172.31.255.255", "private 172.16/12, last"),
        ("192.0.0.8", "IETF protocol assignments"),
        ("192.0.2.1", "TEST-NET-1"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("192.168.1.1", "private 192.168/16"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking, last"),
        ("198.51.100.7", "TEST-NET-2"),
        ("203.0.113.9", "TEST-NET-3"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast (SSDP)"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
    ] {
        assert!(!is_public(v4(ip)), "{ip} ({why}) was called public");
    }
}

#[test]
fn ordinary_ipv4_addresses_next_to_the_special_ranges_are_public() {
    for ip in [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
    ] {
        assert!(is_public(v4(ip)), "{ip} was called not public");
    }
}

#[test]
fn every_special_purpose_ipv6_range_is_not_public() {
    for (ip, why) in [
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::8.8.8.8", "IPv4-compatible (deprecated)"),
        ("::ffff:127.0.0.1", "mapped loopback"),
        ("::ffff:127.0.0.2", "mapped loopback"),
        ("::ffff:10.0.0.1", "mapped private"),
        ("::ffff:169.254.169.254", "mapped link-local"),
        ("::ffff:100.64.0.1", "mapped CGNAT"),
        ("::ffff:0.0.0.0", "mapped unspecified"),
        ("64:ff9b::7f00:1", "NAT64 of loopback"),
        ("64:ff9b::a9fe:a9fe", "NAT64 of link-local"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("100::1", "discard-only"),
        ("2001::1", "Teredo"),
        ("2001:2::1", "benchmarking"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation (RFC 9637)"),
        ("2002:7f00:1::1", "6to4 of loopback"),
        ("2002:c0a8:101::1", "6to4 of 192.168.1.1"),
        ("fc00::1", "unique-local"),
        ("fd12:3456:789a::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local, last"),
        ("fec0::1", "site-local (deprecated)"),
        ("ff02::1", "multicast"),
        ("4000::1", "unallocated"),
    ] {
        assert!(!is_public(v6(ip)), "{ip} ({why}) was called public");
    }
}

#[test]
fn global_ipv6_and_embedded_public_ipv4_are_public() {
    for ip in [
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2001:200::1",
    ] {
        assert!(is_public(v6(ip)), "{ip} was called not public");
    }
}

#[test]
fn the_allow_list_keeps_ips_and_names_apart() {
    let allow = AllowList::new(&[
        "127.0.0.1".to_owned(),
        " [::1] ".to_owned(),
        "Bundles.Example.".to_owned(),
        String::new(),
    ]);
    assert!(allow.admits_ip(v4("127.0.0.1")));
    assert!(allow.admits_ip(v6("::1")));
    assert!(!allow.admits_ip(v4("127.0.0.2")));
    assert!(allow.admits_name("bundles.example"));
    assert!(allow.admits_name("BUNDLES.example."));
    // Listing an IP does not admit a name that resolves to it.
    assert!(!allow.admits_name("localhost"));
    assert!(!allow.admits_name("127.0.0.1"));
}

#[test]
fn only_javascript_and_css_media_types_are_bundles() {
    for ok in [
        "text/javascript",
        "text/javascript; charset=utf-8",
        "Application/JavaScript",
        "application/x-javascript;charset=UTF-8",
        "text/css",
    ] {
        assert!(is_bundle_media_type(ok), "{ok} was refused");
    }
    for refused in [
        "text/html",
        "application/json",
        "text/plain",
        "application/octet-stream",
        "",
        "text/javascriptx",
        "image/svg+xml",
    ] {
        assert!(!is_bundle_media_type(refused), "{refused} was accepted");
    }
}

#[test]
fn each_error_has_its_wire_code() {
    assert_eq!(FetchError::TooLarge { limit: 1 }.code(), "bundle_too_large");
    assert_eq!(
        FetchError::Failed(String::new()).code(),
        "bundle_fetch_failed"
    );
    assert_eq!(
        FetchError::BadUrl(String::new()).code(),
        "bundle_fetch_failed"
    );
    assert_eq!(
        FetchError::ForbiddenAddress(String::new()).code(),
        "bundle_forbidden_address"
    );
    assert_eq!(
        FetchError::BadContentType(String::new()).code(),
        "bundle_bad_content_type"
    );
}

#[test]
fn there_is_a_desktop_a_mobile_and_a_bot_user_agent() {
    let labels: Vec<&str> = USER_AGENTS.iter().map(|(label, _)| *label).collect();
    assert_eq!(labels, ["desktop", "mobile", "bot"]);
    let agents: HashSet<&str> = USER_AGENTS.iter().map(|(_, ua)| *ua).collect();
    assert_eq!(agents.len(), 3, "the User-Agents differ");
}

// ---------------------------------------------------------------------------
// The loopback origin.

const CAP: usize = 64 * 1024;
const OVER_CAP: usize = 200 * 1024;

/// What the origin was asked.
struct Asked {
    path: String,
    user_agent: String,
}

/// What it answers: raw bytes, then either close or hold the socket open.
struct Reply {
    bytes: Vec<u8>,
    hang: bool,
}

impl Reply {
    fn close(bytes: Vec<u8>) -> Self {
        Self { bytes, hang: false }
    }
    fn hang(bytes: Vec<u8>) -> Self {
        Self { bytes, hang: true }
    }
}

struct Origin {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Origin {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// An origin on 127.0.0.1 that answers each request with `answer`.
async fn origin(answer: impl Fn(&Asked, u16) -> Reply + Send + Sync + 'static) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the origin");
    let port = listener.local_addr().expect("its address").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let answer = Arc::clone(&answer);
            tokio::spawn(async move { serve_one(socket, port, &*answer).await });
        }
    });
    Origin { port, accepted }
}

async fn serve_one(
    mut socket: TcpStream,
    port: u16,
    answer: &(dyn Fn(&Asked, u16) -> Reply + Send + Sync),
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let user_agent = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("user-agent")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let reply = answer(&Asked { path, user_agent }, port);
    // The client may hang up once it has seen enough: that is the point.
    let _ = socket.write_all(&reply.bytes).await;
    let _ = socket.flush().await;
    if reply.hang {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

/// A raw response: the status line and headers exactly as given.
fn raw(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// An honest 200 with a body of `content_type`.
fn ok(content_type: &str, body: &[u8]) -> Vec<u8> {
    raw(
        "200 OK",
        &[
            ("Content-Type", content_type.to_owned()),
            ("Content-Length", body.len().to_string()),
            ("Connection", "close".to_owned()),
        ],
        body,
    )
}

fn redirect(location: &str) -> Vec<u8> {
    raw(
        "302 Found",
        &[
            ("Location", location.to_owned()),
            ("Content-Length", "0".to_owned()),
            ("Connection", "close".to_owned()),
        ],
        b"",
    )
}

/// `len` bytes of script, sent as chunks of 8 KiB.
fn chunked(len: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(8 * 1024);
        body.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'/', n));
        body.extend_from_slice(b"\r\n");
        left -= n;
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

fn fetcher(allow_hosts: &[&str]) -> Fetcher {
    Fetcher::new(FetchPolicy {
        max_bytes: CAP,
        timeout: Duration::from_secs(5),
        max_redirects: 3,
        allow_hosts: allow_hosts.iter().map(|h| (*h).to_owned()).collect(),
    })
}

fn local_fetcher() -> Fetcher {
    fetcher(&["127.0.0.1"])
}

const BOT: &str = "widget-data test";

/// A listener on a loopback address that is not on the allow list; the
/// test later proves nobody connected to it.
async fn trap(ip: &str) -> TcpListener {
    TcpListener::bind((ip, 0)).await.expect("bind the trap")
}

async fn assert_untouched(trap: &TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(200), trap.accept()).await;
    assert!(
        accepted.is_err(),
        "the guard connected to {:?}",
        trap.local_addr()
    );
}

fn assert_forbidden(result: Result<Fetched, FetchError>, what: &str) {
    match result {
        Err(FetchError::ForbiddenAddress(why)) => assert!(!why.is_empty()),
        other => panic!("{what}: expected a forbidden address, got {other:?}"),
    }
}

fn assert_too_large(result: Result<Fetched, FetchError>) {
    match result {
        Err(FetchError::TooLarge { limit }) => assert_eq!(limit, CAP),
        other => panic!("expected too large, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// End to end.

#[tokio::test]
async fn a_javascript_bundle_is_fetched_whole_with_its_content_type() {
    let script = b"export default function widget() { return 42; }\n".to_vec();
    let body = script.clone();
    let origin = origin(move |asked, _| {
        assert_eq!(asked.path, "/bundle.js");
        Reply::close(ok("text/javascript; charset=utf-8", &body))
    })
    .await;
    let fetched = local_fetcher()
        .fetch(&origin.url("/bundle.js"), BOT)
        .await
        .expect("the bundle");
    assert_eq!(fetched.bytes, script);
    assert_eq!(fetched.content_type, "text/javascript; charset=utf-8");
    assert_eq!(fetched.final_url.as_str(), origin.url("/bundle.js"));
}

#[tokio::test]
async fn a_bundle_exactly_at_the_cap_is_accepted_without_a_length() {
    let origin = origin(|_, _| {
        Reply::close(raw(
            "200 OK",
            &[
                ("Content-Type", "text/css".to_owned()),
                ("Connection", "close".to_owned()),
            ],
            &vec![b'/'; CAP],
        ))
    })
    .await;
    let fetched = local_fetcher()
        .fetch(&origin.url("/"), BOT)
        .await
        .expect("the bundle");
    assert_eq!(fetched.bytes.len(), CAP);
}

#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused_before_the_body() {
    // Headers only, then silence: waiting for the body would time out.
    let origin = origin(|_, _| {
        Reply::hang(raw(
            "200 OK",
            &[
                ("Content-Type", "text/javascript".to_owned()),
                ("Content-Length", (CAP + 1).to_string()),
            ],
            b"",
        ))
    })
    .await;
    let started = Instant::now();
    assert_too_large(local_fetcher().fetch(&origin.url("/"), BOT).await);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_content_length_understating_a_chunked_body_does_not_lift_the_cap() {
    let origin = origin(|_, _| {
        let mut reply = raw(
            "200 OK",
            &[
                ("Content-Type", "text/javascript".to_owned()),
                ("Content-Length", "100".to_owned()),
                ("Transfer-Encoding", "chunked".to_owned()),
            ],
            b"",
        );
        reply.extend(chunked(OVER_CAP));
        Reply::hang(reply)
    })
    .await;
    assert_too_large(local_fetcher().fetch(&origin.url("/"), BOT).await);
}

#[tokio::test]
async fn a_content_length_understating_the_body_lets_in_only_the_declared_bytes() {
    // HTTP frames the body by its Content-Length, as a browser would: the
    // rest of the stream is never read as the bundle.
    let origin = origin(|_, _| {
        Reply::hang(raw(
            "200 OK",
            &[
                ("Content-Type", "text/javascript".to_owned()),
                ("Content-Length", "100".to_owned()),
            ],
            &vec![b'/'; OVER_CAP],
        ))
    })
    .await;
    let fetched = local_fetcher()
        .fetch(&origin.url("/"), BOT)
        .await
        .expect("the declared bytes");
    assert_eq!(fetched.bytes.len(), 100);
}

#[tokio::test]
async fn a_content_length_overstating_the_body_is_a_failed_fetch() {
    let origin = origin(|_, _| {
        Reply::close(raw(
            "200 OK",
            &[
                ("Content-Type", "text/javascript".to_owned()),
                ("Content-Length", "1000".to_owned()),
            ],
            b"// only this",
        ))
    })
    .await;
    let result = local_fetcher().fetch(&origin.url("/"), BOT).await;
    assert!(matches!(result, Err(FetchError::Failed(_))), "{result:?}");
}

#[tokio::test]
async fn a_body_without_a_length_is_cut_off_at_the_cap() {
    let origin = origin(|_, _| {
        Reply::hang(raw(
            "200 OK",
            &[
                ("Content-Type", "text/javascript".to_owned()),
                ("Connection", "close".to_owned()),
            ],
            &vec![b'/'; OVER_CAP],
        ))
    })
    .await;
    assert_too_large(local_fetcher().fetch(&origin.url("/"), BOT).await);
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_cap() {
    let origin = origin(|_, _| {
        let mut reply = raw(
            "200 OK",
            &[
                ("Content-Type", "text/javascript".to_owned()),
                ("Transfer-Encoding", "chunked".to_owned()),
            ],
            b"",
        );
        reply.extend(chunked(OVER_CAP));
        Reply::hang(reply)
    })
    .await;
    assert_too_large(local_fetcher().fetch(&origin.url("/"), BOT).await);
}

#[tokio::test]
async fn anything_but_javascript_or_css_is_refused() {
    let origin = origin(|asked, _| {
        Reply::close(match asked.path.as_str() {
            "/html" => ok("text/html; charset=utf-8", b"<script>alert(1)</script>"),
            "/json" => ok("application/json", b"{}"),
            _ => raw(
                "200 OK",
                &[
                    ("Content-Length", "2".to_owned()),
                    ("Connection", "close".to_owned()),
                ],
                b"//",
            ),
        })
    })
    .await;
    let fetcher = local_fetcher();
    for path in ["/html", "/json", "/no-content-type"] {
        let result = fetcher.fetch(&origin.url(path), BOT).await;
        assert!(
            matches!(result, Err(FetchError::BadContentType(_))),
            "{path}: {result:?}"
        );
    }
}

#[tokio::test]
async fn an_encoded_body_that_was_not_asked_for_is_refused() {
    let origin = origin(|_, _| {
        Reply::close(raw(
            "200 OK",
            &[
                ("Content-Type", "text/javascript".to_owned()),
                ("Content-Encoding", "gzip".to_owned()),
                ("Content-Length", "4".to_owned()),
                ("Connection", "close".to_owned()),
            ],
            b"\x1f\x8b\x08\x00",
        ))
    })
    .await;
    let result = local_fetcher().fetch(&origin.url("/"), BOT).await;
    assert!(matches!(result, Err(FetchError::Failed(_))), "{result:?}");
}

#[tokio::test]
async fn an_answer_other_than_200_is_a_failed_fetch() {
    let origin = origin(|_, _| {
        Reply::close(raw(
            "404 Not Found",
            &[("Content-Length", "0".to_owned())],
            b"",
        ))
    })
    .await;
    let result = local_fetcher().fetch(&origin.url("/"), BOT).await;
    assert!(matches!(result, Err(FetchError::Failed(_))), "{result:?}");
}

/// `/hops/N` redirects to `/hops/N-1`; `/hops/0` is the bundle.
async fn chain() -> Origin {
    origin(|asked, _| {
        let n: usize = asked
            .path
            .strip_prefix("/hops/")
            .and_then(|n| n.parse().ok())
            .expect("a hop number");
        Reply::close(if n == 0 {
            ok("application/javascript", b"// arrived")
        } else {
            redirect(&format!("/hops/{}", n - 1))
        })
    })
    .await
}

#[tokio::test]
async fn three_redirects_are_followed() {
    let origin = chain().await;
    let fetched = local_fetcher()
        .fetch(&origin.url("/hops/3"), BOT)
        .await
        .expect("the bundle after three redirects");
    assert_eq!(fetched.bytes, &b"// arrived"[..]);
    assert_eq!(fetched.final_url.as_str(), origin.url("/hops/0"));
}

#[tokio::test]
async fn a_fourth_redirect_is_refused() {
    let origin = chain().await;
    let result = local_fetcher().fetch(&origin.url("/hops/4"), BOT).await;
    match result {
        Err(FetchError::Failed(why)) => assert!(why.contains("redirects"), "{why}"),
        other => panic!("expected too many redirects, got {other:?}"),
    }
    assert_eq!(
        origin.accepted.load(Ordering::SeqCst),
        4,
        "the fifth URL was not asked for"
    );
}

#[tokio::test]
async fn a_redirect_from_the_allowed_origin_to_a_refused_address_connects_nowhere() {
    let trap = trap("127.0.0.2").await;
    let port = trap.local_addr().expect("the trap's address").port();
    let origin = origin(move |asked, _| {
        Reply::close(match asked.path.as_str() {
            "/literal" => redirect(&format!("http://127.0.0.2:{port}/bundle.js")),
            "/decimal" => redirect(&format!("http://2130706434:{port}/bundle.js")),
            _ => redirect(&format!("http://localhost:{port}/bundle.js")),
        })
    })
    .await;
    let fetcher = local_fetcher();
    for path in ["/literal", "/decimal", "/name"] {
        assert_forbidden(fetcher.fetch(&origin.url(path), BOT).await, path);
    }
    assert_untouched(&trap).await;
}

#[tokio::test]
async fn a_redirect_to_another_scheme_is_refused() {
    let origin = origin(|_, _| Reply::close(redirect("file:///etc/passwd"))).await;
    let result = local_fetcher().fetch(&origin.url("/"), BOT).await;
    assert!(matches!(result, Err(FetchError::BadUrl(_))), "{result:?}");
}

#[tokio::test]
async fn loopback_addresses_off_the_allow_list_are_refused_in_every_spelling_without_a_connection()
{
    let trap = trap("127.0.0.2").await;
    let port = trap.local_addr().expect("the trap's address").port();
    let fetcher = local_fetcher();
    for host in [
        "127.0.0.2",
        "2130706434",
        "0x7f000002",
        "0x7f.0.0.2",
        "0177.0.0.2",
        "127.0.2",
        "[::ffff:127.0.0.2]",
        "[::ffff:7f00:2]",
    ] {
        let url = format!("http://{host}:{port}/bundle.js");
        assert_forbidden(fetcher.fetch(&url, BOT).await, &url);
    }
    assert_untouched(&trap).await;
}

#[tokio::test]
async fn localhost_is_refused_when_only_its_address_is_allowed() {
    let trap = trap("127.0.0.1").await;
    let port = trap.local_addr().expect("the trap's address").port();
    // Only spellings /etc/hosts answers: any other name would be asked of
    // the system's DNS server, which is not on loopback.
    for host in ["localhost", "LOCALHOST"] {
        let url = format!("http://{host}:{port}/bundle.js");
        assert_forbidden(local_fetcher().fetch(&url, BOT).await, &url);
    }
    assert_untouched(&trap).await;
}

#[tokio::test]
async fn a_name_on_the_allow_list_is_admitted() {
    let origin = origin(|_, _| Reply::close(ok("text/javascript", b"// local"))).await;
    let url = format!("http://localhost:{}/bundle.js", origin.port);
    let fetched = fetcher(&["localhost"])
        .fetch(&url, BOT)
        .await
        .expect("the bundle");
    assert_eq!(fetched.bytes, &b"// local"[..]);
}

#[tokio::test]
async fn a_short_spelling_of_the_allowed_address_reaches_it() {
    // 127.1 is 127.0.0.1: the guard judges the address, not the spelling.
    let origin = origin(|_, _| Reply::close(ok("text/javascript", b"// 127.1"))).await;
    let url = format!("http://127.1:{}/bundle.js", origin.port);
    let fetched = local_fetcher().fetch(&url, BOT).await.expect("the bundle");
    assert_eq!(fetched.final_url.host_str(), Some("127.0.0.1"));
}

#[tokio::test]
async fn only_http_and_https_urls_are_fetched() {
    let fetcher = local_fetcher();
    for url in [
        "file:///etc/passwd",
        "ftp://127.0.0.1/bundle.js",
        "data:text/javascript,alert(1)",
        "javascript:alert(1)",
        "/bundle.js",
        "http://user:secret@127.0.0.1/bundle.js",
    ] {
        let result = fetcher.fetch(url, BOT).await;
        assert!(
            matches!(result, Err(FetchError::BadUrl(_))),
            "{url}: {result:?}"
        );
    }
}

#[tokio::test]
async fn an_origin_that_never_answers_times_out() {
    let origin = origin(|_, _| Reply::hang(Vec::new())).await;
    let fetcher = Fetcher::new(FetchPolicy {
        timeout: Duration::from_millis(300),
        allow_hosts: vec!["127.0.0.1".to_owned()],
        ..FetchPolicy::default()
    });
    let started = Instant::now();
    let result = fetcher.fetch(&origin.url("/"), BOT).await;
    assert!(matches!(result, Err(FetchError::Failed(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn each_user_agent_gets_its_own_answer() {
    // A switch aimed at browsers: bots see a clean bundle.
    let origin = origin(|asked, _| {
        let body = if asked.user_agent.contains("bot") {
            "// clean".to_owned()
        } else {
            format!("// for {}", asked.user_agent)
        };
        Reply::close(ok("text/javascript", body.as_bytes()))
    })
    .await;
    let fetcher = local_fetcher();
    for (label, agent) in USER_AGENTS {
        let fetched = fetcher
            .fetch(&origin.url("/bundle.js"), agent)
            .await
            .expect("the bundle");
        let expected = if *label == "bot" {
            "// clean".to_owned()
        } else {
            format!("// for {agent}")
        };
        assert_eq!(fetched.bytes, expected.as_bytes(), "{label}");
    }
}
