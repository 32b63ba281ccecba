//! The fleet benchmark's load driver and staleness checker; `bench/fleet.sh`
//! starts the fleet and runs it once per phase.
//!
//! Takes running widget-data instances (loopback URLs), the primary
//! (`DATABASE_URL`, the table owner), optionally the standby
//! (`DATABASE_READ_URL`, for its transaction count only) and the instances'
//! `JWT_SECRET`; gives markdown tables on stdout. Writes only to
//! `public.servers` on the primary, and only as the one writer there is.
//!
//! ```text
//! fleet load --phase <key> --label <text> --instances <url,url,..> --log <file> --summary <file>
//!            [--dur 20] [--warmup 3] [--conns 12] [--writes-per-sec 2]
//!            [--join <url> [--join-after 2] [--join-requests 100]]
//! fleet report --summary <file>
//! ```
//!
//! `load`: `--conns` closed-loop readers ask for the 20 widgets of
//! [`WIDGETS`] in turn, spreading the requests round-robin over the
//! instances, while a writer updates one row of `servers` on the primary
//! `--writes-per-sec` times a second. After each commit the writer
//! computes every widget's truth directly in SQL (hand-written equivalents
//! of the data sources) and logs it with the write's start and
//! commit-acknowledged times (`--log`, kept across phases, so an entry
//! cached in an earlier phase is judged by the state of its time). Hit
//! rate and latency count the `--dur` seconds after `--warmup`; every
//! answer, warm-up included, is checked. With `--join`, a further instance
//! that has served nothing yet gets `--join-requests` requests, one after
//! another, `--join-after` seconds into the measured window.
//!
//! A state is *possibly current* at a moment from its write's start until
//! the next write's commit is acknowledged (a write in flight counts either
//! way). An answer is stale (a) when its data differs from every state
//! possibly current at its `cached_at` (the issue's definition), and late
//! (b) when it differs from every state possibly current at some moment
//! between sending the request and receiving the answer: that is what a
//! user could notice, and it also catches a change announced late.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One widget: its data source, and the same rows written by hand (the
/// columns named as the service names them: group columns, `bucket`,
/// `value` or the measures' `as`).
struct Widget {
    name: &'static str,
    source: &'static str,
    truth: &'static str,
}

/// 20 widgets over the seeded `servers` table: every aggregate, group-bys,
/// filters of each kind, several measures, a time bucket and a top-3.
const WIDGETS: [Widget; 20] = [
    Widget {
        name: "servers",
        source: r#"{"table":"servers","aggregation":"count"}"#,
        truth: "SELECT count(*) AS value FROM servers",
    },
    Widget {
        name: "by status",
        source: r#"{"table":"servers","aggregation":"count","groupBy":"status"}"#,
        truth: "SELECT status, count(*) AS value FROM servers GROUP BY status",
    },
    Widget {
        name: "by region",
        source: r#"{"table":"servers","aggregation":"count","groupBy":"region"}"#,
        truth: "SELECT region, count(*) AS value FROM servers GROUP BY region",
    },
    Widget {
        name: "avg cpu by region",
        source: r#"{"table":"servers","aggregation":"avg","column":"cpu_pct","groupBy":"region"}"#,
        truth: "SELECT region, avg(cpu_pct) AS value FROM servers GROUP BY region",
    },
    Widget {
        name: "avg cpu by status",
        source: r#"{"table":"servers","aggregation":"avg","column":"cpu_pct","groupBy":"status"}"#,
        truth: "SELECT status, avg(cpu_pct) AS value FROM servers GROUP BY status",
    },
    Widget {
        name: "memory by region",
        source: r#"{"table":"servers","aggregation":"sum","column":"memory_mb","groupBy":"region"}"#,
        truth: "SELECT region, sum(memory_mb) AS value FROM servers GROUP BY region",
    },
    Widget {
        name: "max cpu by status",
        source: r#"{"table":"servers","aggregation":"max","column":"cpu_pct","groupBy":"status"}"#,
        truth: "SELECT status, max(cpu_pct) AS value FROM servers GROUP BY status",
    },
    Widget {
        name: "min cpu by region",
        source: r#"{"table":"servers","aggregation":"min","column":"cpu_pct","groupBy":"region"}"#,
        truth: "SELECT region, min(cpu_pct) AS value FROM servers GROUP BY region",
    },
    Widget {
        name: "hot by region",
        source: r#"{"table":"servers","aggregation":"count","groupBy":"region","filters":[{"column":"cpu_pct","op":"gt","value":80}]}"#,
        truth: "SELECT region, count(*) AS value FROM servers WHERE cpu_pct > 80 GROUP BY region",
    },
    Widget {
        name: "serving by region",
        source: r#"{"table":"servers","aggregation":"count","groupBy":"region","filters":[{"column":"status","op":"in","value":["Active","Ready"]}]}"#,
        truth: "SELECT region, count(*) AS value FROM servers WHERE status IN ('Active', 'Ready') GROUP BY region",
    },
    Widget {
        name: "avg memory in maintenance",
        source: r#"{"table":"servers","aggregation":"avg","column":"memory_mb","filters":[{"column":"status","op":"eq","value":"Maintenance"}]}"#,
        truth: "SELECT avg(memory_mb) AS value FROM servers WHERE status = 'Maintenance'",
    },
    Widget {
        name: "regions per status",
        source: r#"{"table":"servers","aggregation":"count_distinct","column":"region","groupBy":"status"}"#,
        truth: "SELECT status, count(DISTINCT region) AS value FROM servers GROUP BY status",
    },
    Widget {
        name: "count and cpu by region, status",
        source: r#"{"table":"servers","aggregations":[{"fn":"count","as":"n"},{"fn":"avg","column":"cpu_pct","as":"cpu"}],"groupBy":["region","status"]}"#,
        truth: "SELECT region, status, count(*) AS n, avg(cpu_pct) AS cpu FROM servers GROUP BY region, status",
    },
    Widget {
        name: "eu-west-1 cpu by status",
        source: r#"{"table":"servers","aggregation":"sum","column":"cpu_pct","groupBy":"status","filters":[{"column":"region","op":"eq","value":"eu-west-1"}]}"#,
        truth: "SELECT status, sum(cpu_pct) AS value FROM servers WHERE region = 'eu-west-1' GROUP BY status",
    },
    Widget {
        name: "avg cpu",
        source: r#"{"table":"servers","aggregation":"avg","column":"cpu_pct"}"#,
        truth: "SELECT avg(cpu_pct) AS value FROM servers",
    },
    Widget {
        name: "cpu 20-40",
        source: r#"{"table":"servers","aggregation":"count","filters":[{"column":"cpu_pct","op":"between","value":[20,40]}]}"#,
        truth: "SELECT count(*) AS value FROM servers WHERE cpu_pct BETWEEN 20 AND 40",
    },
    Widget {
        name: "stressed by status",
        source: r#"{"table":"servers","aggregation":"count","groupBy":"status","filters":[{"or":[{"column":"cpu_pct","op":"gt","value":90},{"column":"memory_mb","op":"lt","value":4096}]}]}"#,
        truth: "SELECT status, count(*) AS value FROM servers WHERE cpu_pct > 90 OR memory_mb < 4096 GROUP BY status",
    },
    Widget {
        name: "max memory online by region",
        source: r#"{"table":"servers","aggregation":"max","column":"memory_mb","groupBy":"region","filters":[{"column":"status","op":"neq","value":"Offline"}]}"#,
        truth: "SELECT region, max(memory_mb) AS value FROM servers WHERE status <> 'Offline' GROUP BY region",
    },
    Widget {
        name: "new per day",
        source: r#"{"table":"servers","aggregation":"count","timeBucket":{"column":"created_at","granularity":"day"}}"#,
        truth: "SELECT date_trunc('day', created_at) AS bucket, count(*) AS value FROM servers GROUP BY 1",
    },
    Widget {
        name: "top 3 regions by cpu",
        source: r#"{"table":"servers","aggregation":"avg","column":"cpu_pct","groupBy":"region","orderBy":[{"column":"value","direction":"desc"}],"limit":3}"#,
        truth: "SELECT region, avg(cpu_pct) AS value FROM servers GROUP BY region ORDER BY value DESC LIMIT 3",
    },
];

