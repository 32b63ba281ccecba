//! The service's link to Redis: the level of the cache every instance
//! shares and the fleet-wide rate limit.
//!
//! Takes a Redis URL and the most one call may take (`REDIS_TIMEOUT_MS`);
//! gives [`Redis`], whose calls answer `None` instead of failing, and
//! [`RedisFigures`] to watch it. It must never fail or slow a request
//! beyond that timeout: Redis is an optimisation, PostgreSQL and each
//! instance's own limiter are the ground truth.
//!
//! One multiplexed `ConnectionManager` per instance, never a pool of them
//! (the redis crate's maintainers advise against pooling those). A
//! [`Breaker`] stops calls at once after a few failures in a row; a
//! background task started with the client probes the server and closes it
//! again.

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Every key the service writes begins with this, so the service can share
/// a Redis with others and its keys can be found (and flushed) together.
pub const PREFIX: &str = "widget-data:";

/// `widget-data:<kind>:<id>`: `kind` names what the key holds (`rl` for
/// rate limits, say), `id` tells it apart from its kin.
pub fn key(kind: &str, id: &str) -> String {
    format!("{PREFIX}{kind}:{id}")
}

/// Consecutive failures (errors or timeouts) that open the breaker.
pub const FAILURES_TO_OPEN: u32 = 3;

