//! The link to Redis on a real `redis-server` (see `redis_server`): what
//! it stores and how long, claims, the fleet-wide rate limit, and how it
//! behaves when the server is killed, restarted or frozen, down to the
//! HTTP answers of two instances sharing one Redis.

use crate::harness::*;
use crate::redis_server::RedisServer;
use ::redis::aio::MultiplexedConnection;
use axum::http::{Method, StatusCode};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use widget_data::shared::{BreakerState, FAILURES_TO_OPEN, Redis, key};

/// `REDIS_TIMEOUT_MS`'s default.
const TIMEOUT: Duration = Duration::from_millis(50);

/// Well above the timeout, well below anything a user would wait for.
const FAST: Duration = Duration::from_millis(500);

async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn closed(redis: &Redis) {
    until("the breaker closes", || async {
        redis.figures().breaker == BreakerState::Closed
    })
    .await;
}

/// `PTTL key` on the test's own connection: milliseconds left, -1 for no
/// lifetime, -2 for no key.
async fn pttl(raw: &mut MultiplexedConnection, key: &str) -> i64 {
    ::redis::cmd("PTTL")
        .arg(key)
        .query_async(raw)
        .await
        .unwrap()
}

/// A client on `server`, once it has connected.
async fn client(server: &RedisServer) -> Arc<Redis> {
    let redis = Redis::start(&server.url(), TIMEOUT).expect("a client");
    closed(&redis).await;
    redis
}

#[tokio::test]
async fn a_value_set_with_a_lifetime_is_read_back_and_redis_holds_that_lifetime() {
    let server = RedisServer::start().await;
    let redis = client(&server).await;
    let mut raw = server.connection().await;
    let k = key("test", "value");
    assert_eq!(redis.get(&k).await, None);
    let value = b"\x00any bytes\xff";
    redis.set_ex(&k, value, 30).await;
    assert_eq!(redis.get(&k).await.as_deref(), Some(&value[..]));
    let ttl = pttl(&mut raw, &k).await;
    assert!((29_000..=30_000).contains(&ttl), "PTTL {ttl}");
    // Redis refuses `EX 0`; it is taken as the shortest lifetime.
    let brief = key("test", "brief");
    redis.set_ex(&brief, b"v", 0).await;
    let ttl = pttl(&mut raw, &brief).await;
    assert!((1..=1000).contains(&ttl), "PTTL {ttl}");
    let f = redis.figures();
    assert_eq!(
        (f.hits, f.misses, f.errors, f.skipped),
        (1, 1, 0, 0),
        "{f:?}"
    );
}

#[tokio::test]
async fn only_the_first_claim_of_a_key_wins_until_it_expires() {
    let server = RedisServer::start().await;
    let (a, b) = (client(&server).await, client(&server).await);
    let mut raw = server.connection().await;
    let k = key("test", "claim");
    assert_eq!(a.claim(&k, 10).await, Some(true));
    assert_eq!(a.claim(&k, 10).await, Some(false), "held, even by itself");
    assert_eq!(b.claim(&k, 10).await, Some(false), "held for the fleet");
    let ttl = pttl(&mut raw, &k).await;
    assert!((9_000..=10_000).contains(&ttl), "PTTL {ttl}");
    // Once it has gone (expired, here deleted), the next claim wins.
    let _: i64 = ::redis::cmd("DEL")
        .arg(&k)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(b.claim(&k, 10).await, Some(true));
}

#[tokio::test]
async fn the_rate_limit_allows_a_burst_then_says_how_long_to_wait() {
    let server = RedisServer::start().await;
    let redis = client(&server).await;
    let mut raw = server.connection().await;
    let k = key("rl", "burst");
    for i in 0..3 {
        assert_eq!(redis.gcra(&k, 2, 3).await, Some(Ok(())), "request {i}");
    }
    let wait = redis.gcra(&k, 2, 3).await.expect("an answer").unwrap_err();
    // 2 a second: the next one half a second after the burst began.
    assert!(
        wait > Duration::from_millis(300) && wait <= Duration::from_millis(500),
        "{wait:?}"
    );
    // The bucket's key goes once the bucket would be full again.
    let ttl = pttl(&mut raw, &k).await;
    assert!((1..=1500).contains(&ttl), "PTTL {ttl}");
    // The wait is enough (and one request's worth, no more).
    tokio::time::sleep(wait).await;
    assert_eq!(redis.gcra(&k, 2, 3).await, Some(Ok(())));
    assert!(matches!(redis.gcra(&k, 2, 3).await, Some(Err(_))));
    assert_eq!(
        redis.gcra(&key("rl", "another"), 2, 3).await,
        Some(Ok(())),
        "another key has its own bucket"
    );
}

#[tokio::test]
async fn two_clients_on_one_server_share_a_rate_limit() {
    let server = RedisServer::start().await;
    let (a, b) = (client(&server).await, client(&server).await);
    let k = key("rl", "shared");
    assert_eq!(a.gcra(&k, 1, 2).await, Some(Ok(())));
    assert_eq!(b.gcra(&k, 1, 2).await, Some(Ok(())));
    assert!(matches!(a.gcra(&k, 1, 2).await, Some(Err(_))));
    assert!(matches!(b.gcra(&k, 1, 2).await, Some(Err(_))));
}