/// Readers sign in as these users, in turn (`servers` has no row-level
/// security, so they share entries).
const USERS: [&str; 4] = [
    "5e2b7a1c-3d4f-4a6b-9c8d-0e1f2a3b4c5d",
    "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
    "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d",
    "7c6b5a49-3827-4165-a4f3-e2d1c0b9a887",
];

/// The channel the change triggers announce writes on.
const CHANGES: &str = "widget_data_changes";

/// The seed's servers have ids 1 to 5,000; the writes spread over them.
const SERVERS: u64 = 5000;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("load") => runtime.block_on(load(Args::parse(&args[1..])?)),
        Some("report") => report(&Args::parse(&args[1..])?),
        _ => Err(
            "usage: fleet load ... | fleet report --summary <file> (see the source's header)"
                .into(),
        ),
    }
}

/// `--name value` pairs.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: &[String]) -> Result<Self, Error> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let name = name
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --name, got {name:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_owned(), value.clone());
        }
        Ok(Self(map))
    }

    fn get(&self, name: &str) -> Result<&str, Error> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required").into())
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, Error> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: not a number: {v:?}").into()),
        }
    }
}

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} must be set").into())
}

fn now_us() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// The data after one write (or, first, before any).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct State {
    /// When the write was sent and when its commit was acknowledged;
    /// `None` for the state before the first write (current since ever).
    start_us: Option<i64>,
    ack_us: Option<i64>,
    write: String,
    /// Each widget's rows, in the order of [`WIDGETS`].
    truths: Vec<Value>,
}

/// The states possibly current at some moment of `[from, to]`: state `k`
/// from its write's start (it may have committed already) until the next
/// write's commit is acknowledged (it may not have committed yet). Writes
/// are sequential, so this is a range.
fn current_during(states: &[State], from: i64, to: i64) -> Range<usize> {
    // Starts and acks only grow; the first state has neither (since ever).
    let started = states.partition_point(|s| s.start_us.is_none_or(|t| t <= to));
    let hi = started.saturating_sub(1);
    let replaced_before = states
        .get(1..)
        .unwrap_or_default()
        .partition_point(|s| s.ack_us.is_some_and(|a| a < from));
    replaced_before.min(hi)..hi + 1
}

/// Whether an answer's rows are a state's rows: rows in any order (the
/// ordered widget's top 3 have no ties), numbers within a relative 1e-9
/// (averages of floats summed in another order).
fn same_data(answer: &Value, truth: &Value) -> bool {
    match (answer, truth) {
        (Value::Array(a), Value::Array(t)) => {
            if a.len() != t.len() {
                return false;
            }
            let mut used = vec![false; t.len()];
            a.iter().all(|row| {
                let found = (0..t.len()).find(|&i| !used[i] && same_row(row, &t[i]));
                found.map(|i| used[i] = true).is_some()
            })
        }
        _ => same_row(answer, truth),
    }
}

fn same_row(a: &Value, t: &Value) -> bool {
    match (a, t) {
        (Value::Object(a), Value::Object(t)) => {
            a.len() == t.len()
                && a.iter()
                    .all(|(k, v)| t.get(k).is_some_and(|w| same_row(v, w)))
        }
        (Value::Number(a), Value::Number(t)) => match (a.as_i64(), t.as_i64()) {
            (Some(a), Some(t)) => a == t,
            _ => match (a.as_f64(), t.as_f64()) {
                (Some(a), Some(t)) => (a - t).abs() <= 1e-9 * a.abs().max(t.abs()).max(1.0),
                _ => false,
            },
        },
        (Value::Array(_), Value::Array(_)) => same_data(a, t),
        _ => a == t,
    }
}