/// How often the background task probes a server the breaker is open on.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// The least time a connection attempt is given. Calls never wait on one
/// longer than their own timeout, but an attempt cut off at 50 ms could
/// never reach a Redis whose TLS handshake takes longer.
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether calls go to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go to Redis.
    Closed,
    /// Calls answer `None` at once, without touching the network.
    Open,
    /// Open, and the background task's probe is under way.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }

    fn from_u8(n: u8) -> Self {
        match n {
            CLOSED => BreakerState::Closed,
            HALF_OPEN => BreakerState::HalfOpen,
            _ => BreakerState::Open,
        }
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// The circuit breaker's rules, with no I/O: [`FAILURES_TO_OPEN`]
/// failures in a row open it (a success in between starts the count
/// again); while it is open only the probe reaches Redis, and the probe's
/// success closes it. Lock-free, so the hot path is one atomic load.
#[derive(Debug)]
pub struct Breaker {
    state: AtomicU8,
    failures: AtomicU32,
    opened: AtomicU64,
    failures_to_open: u32,
}

impl Breaker {
    /// A breaker that is open: nothing is known to answer yet. This first
    /// opening is not counted in [`Breaker::opened`].
    pub fn new(failures_to_open: u32) -> Self {
        Self {
            state: AtomicU8::new(OPEN),
            failures: AtomicU32::new(0),
            opened: AtomicU64::new(0),
            failures_to_open: failures_to_open.max(1),
        }
    }

    /// Whether a call may go to Redis now.
    pub fn allow(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Times it went from closed to open.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// A call or the probe was answered: Redis is there. `true` when this
    /// closed the breaker.
    pub fn record_success(&self) -> bool {
        self.failures.store(0, Ordering::Relaxed);
        self.state.swap(CLOSED, Ordering::AcqRel) != CLOSED
    }

    /// A call failed or timed out. `true` when this opened the breaker.
    pub fn record_failure(&self) -> bool {
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures < self.failures_to_open {
            return false;
        }
        let opened = self
            .state
            .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if opened {
            self.opened.fetch_add(1, Ordering::Relaxed);
        }
        opened
    }

    /// Open -> half-open, for the probe. `false` (and no probe) when the
    /// breaker is closed or a probe is already under way.
    pub fn begin_probe(&self) -> bool {
        self.state
            .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The probe failed: half-open -> open (not counted as an opening).
    pub fn probe_failed(&self) {
        let _ = self
            .state
            .compare_exchange(HALF_OPEN, OPEN, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// What the client has seen since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisFigures {
    /// `get`s that found their key.
    pub hits: u64,
    /// `get`s that did not.
    pub misses: u64,
    /// Calls that failed, timeouts among them.
    pub errors: u64,
    /// Of `errors`, those that ran out of time.
    pub timeouts: u64,
    /// Calls answered `None` at once because the breaker was open.
    pub skipped: u64,
    pub breaker: BreakerState,
    /// Times the breaker went from closed to open.
    pub opened: u64,
}

#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    skipped: AtomicU64,
}

/// The rate limit's GCRA: one round trip, atomic, on the server's clock
/// (`TIME`), so instances' clocks do not matter. The key holds the
/// theoretical arrival time (TAT) in microseconds and lives until the
/// bucket would be full again. Returns 0 when allowed, else the
/// microseconds until the request would be. Needs Redis 5 or later
/// (`TIME` before a write in a script).
const GCRA_LUA: &str = r"
-- KEYS[1]: the bucket. ARGV[1]: requests a second. ARGV[2]: burst.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = 1000000 / tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local allow_at = tat + interval - burst * interval
if allow_at > now then
  return math.ceil(allow_at - now)
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
  'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return 0
";

/// The link to one Redis (see the module's documentation).
pub struct Redis {
    client: redis::Client,
    settings: ConnectionManagerConfig,
    /// Swapped for a fresh one when a probe fails (see `probe`).
    manager: ArcSwap<ConnectionManager>,
    timeout: Duration,
    breaker: Breaker,
    counts: Counts,
    gcra: redis::Script,
}

impl Redis {
    /// Starts the client on `url`, each call bounded by `timeout`. Never
    /// waits for the server and never fails because it is unreachable: the
    /// breaker starts open and a background task connects (it ends when
    /// the `Redis` is dropped). `Err` for a URL the redis crate refuses, or
    /// when not called within a tokio runtime; the message does not repeat
    /// the URL, which may hold a password.
    pub fn start(url: &str, timeout: Duration) -> Result<Arc<Self>, String> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err("the Redis client must be started within a tokio runtime".to_owned());
        }
        let client = redis::Client::open(url)
            .map_err(|e| format!("REDIS_URL is not a URL the redis client accepts ({e})"))?;
        let settings = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout.max(MIN_CONNECT_TIMEOUT)))
            // One attempt per reconnection: the probe is what tries again,
            // at its own pace.
            .set_number_of_retries(0);
        let manager = lazy_manager(&client, &settings)?;
        let redis = Arc::new(Self {
            client,
            settings,
            manager: ArcSwap::from_pointee(manager),
            timeout,
            breaker: Breaker::new(FAILURES_TO_OPEN),
            counts: Counts::default(),
            gcra: redis::Script::new(GCRA_LUA),
        });
        tokio::spawn(watch(Arc::downgrade(&redis)));
        Ok(redis)
    }

    /// The value at `key`; `None` on a miss, an error, a timeout or while
    /// the breaker is open (each counted in [`Redis::figures`]).
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let value: Option<Vec<u8>> = self
            .call(|mut conn| async move { redis::cmd("GET").arg(key).query_async(&mut conn).await })
            .await?;
        let counter = match value {
            Some(_) => &self.counts.hits,
            None => &self.counts.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        value
    }

    /// `SET key value EX ttl_secs` (a `ttl_secs` of 0 is taken as 1).
    /// Failures are counted, never returned: a value not stored is a miss
    /// later.
    pub async fn set_ex(&self, key: &str, value: &[u8], ttl_secs: u64) {
        let ttl_secs = ttl_secs.max(1);
        let _: Option<()> = self
            .call(|mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("EX")
                    .arg(ttl_secs)
                    .query_async(&mut conn)
                    .await
            })
            .await;
    }

    /// `SET key 1 NX EX ttl_secs` (a `ttl_secs` of 0 is taken as 1):
    /// `Some(true)` when this caller claimed the key, `Some(false)` when
    /// someone holds it, `None` when Redis cannot answer.
    pub async fn claim(&self, key: &str, ttl_secs: u64) -> Option<bool> {
        let ttl_secs = ttl_secs.max(1);
        let reply: Option<String> = self
            .call(|mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Some(reply.is_some())
    }

    /// The rate limit on `key`: `per_sec` requests a second on average, up
    /// to `burst` at once (0 is taken as 1), counted for every instance on
    /// this Redis, on the server's clock. `Some(Ok(()))`: allowed;
    /// `Some(Err(wait))`: refused until `wait` has passed; `None`: Redis
    /// cannot answer. A `per_sec` of 0 means no limit, without a call.
    pub async fn gcra(&self, key: &str, per_sec: u32, burst: u32) -> Option<Result<(), Duration>> {
        if per_sec == 0 {
            return Some(Ok(()));
        }
        let burst = burst.max(1);
        let script = &self.gcra;
        let wait_us: u64 = self
            .call(|mut conn| async move {
                script
                    .key(key)
                    .arg(per_sec)
                    .arg(burst)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Some(match wait_us {
            0 => Ok(()),
            us => Err(Duration::from_micros(us)),
        })
    }

    pub fn figures(&self) -> RedisFigures {
        let c = &self.counts;
        RedisFigures {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            breaker: self.breaker.state(),
            opened: self.breaker.opened(),
        }
    }

    /// One call through the breaker, bounded by the timeout, its outcome
    /// recorded. The manager is cloned (one `Arc`) out of the swap, so no
    /// lock is held while the call waits.
    async fn call<T, F, Fut>(&self, run: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allow() {
            self.counts.skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let conn = ConnectionManager::clone(&self.manager.load());
        let timed_out = match tokio::time::timeout(self.timeout, run(conn)).await {
            Ok(Ok(value)) => {
                if self.breaker.record_success() {
                    tracing::info!("redis answers again");
                }
                return Some(value);
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "redis call failed");
                e.is_timeout()
            }
            Err(_) => true,
        };
        self.counts.errors.fetch_add(1, Ordering::Relaxed);
        if timed_out {
            self.counts.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        if self.breaker.record_failure() {
            // Logged once per outage, not once per call.
            tracing::warn!(
                failures = FAILURES_TO_OPEN,
                "redis failed repeatedly; going on without it until it answers again"
            );
        }
        None
    }

    /// One probe of an open breaker: a `PING` given time to connect as
    /// well. On success the breaker closes; on failure the manager is
    /// replaced by a fresh one, because a manager whose connection attempt
    /// failed with anything but an I/O error (a refused `AUTH`, say) keeps
    /// answering with that error and never tries again.
    async fn probe(&self) {
        if !self.breaker.begin_probe() {
            return;
        }
        let mut conn = ConnectionManager::clone(&self.manager.load());
        let within = self.timeout.max(MIN_CONNECT_TIMEOUT) + self.timeout;
        let ping = redis::cmd("PING");
        let ping = ping.query_async::<String>(&mut conn);
        match tokio::time::timeout(within, ping).await {
            Ok(Ok(_)) => {
                if self.breaker.record_success() {
                    tracing::info!("redis answers; using it");
                }
            }
            outcome => {
                if let Ok(Err(e)) = outcome {
                    tracing::debug!(error = %e, "redis probe failed");
                }
                if let Ok(fresh) = lazy_manager(&self.client, &self.settings) {
                    self.manager.store(Arc::new(fresh));
                }
                self.breaker.probe_failed();
            }
        }
    }
}

/// A manager that connects on first use.
fn lazy_manager(
    client: &redis::Client,
    settings: &ConnectionManagerConfig,
) -> Result<ConnectionManager, String> {
    ConnectionManager::new_lazy_with_config(client.clone(), settings.clone())
        .map_err(|e| format!("the Redis client could not be set up ({e})"))
}

/// Probes while the breaker is open, every [`PROBE_INTERVAL`] (the first at
/// once). Holds the client only during a probe, so dropping it ends the
/// task at the next tick.
async fn watch(redis: Weak<Redis>) {
    let mut every = tokio::time::interval(PROBE_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(redis) = redis.upgrade() else {
            return;
        };
        redis.probe().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_by_the_prefix_and_their_kind() {
        assert_eq!(key("rl", "abc"), "widget-data:rl:abc");
        assert!(key("cache", "x").starts_with(PREFIX));
    }

    #[test]
    fn a_new_breaker_is_open_until_a_success_and_that_is_not_counted_as_an_opening() {
        let b = Breaker::new(3);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        assert!(b.record_success(), "the first success closes it");
        assert!(b.allow());
        assert_eq!(b.opened(), 0);
    }

    #[test]
    fn the_breaker_opens_on_the_third_failure_in_a_row_only() {
        let b = Breaker::new(3);
        b.record_success();
        assert!(!b.record_failure());
        assert!(!b.record_failure());
        assert!(!b.record_success(), "already closed");
        assert!(!b.record_failure());
        assert!(!b.record_failure());
        assert!(b.allow(), "a success in between starts the count again");
        assert!(b.record_failure(), "the third in a row opens it");
        assert!(!b.allow());
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.record_failure(), "failures while open do not reopen it");
        assert_eq!(b.opened(), 1);
    }

    #[test]
    fn only_one_probe_at_a_time_and_its_outcome_decides() {
        let b = Breaker::new(1);
        assert!(b.begin_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.begin_probe(), "a probe is under way");
        assert!(!b.allow(), "half-open lets only the probe through");
        b.probe_failed();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.opened(), 0, "a failed probe is not a new opening");
        assert!(b.begin_probe());
        assert!(b.record_success());
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(!b.begin_probe(), "nothing to probe when closed");
        assert!(b.record_failure());
        assert_eq!(b.opened(), 1);
    }

    #[test]
    fn the_states_have_names_for_figures() {
        let names = [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ]
        .map(BreakerState::as_str);
        assert_eq!(names, ["closed", "open", "half-open"]);
    }

    #[tokio::test]
    async fn a_url_the_crate_refuses_is_an_error_that_does_not_repeat_it() {
        let err = Redis::start(
            "redis://:hunter2@127.0.0.1:notaport",
            Duration::from_millis(50),
        )
        .err()
        .expect("refused");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn starting_outside_a_runtime_is_an_error_not_a_panic() {
        let err = Redis::start("redis://127.0.0.1:6379", Duration::from_millis(50))
            .err()
            .expect("refused");
        assert!(err.contains("tokio"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_no_error_and_calls_answer_none_at_once() {
        // A port that was just free on loopback: nothing answers there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let redis = Redis::start(
            &format!("redis://127.0.0.1:{port}"),
            Duration::from_millis(50),
        )
        .expect("started");
        let started = std::time::Instant::now();
        assert_eq!(redis.get(&key("t", "a")).await, None);
        assert_eq!(redis.claim(&key("t", "b"), 5).await, None);
        assert_eq!(redis.gcra(&key("t", "c"), 1, 1).await, None);
        redis.set_ex(&key("t", "d"), b"v", 5).await;
        assert!(started.elapsed() < Duration::from_millis(200));
        let f = redis.figures();
        assert_ne!(f.breaker, BreakerState::Closed);
        assert_eq!((f.hits, f.misses), (0, 0));
        assert_eq!(f.skipped + f.errors, 4, "{f:?}");
    }
}