#[tokio::test]
async fn a_killed_server_makes_calls_answer_none_quickly_until_it_is_back() {
    let mut server = RedisServer::start().await;
    let redis = client(&server).await;
    let k = key("test", "kill");
    redis.set_ex(&k, b"v", 60).await;
    assert!(redis.get(&k).await.is_some());

    server.kill();
    for i in 0..FAILURES_TO_OPEN {
        let started = Instant::now();
        assert_eq!(redis.get(&k).await, None, "call {i}");
        assert!(
            started.elapsed() < FAST,
            "call {i}: {:?}",
            started.elapsed()
        );
    }
    let f = redis.figures();
    assert_ne!(f.breaker, BreakerState::Closed, "{f:?}");
    assert_eq!(f.opened, 1, "{f:?}");
    assert_eq!(f.errors, u64::from(FAILURES_TO_OPEN), "{f:?}");

    // Open: every call answers at once, without touching the network.
    let started = Instant::now();
    assert_eq!(redis.get(&k).await, None);
    assert_eq!(redis.claim(&k, 5).await, None);
    assert_eq!(redis.gcra(&k, 1, 1).await, None);
    redis.set_ex(&k, b"v", 5).await;
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
    let g = redis.figures();
    assert_eq!((g.skipped, g.errors), (f.skipped + 4, f.errors), "{g:?}");

    server.restart().await;
    closed(&redis).await;
    assert_eq!(redis.get(&k).await, None, "a new, empty server");
    redis.set_ex(&k, b"again", 60).await;
    assert_eq!(redis.get(&k).await.as_deref(), Some(&b"again"[..]));
    assert_eq!(redis.figures().opened, 1);
}

#[tokio::test]
async fn a_frozen_server_makes_a_read_give_up_after_about_the_timeout() {
    let server = RedisServer::start().await;
    let redis = client(&server).await;
    let k = key("test", "freeze");
    redis.set_ex(&k, b"v", 60).await;

    server.freeze();
    let started = Instant::now();
    assert_eq!(redis.get(&k).await, None);
    let took = started.elapsed();
    assert!(took >= TIMEOUT && took < FAST, "{took:?}");
    let f = redis.figures();
    assert_eq!((f.errors, f.timeouts), (1, 1), "{f:?}");

    server.thaw();
    until("the thawed server answers", || async {
        redis.get(&k).await.as_deref() == Some(&b"v"[..])
    })
    .await;
}

#[tokio::test]
async fn a_client_started_before_its_server_connects_once_it_is_up() {
    let mut server = RedisServer::start().await;
    server.kill();
    let redis = Redis::start(&server.url(), TIMEOUT).expect("no error for a server that is down");
    let k = key("test", "late");
    assert_eq!(redis.claim(&k, 5).await, None);
    assert_ne!(redis.figures().breaker, BreakerState::Closed);

    server.restart().await;
    closed(&redis).await;
    assert_eq!(redis.claim(&k, 5).await, Some(true));
    assert_eq!(redis.figures().opened, 0, "it was never closed before");
}

#[tokio::test]
async fn dropping_the_client_closes_its_connection() {
    let server = RedisServer::start().await;
    let mut raw = server.connection().await;
    let mut clients = async || -> usize {
        let list: String = ::redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut raw)
            .await
            .unwrap();
        list.lines().count()
    };
    assert_eq!(clients().await, 1, "the test's own");
    let redis = client(&server).await;
    assert_eq!(clients().await, 2);
    drop(redis);
    let deadline = Instant::now() + Duration::from_secs(10);
    while clients().await != 1 {
        assert!(Instant::now() < deadline, "the connection stayed open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `RATE_LIMIT_PER_SEC=1`, `RATE_LIMIT_BURST=2` and Redis at `url`.
fn limited(url: &str) -> [(&str, &str); 3] {
    [
        ("REDIS_URL", url),
        ("RATE_LIMIT_PER_SEC", "1"),
        ("RATE_LIMIT_BURST", "2"),
    ]
}

async fn connected(t: &TestApp) {
    closed(t.app.redis.as_ref().expect("REDIS_URL was set")).await;
}

#[tokio::test]
async fn two_instances_on_one_redis_share_a_callers_rate_limit() {
    let server = RedisServer::start().await;
    let url = server.url();
    let (a, b) = (
        test_app_with(&limited(&url)).await,
        test_app_with(&limited(&url)).await,
    );
    connected(&a).await;
    connected(&b).await;
    let demo = user(DEMO_USER);
    let path = "/rest/v1/dashboards";
    for t in [&a, &b] {
        let r = t.request(Method::GET, path, Some(&demo), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // A has answered only one, but the fleet has answered its burst.
    for t in [&a, &b] {
        let r = t.request(Method::GET, path, Some(&demo), None).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert_eq!(r.body["code"], "rate_limited");
        assert_eq!(r.headers["retry-after"], "1");
    }
    let other = b
        .request(Method::GET, path, Some(&user(OTHER_USER)), None)
        .await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "another caller, another bucket"
    );
}

#[tokio::test]
async fn with_redis_killed_requests_are_answered_under_the_local_limit() {
    let mut server = RedisServer::start().await;
    let t = test_app_with(&limited(&server.url())).await;
    connected(&t).await;
    let demo = user(DEMO_USER);
    let path = "/rest/v1/dashboards";
    let r = t.request(Method::GET, path, Some(&demo), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    server.kill();
    // Counted in Redis, the first request took nothing from this
    // instance's own bucket: a burst of two is left.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let r = t.request(Method::GET, path, Some(&demo), None).await;
        assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
        statuses.push(r.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let f = t.app.redis.as_ref().unwrap().figures();
    assert_eq!(f.errors, 3, "each one asked Redis first: {f:?}");
}