/// All widgets' truths in one statement, so they are of one snapshot.
fn truth_sql() -> String {
    let parts: Vec<String> = WIDGETS
        .iter()
        .map(|w| {
            format!(
                "(SELECT coalesce(array_to_json(array_agg(t.*)), '[]'::json) FROM ({}) t)",
                w.truth
            )
        })
        .collect();
    format!("SELECT json_build_array({})", parts.join(", "))
}

async fn truths(db: &mut PgConnection) -> Result<Vec<Value>, Error> {
    let all: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(truth_sql()))
        .fetch_one(db)
        .await?;
    match all {
        Value::Array(v) if v.len() == WIDGETS.len() => Ok(v),
        other => Err(format!("the truth query answered {other}").into()),
    }
}

/// Write `k`: one row of `servers`, a different column in turn, each
/// changing what some widgets answer. Deterministic, so runs repeat.
async fn write(db: &mut PgConnection, k: u64) -> Result<String, Error> {
    let id = i64::try_from(1 + k.wrapping_mul(2_654_435_761) % SERVERS)?;
    let (sql, what) = match k % 4 {
        0 => (
            "UPDATE servers SET cpu_pct = $2 WHERE id = $1",
            format!("cpu_pct of {id}"),
        ),
        1 => (
            "UPDATE servers SET status = (ARRAY['Active','Ready','Maintenance','Offline'])\
             [array_position(ARRAY['Active','Ready','Maintenance','Offline'], status) % 4 + 1] WHERE id = $1",
            format!("status of {id}"),
        ),
        2 => (
            "UPDATE servers SET memory_mb = CASE WHEN memory_mb >= 65536 THEN 2048 ELSE memory_mb * 2 END WHERE id = $1",
            format!("memory_mb of {id}"),
        ),
        _ => (
            "UPDATE servers SET region = (ARRAY['eu-west-1','eu-central-1','us-east-1','us-west-2','ap-southeast-1','sa-east-1'])\
             [array_position(ARRAY['eu-west-1','eu-central-1','us-east-1','us-west-2','ap-southeast-1','sa-east-1'], region) % 6 + 1] WHERE id = $1",
            format!("region of {id}"),
        ),
    };
    let cpu = (k.wrapping_mul(7919) % 10_000) as f64 / 100.0;
    let mut query = sqlx::query(sql).bind(id);
    if k.is_multiple_of(4) {
        query = query.bind(cpu);
    }
    let done = query.execute(db).await?;
    if done.rows_affected() != 1 {
        return Err(format!("write {k} ({what}) changed {} rows", done.rows_affected()).into());
    }
    Ok(what)
}

/// How a request was answered, from `x-cache`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Hit,
    Miss,
    Coalesced,
    Stale,
}

/// One answer, as the checker needs it.
#[derive(Clone, Copy)]
struct Answer {
    instance: usize,
    widget: usize,
    outcome: Outcome,
    sent_us: i64,
    received_us: i64,
    latency_us: u64,
    cached_at_us: i64,
    /// Index of its data among the distinct answers of its widget.
    data: u32,
    measured: bool,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    data: &'a RawValue,
    cached_at: DateTime<Utc>,
}

/// What every request needs: the client, the bodies, the tokens, and the
/// distinct answers seen so far (the same data comes back many thousands
/// of times; it is kept, and compared, once).
struct Shared {
    client: reqwest::Client,
    urls: Vec<String>,
    bodies: Vec<String>,
    refresh_bodies: Vec<String>,
    tokens: Vec<String>,
    distinct: Vec<Mutex<HashMap<Box<str>, u32>>>,
    errors: Mutex<Vec<String>>,
    error_count: AtomicU64,
}

impl Shared {
    async fn ask(
        &self,
        instance: usize,
        widget: usize,
        user: usize,
        refresh: bool,
    ) -> Option<Answer> {
        let body = if refresh {
            &self.refresh_bodies[widget]
        } else {
            &self.bodies[widget]
        };
        let url = &self.urls[instance];
        let sent_us = now_us();
        let started = Instant::now();
        let result = async {
            let response = self
                .client
                .post(url)
                .header("authorization", &self.tokens[user])
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await?;
            let status = response.status();
            let outcome = response
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, outcome, bytes))
        }
        .await;
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let received_us = now_us();
        let fail = |what: String| {
            self.error_count.fetch_add(1, Ordering::Relaxed);
            let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
            if errors.len() < 10 {
                errors.push(format!("{url} widget {:?}: {what}", WIDGETS[widget].name));
            }
            None
        };
        let (status, outcome, bytes) = match result {
            Ok(r) => r,
            Err(e) => return fail(format!("{e}")),
        };
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            return fail(format!("{status}: {}", truncate(&text, 300)));
        }
        let outcome = match outcome.as_deref() {
            Some("hit") => Outcome::Hit,
            Some("miss") => Outcome::Miss,
            Some("coalesced") => Outcome::Coalesced,
            Some("stale") => Outcome::Stale,
            other => return fail(format!("x-cache: {other:?}")),
        };
        let parsed: Body = match serde_json::from_slice(&bytes) {
            Ok(b) => b,
            Err(e) => return fail(format!("{e}: {}", truncate(&text, 300))),
        };
        let data = {
            let mut seen = self.distinct[widget]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let next = u32::try_from(seen.len()).unwrap_or(u32::MAX);
            *seen.entry(parsed.data.get().into()).or_insert(next)
        };
        Some(Answer {
            instance,
            widget,
            outcome,
            sent_us,
            received_us,
            latency_us,
            cached_at_us: parsed.cached_at.timestamp_micros(),
            data,
            measured: false,
        })
    }

    /// An instance's `/stats` figures.
    async fn stats(&self, instance: usize, service_token: &str) -> Result<Value, Error> {
        let url = self.urls[instance].replace(
            "/functions/v1/widget-data",
            "/functions/v1/widget-data/stats",
        );
        let response = self
            .client
            .get(&url)
            .header("authorization", service_token)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(format!("{url}: {status}: {text}").into());
        }
        Ok(serde_json::from_str(&text)?)
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The figures of `/stats` a phase reports, as differences.
const FIGURES: [(&str, &str); 14] = [
    ("memory", "/levels/memory"),
    ("redis", "/levels/redis"),
    ("table", "/levels/table"),
    ("replica", "/queries/replica"),
    ("primary", "/queries/primary"),
    ("refused_for_lag", "/queries/refused_for_lag"),
    ("replica_failures", "/queries/replica_failures"),
    ("warmed", "/warming/warmed"),
    ("warm_failures", "/warming/failures"),
    ("warmed_elsewhere", "/warming/elsewhere"),
    ("invalidations", "/invalidations"),
    ("redis_errors", "/redis/errors"),
    ("redis_timeouts", "/redis/timeouts"),
    ("redis_skipped", "/redis/skipped"),
];

fn figures(before: &Value, after: &Value) -> HashMap<&'static str, u64> {
    FIGURES
        .iter()
        .map(|(name, pointer)| {
            let at = |v: &Value| v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
            (*name, at(after).saturating_sub(at(before)))
        })
        .collect()
}

/// Transactions committed and rolled back in the connected database so far.
async fn transactions(db: &mut PgConnection) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(db)
    .await?)
}

/// What `report` reads: one line per phase.
#[derive(Serialize, Deserialize, Default)]
struct Summary {
    phase: String,
    label: String,
    secs: f64,
    requests: u64,
    requests_per_sec: f64,
    hit_rate: f64,
    p50_us: u64,
    p99_us: u64,
    answers_checked: u64,
    stale_at_cached_at: u64,
    late: u64,
    max_late_us: i64,
    errors: u64,
    writes: u64,
    primary_queries_per_sec: f64,
    replica_queries_per_sec: f64,
    join_requests: u64,
    join_hit_rate: Option<f64>,
}

async fn load(args: Args) -> Result<(), Error> {
    let phase = args.get("phase")?.to_owned();
    let label = args.get("label")?.to_owned();
    let base_urls: Vec<String> = args
        .get("instances")?
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .collect();
    let log_path = args.get("log")?.to_owned();
    let summary_path = args.get("summary")?.to_owned();
    let dur = Duration::from_secs_f64(args.num("dur", 20.0)?);
    let warmup = Duration::from_secs_f64(args.num("warmup", 3.0)?);
    let conns: usize = args.num("conns", 12)?;
    let writes_per_sec: f64 = args.num("writes-per-sec", 2.0)?;
    if !(writes_per_sec > 0.0 && writes_per_sec.is_finite()) {
        return Err("--writes-per-sec must be above 0".into());
    }
    let join = args
        .0
        .get("join")
        .map(|u| u.trim_end_matches('/').to_owned());
    let join_after = Duration::from_secs_f64(args.num("join-after", 2.0)?);
    let join_requests: usize = args.num("join-requests", 100)?;
    let secret = env("JWT_SECRET")?;
    let primary_url = env("DATABASE_URL")?;
    let replica_url = std::env::var("DATABASE_READ_URL").ok();

    let exp = Utc::now().timestamp() + 3600;
    let sign = |claims: Value| -> Result<String, Error> {
        Ok(format!(
            "Bearer {}",
            widget_data::auth::sign(&secret, &claims)?
        ))
    };
    let tokens = USERS
        .iter()
        .map(|sub| {
            sign(serde_json::json!({"role": "authenticated", "aud": "authenticated", "sub": sub, "exp": exp}))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let service_token = sign(serde_json::json!({"role": "service_role", "exp": exp}))?;
    let mut urls: Vec<String> = base_urls
        .iter()
        .map(|u| format!("{u}/functions/v1/widget-data"))
        .collect();
    let instances = urls.len();
    if let Some(u) = &join {
        urls.push(format!("{u}/functions/v1/widget-data"));
    }
    let shared = Arc::new(Shared {
        // Loopback only: no proxy from the environment may be asked.
        client: reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(conns * 2)
            .timeout(Duration::from_secs(10))
            .build()?,
        urls,
        bodies: WIDGETS
            .iter()
            .map(|w| format!(r#"{{"config":{}}}"#, w.source))
            .collect(),
        refresh_bodies: WIDGETS
            .iter()
            .map(|w| format!(r#"{{"config":{},"force_refresh":true}}"#, w.source))
            .collect(),
        tokens,
        distinct: WIDGETS.iter().map(|_| Mutex::default()).collect(),
        errors: Mutex::default(),
        error_count: AtomicU64::new(0),
    });

    // The states so far, and the data now: they must agree, or something
    // else writes to `servers` and no answer could be judged.
    let mut db = PgConnection::connect(&primary_url).await?;
    let mut states: Vec<State> = match std::fs::read_to_string(&log_path) {
        Ok(text) => text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let now = truths(&mut db).await?;
    match states.last() {
        None => states.push(State {
            start_us: None,
            ack_us: None,
            write: "none yet".into(),
            truths: now.clone(),
        }),
        Some(last) => {
            if let Some(w) = (0..WIDGETS.len()).find(|&w| !same_data(&now[w], &last.truths[w])) {
                return Err(format!(
                    "servers changed since the last logged write (widget {:?}): another writer?",
                    WIDGETS[w].name
                )
                .into());
            }
        }
    }
    let logged = states.len();

    // Calibration: a fresh answer of every widget equals its hand-written
    // truth, so a difference later means the answer, not the checker.
    for (w, widget) in WIDGETS.iter().enumerate() {
        let answer = shared.ask(0, w, 0, true).await.ok_or_else(|| {
            let errors = shared.errors.lock().unwrap_or_else(|e| e.into_inner());
            format!(
                "calibration: {:?} failed: {}",
                widget.name,
                errors.join("; ")
            )
        })?;
        let data = data_of(&shared, w, answer.data);
        if !same_data(&data, &now[w]) {
            return Err(format!(
                "calibration: widget {:?} answered\n  {data}\nbut its hand-written SQL gives\n  {}",
                widget.name, now[w]
            )
            .into());
        }
    }
    eprintln!(
        "fleet: {phase}: calibrated ({} widgets equal their hand-written SQL); {conns} readers on {instances} instances, {writes_per_sec} writes/s, {:.0} s warm-up + {:.0} s",
        WIDGETS.len(),
        warmup.as_secs_f64(),
        dur.as_secs_f64()
    );

    // A listener of our own on the writers' channel: when each write was
    // announced to a client, to tell a late notification from a late
    // instance.
    let mut listener = sqlx::postgres::PgListener::connect(&primary_url).await?;
    listener.listen(CHANGES).await?;

    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + dur;
    let measure_from_us = now_us() + i64::try_from(warmup.as_micros())?;
    let next = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..conns)
        .map(|_| {
            let shared = Arc::clone(&shared);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut answers = Vec::with_capacity(1 << 16);
                while Instant::now() < end {
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let (instance, widget) = (n % instances, n % WIDGETS.len());
                    let user = (n / WIDGETS.len()) % USERS.len();
                    if let Some(mut a) = shared.ask(instance, widget, user, false).await {
                        a.measured = a.sent_us >= measure_from_us && Instant::now() <= end;
                        answers.push(a);
                    }
                }
                answers
            })
        })
        .collect();

    let heard = tokio::spawn(async move {
        let mut heard = Vec::new();
        // Until a second after the end: the last writes' notifications.
        let until = tokio::time::Instant::from(end + Duration::from_secs(1));
        while let Ok(n) = tokio::time::timeout_at(until, listener.recv()).await {
            heard.push((now_us(), n?.payload().to_owned()));
        }
        Ok::<_, Error>(heard)
    });

    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop_writing);
        let first = u64::try_from(logged)?;
        tokio::spawn(async move {
            let mut made = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / writes_per_sec));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut k = first;
            loop {
                tick.tick().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let start_us = now_us();
                let what = write(&mut db, k).await?;
                let ack_us = now_us();
                // The only writer: the data stays this way until the next
                // write, so reading it after the commit is exact.
                let truths = truths(&mut db).await?;
                made.push(State {
                    start_us: Some(start_us),
                    ack_us: Some(ack_us),
                    write: what,
                    truths,
                });
                k += 1;
            }
            Ok::<_, Error>((made, db))
        })
    };

    let joiner = join.as_ref().map(|_| {
        let shared = Arc::clone(&shared);
        let token = service_token.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((measure_from + join_after).into()).await;
            let before = shared.stats(instances, &token).await?;
            let from_us = now_us();
            let mut answers = Vec::new();
            for i in 0..join_requests {
                let user = (i / WIDGETS.len()) % USERS.len();
                if let Some(a) = shared.ask(instances, i % WIDGETS.len(), user, false).await {
                    answers.push(a);
                }
            }
            let to_us = now_us();
            let after = shared.stats(instances, &token).await?;
            Ok::<_, Error>((before, after, answers, from_us, to_us))
        })
    });

    // The measured window: figures of every instance and both servers
    // around it.
    let mut replica_db = match &replica_url {
        Some(url) => Some(PgConnection::connect(url).await?),
        None => None,
    };
    let mut stats_db = PgConnection::connect(&primary_url).await?;
    tokio::time::sleep_until(measure_from.into()).await;
    let mut before = Vec::new();
    for i in 0..instances {
        before.push(shared.stats(i, &service_token).await?);
    }
    let xact_before = transactions(&mut stats_db).await?;
    let replica_xact_before = match &mut replica_db {
        Some(db) => Some(transactions(db).await?),
        None => None,
    };
    let measured_at = Instant::now();
    tokio::time::sleep_until(end.into()).await;
    let secs = measured_at.elapsed().as_secs_f64();
    let mut after = Vec::new();
    for i in 0..instances {
        after.push(shared.stats(i, &service_token).await?);
    }
    let xact = transactions(&mut stats_db).await? - xact_before;
    let replica_xact = match (&mut replica_db, replica_xact_before) {
        (Some(db), Some(b)) => Some(transactions(db).await? - b),
        _ => None,
    };
    stop_writing.store(true, Ordering::Relaxed);

    let mut answers = Vec::new();
    for r in readers {
        answers.extend(r.await?);
    }
    let (made, _db) = writer.await??;
    let writes = made.len() as u64;
    states.extend(made);
    let notifications = heard.await??;
    // Each write of this run and the first notification after it began
    // (before the next began): writes are announced only while some
    // instance watches the table.
    let announced: Vec<Option<i64>> = (0..states.len())
        .map(|k| {
            let start = states[k].start_us.filter(|_| k >= logged)?;
            let next = states
                .get(k + 1)
                .and_then(|s| s.start_us)
                .unwrap_or(i64::MAX);
            notifications
                .iter()
                .map(|(at, _)| *at)
                .find(|&at| at >= start && at < next)
        })
        .collect();
    let joined = match joiner {
        Some(j) => Some(j.await??),
        None => None,
    };
    if let Some((_, _, join_answers, _, _)) = &joined {
        answers.extend(join_answers.iter().copied());
    }
    let mut log = String::new();
    for s in &states {
        log.push_str(&serde_json::to_string(s)?);
        log.push('\n');
    }
    std::fs::write(&log_path, log)?;

    // --- the figures ---
    let checked = check(&shared, &states, &announced, &answers);
    let measured: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.measured && a.instance < instances)
        .collect();
    let per_instance: Vec<HashMap<&str, u64>> = (0..instances)
        .map(|i| figures(&before[i], &after[i]))
        .collect();
    let sum = |name: &str| per_instance.iter().map(|f| f[name]).sum::<u64>();

    println!("### {label}");
    println!();
    println!(
        "`fleet {}`: {conns} readers, {} instances, {writes} writes in the run ({:.2}/s), {secs:.1} s measured after {:.0} s of warm-up",
        std::env::args()
            .skip(1)
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
            .collect::<Vec<_>>()
            .join(" "),
        instances,
        writes as f64 / (warmup.as_secs_f64() + dur.as_secs_f64()),
        warmup.as_secs_f64()
    );
    println!();
    println!(
        "| instance | requests | req/s | hit rate | p50 | p99 | hits: memory | Redis | table | queries: replica | primary | warmed | refused for lag | stale (a) | late (b) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    // Stale and late answers of the whole run, warm-up included, as the
    // checker counts them; the rest of a row is the measured window.
    let findings = |fs: &[Finding], of: Option<usize>| {
        fs.iter()
            .filter(|f| of.map_or(f.answer.instance < instances, |i| f.answer.instance == i))
            .count()
    };
    let row = |name: String, of: &[&Answer], f: &dyn Fn(&str) -> u64, i: Option<usize>| {
        let (rate, p50, p99) = latency_and_hits(of);
        println!(
            "| {name} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            of.len(),
            of.len() as f64 / secs,
            pct(rate),
            micros(p50),
            micros(p99),
            f("memory"),
            f("redis"),
            f("table"),
            f("replica"),
            f("primary"),
            f("warmed"),
            f("refused_for_lag"),
            findings(&checked.stale, i),
            findings(&checked.late, i),
        );
    };
    for i in 0..instances {
        let of: Vec<&Answer> = measured
            .iter()
            .copied()
            .filter(|a| a.instance == i)
            .collect();
        let port = base_urls[i].rsplit(':').next().unwrap_or("?");
        row(
            format!("{} (:{port})", i + 1),
            &of,
            &|n| per_instance[i][n],
            Some(i),
        );
    }
    row("**total**".into(), &measured, &|n| sum(n), None);
    let (hit_rate, p50, p99) = latency_and_hits(&measured);
    println!();
    let tail = |of: &[&Answer], o: Option<Outcome>| {
        let mut l: Vec<u64> = of
            .iter()
            .filter(|a| o.is_none_or(|o| a.outcome == o))
            .map(|a| a.latency_us)
            .collect();
        l.sort_unstable();
        let at = |q: f64| l.get(((q * l.len() as f64).ceil() as usize).saturating_sub(1));
        format!(
            "p99.9 {}, max {}",
            at(0.999).map_or("-".into(), |&us| micros(us)),
            l.last().map_or("-".into(), |&us| micros(us))
        )
    };
    println!(
        "Latency tail, all instances: {}; of hits {}; of misses {}.",
        tail(&measured, None),
        tail(&measured, Some(Outcome::Hit)),
        tail(&measured, Some(Outcome::Miss)),
    );
    println!(
        "Widget queries/s on the primary: {:.2}; on replicas: {:.2}. Transactions/s (pg_stat_database, every session: versions, the cache table, this driver's writes and truths): primary {:.1}{}.",
        sum("primary") as f64 / secs,
        sum("replica") as f64 / secs,
        xact as f64 / secs,
        replica_xact
            .map(|x| format!(", standby {:.1}", x as f64 / secs))
            .unwrap_or_default()
    );
    println!(
        "Also: invalidations heard {}, warmings failed {}, left to another instance {}, replica failures {}, Redis errors {}, timeouts {}, skipped {}; coalesced answers {}, stale-if-error answers {}.",
        sum("invalidations"),
        sum("warm_failures"),
        sum("warmed_elsewhere"),
        sum("replica_failures"),
        sum("redis_errors"),
        sum("redis_timeouts"),
        sum("redis_skipped"),
        measured
            .iter()
            .filter(|a| a.outcome == Outcome::Coalesced)
            .count(),
        measured
            .iter()
            .filter(|a| a.outcome == Outcome::Stale)
            .count(),
    );
    let delays: Vec<i64> = (logged..states.len())
        .filter_map(|k| Some(announced[k]? - states[k].ack_us?))
        .collect();
    let mut sorted = delays.clone();
    sorted.sort_unstable();
    println!(
        "Change notifications: {} of the run's {writes} writes were announced to a listener of this driver's own (`widget_data_changes`), received (after the writer's commit ack) at median {} and at most {}.",
        delays.len(),
        signed_micros(sorted.get(sorted.len() / 2).copied().unwrap_or(0)),
        signed_micros(sorted.last().copied().unwrap_or(0)),
    );
    println!();
    print_check(&checked, answers.len());
    let errors = shared.error_count.load(Ordering::Relaxed);
    println!("Errors: {errors}.");
    for e in shared
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        println!("    {e}");
    }

    let mut summary = Summary {
        phase,
        label,
        secs,
        requests: measured.len() as u64,
        requests_per_sec: measured.len() as f64 / secs,
        hit_rate,
        p50_us: p50,
        p99_us: p99,
        answers_checked: answers.len() as u64,
        stale_at_cached_at: checked.stale.len() as u64,
        late: checked.late.len() as u64,
        max_late_us: checked
            .late
            .iter()
            .map(|l| l.after_ack_us)
            .max()
            .unwrap_or(0),
        errors,
        writes,
        primary_queries_per_sec: sum("primary") as f64 / secs,
        replica_queries_per_sec: sum("replica") as f64 / secs,
        ..Summary::default()
    };
    if let Some((before, after, join_answers, from_us, to_us)) = &joined {
        let f = figures(before, after);
        let refs: Vec<&Answer> = join_answers.iter().collect();
        let (rate, p50, p99) = latency_and_hits(&refs);
        let writes_during = states
            .iter()
            .filter(|s| s.start_us.is_some_and(|t| t >= *from_us && t <= *to_us))
            .count();
        println!();
        println!(
            "A fourth instance, started before this phase and asked nothing until now ({} entries in its memory level before its first request), answers its first {} requests (the same widgets in turn, one at a time, {:.1} s into the measured window, while the load goes on; {writes_during} writes meanwhile):",
            before
                .pointer("/entries")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            join_answers.len(),
            join_after.as_secs_f64()
        );
        println!();
        println!(
            "| requests | hit rate | p50 | p99 | hits: memory | Redis | table | misses | stale (a) | late (b) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            join_answers.len(),
            pct(rate),
            micros(p50),
            micros(p99),
            f["memory"],
            f["redis"],
            f["table"],
            join_answers
                .iter()
                .filter(|a| a.outcome != Outcome::Hit)
                .count(),
            findings(&checked.stale, Some(instances)),
            findings(&checked.late, Some(instances)),
        );
        let others: Vec<String> = join_answers
            .iter()
            .enumerate()
            .filter(|(_, a)| a.outcome != Outcome::Hit)
            .map(|(i, a)| {
                format!(
                    "#{} {:?} ({:?}, {})",
                    i + 1,
                    a.outcome,
                    WIDGETS[a.widget].name,
                    micros(a.latency_us)
                )
            })
            .collect();
        println!();
        println!("Not hits: {}.", others.join(", "));
        summary.join_requests = join_answers.len() as u64;
        summary.join_hit_rate = Some(rate);
    }
    println!();
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&summary_path)?;
    use std::io::Write;
    writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    Ok(())
}

fn data_of(shared: &Shared, widget: usize, id: u32) -> Value {
    let seen = shared.distinct[widget]
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    seen.iter()
        .find(|&(_, &i)| i == id)
        .and_then(|(text, _)| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null)
}

/// Hit rate, p50 and p99 latency (µs) of some answers.
fn latency_and_hits(of: &[&Answer]) -> (f64, u64, u64) {
    if of.is_empty() {
        return (0.0, 0, 0);
    }
    let hits = of.iter().filter(|a| a.outcome == Outcome::Hit).count();
    let mut l: Vec<u64> = of.iter().map(|a| a.latency_us).collect();
    l.sort_unstable();
    let at = |q: f64| l[((q * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1];
    (hits as f64 / of.len() as f64, at(0.50), at(0.99))
}

fn pct(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

fn micros(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
}

/// An answer the checker found wanting.
struct Finding {
    answer: Answer,
    /// The nearest state its data equals, if any.
    matches: Option<usize>,
    /// That state is newer than every state the answer could show.
    newer: bool,
    /// (b): how long after the commit ack of the state that replaced the
    /// one it shows it was received, and sent.
    after_ack_us: i64,
    sent_after_ack_us: i64,
    /// (b): sent after this driver's own listener had heard the newer
    /// state's notification.
    sent_after_heard: bool,
}

struct Checked {
    stale: Vec<Finding>,
    late: Vec<Finding>,
    states: usize,
}

/// Checks every answer against the log (see the module's header).
fn check(
    shared: &Shared,
    states: &[State],
    announced: &[Option<i64>],
    answers: &[Answer],
) -> Checked {
    let mut data: HashMap<(usize, u32), Value> = HashMap::new();
    let mut equal: HashMap<(usize, u32, usize), bool> = HashMap::new();
    let mut matches = |a: &Answer, k: usize| -> bool {
        *equal.entry((a.widget, a.data, k)).or_insert_with(|| {
            let d = data
                .entry((a.widget, a.data))
                .or_insert_with(|| data_of(shared, a.widget, a.data));
            same_data(d, &states[k].truths[a.widget])
        })
    };
    let mut stale = Vec::new();
    let mut late = Vec::new();
    for a in answers {
        let at = current_during(states, a.cached_at_us, a.cached_at_us);
        if !at.clone().any(|k| matches(a, k)) {
            let below = (0..at.start).rev().find(|&k| matches(a, k));
            let above = (at.end..states.len()).find(|&k| matches(a, k));
            stale.push(Finding {
                answer: *a,
                matches: below.or(above),
                newer: below.is_none() && above.is_some(),
                after_ack_us: 0,
                sent_after_ack_us: 0,
                sent_after_heard: false,
            });
        }
        let during = current_during(states, a.sent_us, a.received_us);
        if !during.clone().any(|k| matches(a, k)) {
            let below = (0..during.start).rev().find(|&k| matches(a, k));
            let above = (during.end..states.len()).find(|&k| matches(a, k));
            let ack = below
                .and_then(|k| states.get(k + 1))
                .and_then(|s| s.ack_us)
                .unwrap_or(a.received_us);
            late.push(Finding {
                answer: *a,
                matches: below.or(above),
                newer: below.is_none() && above.is_some(),
                after_ack_us: a.received_us - ack,
                sent_after_ack_us: a.sent_us - ack,
                sent_after_heard: below
                    .and_then(|k| *announced.get(k + 1)?)
                    .is_some_and(|heard| a.sent_us > heard),
            });
        }
    }
    Checked {
        stale,
        late,
        states: states.len(),
    }
}

fn print_check(c: &Checked, answers: usize) {
    println!(
        "Staleness, over all {answers} answers of the run (warm-up included) against {} logged states:",
        c.states
    );
    let kinds = |fs: &[Finding]| {
        let by = |o: Outcome| fs.iter().filter(|f| f.answer.outcome == o).count();
        format!(
            "hit {}, miss {}, coalesced {}, stale-if-error {}; showing an older state {}, a newer one {}, none logged {}",
            by(Outcome::Hit),
            by(Outcome::Miss),
            by(Outcome::Coalesced),
            by(Outcome::Stale),
            fs.iter()
                .filter(|f| f.matches.is_some() && !f.newer)
                .count(),
            fs.iter().filter(|f| f.newer).count(),
            fs.iter().filter(|f| f.matches.is_none()).count()
        )
    };
    println!(
        "- (a) data differs from the truth at its `cached_at`: **{}** ({})",
        c.stale.len(),
        kinds(&c.stale)
    );
    println!(
        "- (b) data differs from every state current while the request was in flight: **{}**, latest {} after the newer state's commit ack (sent up to {} after it) ({})",
        c.late.len(),
        micros(
            c.late
                .iter()
                .map(|l| l.after_ack_us)
                .max()
                .unwrap_or(0)
                .max(0) as u64
        ),
        micros(
            c.late
                .iter()
                .map(|l| l.sent_after_ack_us)
                .max()
                .unwrap_or(0)
                .max(0) as u64
        ),
        kinds(&c.late)
    );
    if !c.late.is_empty() {
        let within = |lo: i64, hi: i64| {
            c.late
                .iter()
                .filter(|l| l.after_ack_us > lo && l.after_ack_us <= hi)
                .count()
        };
        let mut writes: Vec<usize> = c.late.iter().filter_map(|l| l.matches).collect();
        writes.sort_unstable();
        writes.dedup();
        println!(
            "  (b) received after the newer commit's ack by: ≤ 1 ms {}, 1-5 ms {}, 5-20 ms {}, 20-100 ms {}, more {}; after {} distinct writes; {} sent after this driver's own listener had heard the newer write's notification",
            within(i64::MIN, 1_000),
            within(1_000, 5_000),
            within(5_000, 20_000),
            within(20_000, 100_000),
            within(100_000, i64::MAX),
            writes.len(),
            c.late.iter().filter(|l| l.sent_after_heard).count()
        );
    }
    let show = |kind: &str, fs: &[Finding]| {
        for f in fs.iter().take(4) {
            let a = &f.answer;
            println!(
                "    ({kind}) instance {} widget {:?} {:?}: sent {} received {} cached_at {}, shows state {:?}{}",
                a.instance + 1,
                WIDGETS[a.widget].name,
                a.outcome,
                iso(a.sent_us),
                iso(a.received_us),
                iso(a.cached_at_us),
                f.matches,
                if kind == "b" {
                    format!(
                        ", received {} after the next state's commit ack",
                        micros(f.after_ack_us.max(0) as u64)
                    )
                } else {
                    String::new()
                }
            );
        }
    };
    show("a", &c.stale);
    show("b", &c.late);
}

fn signed_micros(us: i64) -> String {
    if us < 0 {
        format!("-{}", micros(us.unsigned_abs()))
    } else {
        micros(us.unsigned_abs())
    }
}

fn iso(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.format("%H:%M:%S%.6f").to_string())
        .unwrap_or_default()
}

/// The targets, from every phase's summary.
fn report(args: &Args) -> Result<(), Error> {
    let text = std::fs::read_to_string(args.get("summary")?)?;
    let phases: Vec<Summary> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let find = |key: &str| phases.iter().find(|p| p.phase == key);
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    println!("### Targets");
    println!();
    println!("| target | figure | |");
    println!("|---|---|---|");
    if let Some(main) = find("main") {
        let off = find("warming-off")
            .map(|p| format!(" (warming off: {})", pct(p.hit_rate)))
            .unwrap_or_default();
        println!(
            "| hit rate ≥ 95% with warming on, 3 instances, {:.0} req/s, 2 writes/s | {}{off} | {} |",
            main.requests_per_sec,
            pct(main.hit_rate),
            met(main.hit_rate >= 0.95)
        );
        println!(
            "| p99 read latency ≤ 5 ms | {} (p50 {}) | {} |",
            micros(main.p99_us),
            micros(main.p50_us),
            met(main.p99_us <= 5000)
        );
    }
    let stale: u64 = phases.iter().map(|p| p.stale_at_cached_at).sum();
    let late: u64 = phases.iter().map(|p| p.late).sum();
    let checked: u64 = phases.iter().map(|p| p.answers_checked).sum();
    let max_late = phases.iter().map(|p| p.max_late_us).max().unwrap_or(0);
    println!(
        "| 0 stale answers (every phase, {checked} answers) | (a) at `cached_at`: {stale}; (b) while in flight: {late}, at most {} after the newer commit's ack | {} |",
        micros(max_late.max(0) as u64),
        met(stale == 0)
    );
    if let Some(join) = find("join")
        && let Some(rate) = join.join_hit_rate
    {
        println!(
            "| a new fourth instance: hit rate ≥ 90% in its first {} requests | {} | {} |",
            join.join_requests,
            pct(rate),
            met(rate >= 0.90)
        );
    }
    if let (Some(on), Some(off)) = (find("main"), find("replicas-off")) {
        println!(
            "| no widget queries on the primary while replicas are healthy | {:.2}/s with replicas ({:.2}/s on them), {:.2}/s without, at {:.0} and {:.0} req/s | {} |",
            on.primary_queries_per_sec,
            on.replica_queries_per_sec,
            off.primary_queries_per_sec,
            on.requests_per_sec,
            off.requests_per_sec,
            met(on.primary_queries_per_sec == 0.0)
        );
    }
    let errors: u64 = phases.iter().map(|p| p.errors).sum();
    println!("| no errors | {errors} | {} |", met(errors == 0));
    println!();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(start: Option<i64>, ack: Option<i64>) -> State {
        State {
            start_us: start,
            ack_us: ack,
            write: String::new(),
            truths: Vec::new(),
        }
    }

    /// Writes at 100..110 and 200..210.
    fn log() -> Vec<State> {
        vec![
            state(None, None),
            state(Some(100), Some(110)),
            state(Some(200), Some(210)),
        ]
    }

    #[test]
    fn a_write_in_flight_leaves_both_states_current() {
        assert_eq!(current_during(&log(), 50, 50), 0..1);
        assert_eq!(current_during(&log(), 105, 105), 0..2);
        assert_eq!(current_during(&log(), 110, 110), 0..2);
        assert_eq!(current_during(&log(), 111, 111), 1..2);
        assert_eq!(current_during(&log(), 300, 300), 2..3);
    }

    #[test]
    fn an_answer_in_flight_across_a_write_may_show_either_state() {
        assert_eq!(current_during(&log(), 150, 250), 1..3);
        assert_eq!(current_during(&log(), 50, 99), 0..1);
        assert_eq!(current_during(&log(), 0, 1_000), 0..3);
    }

    #[test]
    fn rows_compare_in_any_order_and_floats_within_a_tolerance() {
        let a = json!([{"s": "a", "value": 1}, {"s": "b", "value": 50.000000000001}]);
        let t = json!([{"s": "b", "value": 50.0}, {"s": "a", "value": 1}]);
        assert!(same_data(&a, &t));
        assert!(!same_data(
            &a,
            &json!([{"s": "b", "value": 50.0}, {"s": "a", "value": 2}])
        ));
        assert!(!same_data(&a, &json!([{"s": "a", "value": 1}])));
        assert!(!same_data(
            &json!([{"value": 50.001}]),
            &json!([{"value": 50.0}])
        ));
    }
}
