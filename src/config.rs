//! Configuration from environment variables, each with a safe default.
//!
//! Takes the process environment (or any lookup function, for tests); gives
//! a `Config`. Secrets are never printed: `Debug` redacts them.

use crate::bundles::store::StoreConfig;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The HS256 secret used in embedded dev mode when `JWT_SECRET` is unset.
/// It is printed at start: it protects nothing but a developer's sample data.
pub const DEV_JWT_SECRET: &str = "widget-data-dev-secret-not-for-production-use";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Which answers get a line in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLog {
    /// Every answer.
    All,
    /// Answers with a status of 400 or more.
    Errors,
    /// None (failures are still logged where they are handled).
    Off,
}

#[derive(Clone)]
pub struct Config {
    /// `None`: start the embedded PostgreSQL under `data_dir`.
    pub database_url: Option<String>,
    pub listen_addr: SocketAddr,
    /// A second address serving `/metrics` alone, without a token.
    pub metrics_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub jwt_secret: String,
    /// True when `jwt_secret` is the built-in dev secret.
    pub jwt_secret_is_dev: bool,
    pub jwt_audience: String,
    pub jwt_role_claim: String,
    pub exposed_schemas: Vec<String>,
    pub query_timeout: Duration,
    pub max_rows: u32,
    pub cache_default_ttl_secs: u64,
    /// No cached answer lives longer, whatever its widget asks.
    pub cache_max_ttl_secs: u64,
    pub cache_memory_mb: u64,
    /// Bound of the durable level's rows (`app.widget_data_cache`).
    pub cache_table_max_mb: u64,
    pub seed: bool,
    pub log_format: LogFormat,
    pub access_log: AccessLog,
    /// Connections for callers' queries (the service's own work has a
    /// small pool of its own).
    pub db_pool_size: u32,
    /// Uncached queries one caller may run at once.
    pub max_queries_per_caller: u32,
    /// Requests per second each caller may make (0: no limit), and how
    /// many may come at once.
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    /// Rows one `/rest/v1` insert may carry.
    pub rest_max_bulk_rows: usize,
    pub quotas: Quotas,
    /// How long browsers may keep an answer without asking again (0: they
    /// revalidate every time, which is exact).
    pub browser_cache_secs: u64,
    /// A request head must arrive within this, counted from the moment the
    /// connection is ready for it: so it also bounds how long a keep-alive
    /// connection may sit idle between requests.
    pub http_header_timeout: Duration,
    /// `None`: sized at start from the process's file limit.
    pub max_connections: Option<usize>,
    pub bundles: BundleConfig,
    pub fleet: FleetConfig,
    /// `PAGES_DIR`: serve the pages' files from this directory, read at
    /// start, instead of the copies built into the binary (for working
    /// on the pages without rebuilding).
    pub pages_dir: Option<PathBuf>,
}

/// Running more than one instance: the shared Redis level, read replicas
/// and cache warming.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// `REDIS_URL`: the shared cache level and the fleet-wide rate limit
    /// (`None`: neither; the rate limit is per instance).
    pub redis_url: Option<String>,
    /// `REDIS_TIMEOUT_MS`: the most one Redis call may take before the
    /// request goes on without it.
    pub redis_timeout: Duration,
    /// `CACHE_REDIS_MAX_TTL_SECS`: no entry lives longer in Redis.
    pub redis_max_ttl_secs: u64,
    /// `DATABASE_READ_URLS`: streaming replicas widget queries run on.
    pub read_urls: Vec<String>,
    /// `CACHE_WARMING_WORKERS`: entries recomputed at once after a change
    /// (0: no warming).
    pub warming_workers: usize,
    /// `CACHE_WARM_WINDOW_SECS`: only entries hit this recently are warmed.
    pub warm_window_secs: u64,
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry passwords.
        f.debug_struct("FleetConfig")
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<redacted>"))
            .field("redis_timeout", &self.redis_timeout)
            .field("redis_max_ttl_secs", &self.redis_max_ttl_secs)
            .field("read_urls", &format!("<{} redacted>", self.read_urls.len()))
            .field("warming_workers", &self.warming_workers)
            .field("warm_window_secs", &self.warm_window_secs)
            .finish()
    }
}

/// Widget bundles (`BUNDLE_*`): fetching, review, re-verification,
/// serving and storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleConfig {
    /// `BUNDLE_MAX_BYTES`: the largest bundle fetched (counted while
    /// streaming).
    pub max_bytes: usize,
    /// `BUNDLE_FETCH_TIMEOUT_SECS`: one fetch, redirects included.
    pub fetch_timeout: Duration,
    /// `BUNDLE_ALLOW_HOSTS`: hosts (as written in URLs) or addresses the
    /// address guard admits although they are not public.
    pub allow_hosts: Vec<String>,
    /// `BUNDLE_AUTO_APPROVE`: approve versions without high-severity
    /// findings at registration.
    pub auto_approve: bool,
    /// `BUNDLE_VERIFY_INTERVAL_SECS` (0: never re-verify).
    pub verify_interval: Duration,
    /// `BUNDLE_ON_DRIFT=quarantine` (else `record`).
    pub quarantine_on_drift: bool,
    /// `BUNDLE_MEMORY_MB`: approved versions' bytes kept in memory.
    pub memory_mb: u64,
    /// `BUNDLE_STORE` and `BUNDLE_S3_*`.
    pub store: StoreConfig,
}

/// How many rows of each dashboard table one user may own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    pub dashboards: u64,
    pub widgets: u64,
    pub data_sources: u64,
    pub filter_preferences: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name}: {message} (got {value:?})")]
    Invalid {
        name: &'static str,
        value: String,
        message: &'static str,
    },
    /// A `BUNDLE_STORE` / `BUNDLE_S3_*` setting the store refuses.
    #[error("{0}")]
    BundleStore(String),
    #[error("JWT_SECRET is required when DATABASE_URL is set")]
    MissingJwtSecret,
    #[error("JWT_SECRET must be at least 32 bytes long")]
    ShortJwtSecret,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let database_url = get("DATABASE_URL");
        let embedded = database_url.is_none();
        let (jwt_secret, jwt_secret_is_dev) = match get("JWT_SECRET") {
            Some(secret) if secret.len() < 32 => return Err(ConfigError::ShortJwtSecret),
            Some(secret) => (secret, false),
            None if embedded => (DEV_JWT_SECRET.to_owned(), true),
            None => return Err(ConfigError::MissingJwtSecret),
        };
        let exposed_schemas: Vec<String> = get("EXPOSED_SCHEMAS")
            .unwrap_or_else(|| "public".into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if exposed_schemas.is_empty() {
            return Err(invalid(
                "EXPOSED_SCHEMAS",
                "",
                "must name at least one schema",
            ));
        }
        let cache_default_ttl_secs = positive(&get, "CACHE_DEFAULT_TTL_SECS", 300)?;
        let cache_max_ttl_secs = positive(&get, "CACHE_MAX_TTL_SECS", 86_400)?;
        if cache_default_ttl_secs > cache_max_ttl_secs {
            return Err(invalid(
                "CACHE_DEFAULT_TTL_SECS",
                &cache_default_ttl_secs.to_string(),
                "must be at most CACHE_MAX_TTL_SECS",
            ));
        }
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| ".data".into()));
        Ok(Self {
            pages_dir: get("PAGES_DIR").map(PathBuf::from),
            listen_addr: parse(&get, "LISTEN_ADDR", "127.0.0.1:8080", "must be host:port")?,
            metrics_addr: match get("METRICS_ADDR") {
                None => None,
                Some(addr) => Some(
                    addr.trim()
                        .parse()
                        .map_err(|_| invalid("METRICS_ADDR", &addr, "must be host:port"))?,
                ),
            },
            jwt_secret,
            jwt_secret_is_dev,
            jwt_audience: get("JWT_AUDIENCE").unwrap_or_else(|| "authenticated".into()),
            jwt_role_claim: get("JWT_ROLE_CLAIM").unwrap_or_else(|| "role".into()),
            exposed_schemas,
            query_timeout: Duration::from_millis(positive(&get, "QUERY_TIMEOUT_MS", 5000)?),
            max_rows: u32::try_from(positive(&get, "MAX_ROWS", 10_000)?)
                .map_err(|_| invalid("MAX_ROWS", "", "is too large"))?,
            cache_default_ttl_secs,
            cache_max_ttl_secs,
            cache_memory_mb: parse(&get, "CACHE_MEMORY_MB", "64", "must be a whole number")?,
            cache_table_max_mb: positive(&get, "CACHE_TABLE_MAX_MB", 256)?,
            seed: match get("SEED") {
                None => embedded,
                Some(v) => parse_bool("SEED", &v)?,
            },
            log_format: match get("LOG_FORMAT").as_deref() {
                None | Some("pretty") => LogFormat::Pretty,
                Some("json") => LogFormat::Json,
                Some(other) => return Err(invalid("LOG_FORMAT", other, "must be pretty or json")),
            },
            access_log: match get("ACCESS_LOG").as_deref() {
                None | Some("all") => AccessLog::All,
                Some("errors") => AccessLog::Errors,
                Some("off") => AccessLog::Off,
                Some(other) => {
                    return Err(invalid("ACCESS_LOG", other, "must be all, errors or off"));
                }
            },
            db_pool_size: u32::try_from(positive(&get, "DB_POOL_SIZE", 16)?)
                .map_err(|_| invalid("DB_POOL_SIZE", "", "is too large"))?,
            max_queries_per_caller: u32::try_from(positive(&get, "MAX_QUERIES_PER_CALLER", 4)?)
                .map_err(|_| invalid("MAX_QUERIES_PER_CALLER", "", "is too large"))?,
            rate_limit_per_sec: parse(&get, "RATE_LIMIT_PER_SEC", "100", "must be a whole number")?,
            rate_limit_burst: u32::try_from(positive(&get, "RATE_LIMIT_BURST", 200)?)
                .map_err(|_| invalid("RATE_LIMIT_BURST", "", "is too large"))?,
            rest_max_bulk_rows: usize::try_from(positive(&get, "REST_MAX_BULK_ROWS", 1000)?)
                .map_err(|_| invalid("REST_MAX_BULK_ROWS", "", "is too large"))?,
            browser_cache_secs: parse(&get, "BROWSER_CACHE_SECS", "0", "must be a whole number")?,
            http_header_timeout: Duration::from_secs(positive(
                &get,
                "HTTP_HEADER_TIMEOUT_SECS",
                10,
            )?),
            max_connections: match get("MAX_CONNECTIONS") {
                None => None,
                Some(_) => Some(
                    usize::try_from(positive(&get, "MAX_CONNECTIONS", 1)?)
                        .map_err(|_| invalid("MAX_CONNECTIONS", "", "is too large"))?,
                ),
            },
            quotas: Quotas {
                dashboards: positive(&get, "QUOTA_DASHBOARDS", 1000)?,
                widgets: positive(&get, "QUOTA_WIDGETS", 10_000)?,
                data_sources: positive(&get, "QUOTA_DATA_SOURCES", 1000)?,
                filter_preferences: positive(&get, "QUOTA_FILTER_PREFERENCES", 10_000)?,
            },
            bundles: bundle_config(&get, &data_dir)?,
            fleet: fleet_config(&get)?,
            data_dir,
            database_url,
        })
    }
}

fn bundle_config(
    get: &impl Fn(&str) -> Option<String>,
    data_dir: &std::path::Path,
) -> Result<BundleConfig, ConfigError> {
    Ok(BundleConfig {
        max_bytes: usize::try_from(positive(get, "BUNDLE_MAX_BYTES", 500 * 1024)?)
            .map_err(|_| invalid("BUNDLE_MAX_BYTES", "", "is too large"))?,
        fetch_timeout: Duration::from_secs(positive(get, "BUNDLE_FETCH_TIMEOUT_SECS", 10)?),
        allow_hosts: get("BUNDLE_ALLOW_HOSTS")
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        auto_approve: match get("BUNDLE_AUTO_APPROVE") {
            None => false,
            Some(v) => parse_bool("BUNDLE_AUTO_APPROVE", &v)?,
        },
        verify_interval: Duration::from_secs(parse(
            get,
            "BUNDLE_VERIFY_INTERVAL_SECS",
            "3600",
            "must be a whole number of seconds (0: never)",
        )?),
        quarantine_on_drift: match get("BUNDLE_ON_DRIFT").as_deref() {
            None | Some("record") => false,
            Some("quarantine") => true,
            Some(other) => {
                return Err(invalid(
                    "BUNDLE_ON_DRIFT",
                    other,
                    "must be record or quarantine",
                ));
            }
        },
        memory_mb: parse(get, "BUNDLE_MEMORY_MB", "64", "must be a whole number")?,
        store: StoreConfig::from_env(get, data_dir).map_err(ConfigError::BundleStore)?,
    })
}

fn fleet_config(get: &impl Fn(&str) -> Option<String>) -> Result<FleetConfig, ConfigError> {
    let redis_url = get("REDIS_URL").map(|u| u.trim().to_owned());
    if let Some(url) = &redis_url
        && !(url.starts_with("redis://")
            || url.starts_with("redis+unix://")
            || url.starts_with("unix://"))
    {
        return Err(invalid(
            "REDIS_URL",
            "<redacted>",
            "must be a redis:// or unix:// URL (TLS is not built in)",
        ));
    }
    let read_urls: Vec<String> = get("DATABASE_READ_URLS")
        .unwrap_or_default()
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    if read_urls
        .iter()
        .any(|u| !(u.starts_with("postgres://") || u.starts_with("postgresql://")))
    {
        return Err(invalid(
            "DATABASE_READ_URLS",
            "<redacted>",
            "must be comma-separated postgres:// URLs",
        ));
    }
    Ok(FleetConfig {
        redis_url,
        redis_timeout: Duration::from_millis(positive(get, "REDIS_TIMEOUT_MS", 50)?),
        redis_max_ttl_secs: positive(get, "CACHE_REDIS_MAX_TTL_SECS", 3600)?,
        read_urls,
        warming_workers: parse(
            get,
            "CACHE_WARMING_WORKERS",
            "4",
            "must be a whole number (0: no warming)",
        )?,
        warm_window_secs: positive(get, "CACHE_WARM_WINDOW_SECS", 600)?,
    })
}

fn invalid(name: &'static str, value: &str, message: &'static str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_owned(),
        message,
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
    message: &'static str,
) -> Result<T, ConfigError> {
    let raw = get(name).unwrap_or_else(|| default.to_owned());
    raw.trim().parse().map_err(|_| invalid(name, &raw, message))
}

fn positive(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    let value: u64 = parse(
        get,
        name,
        &default.to_string(),
        "must be a positive whole number",
    )?;
    if value == 0 {
        return Err(invalid(name, "0", "must be a positive whole number"));
    }
    Ok(value)
}

fn parse_bool(name: &'static str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, raw, "must be true or false")),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets stay out of logs: the URL may carry a password.
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field("listen_addr", &self.listen_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("data_dir", &self.data_dir)
            .field("pages_dir", &self.pages_dir)
            .field("jwt_secret", &"<redacted>")
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_role_claim", &self.jwt_role_claim)
            .field("exposed_schemas", &self.exposed_schemas)
            .field("query_timeout", &self.query_timeout)
            .field("max_rows", &self.max_rows)
            .field("cache_default_ttl_secs", &self.cache_default_ttl_secs)
            .field("cache_max_ttl_secs", &self.cache_max_ttl_secs)
            .field("cache_memory_mb", &self.cache_memory_mb)
            .field("cache_table_max_mb", &self.cache_table_max_mb)
            .field("seed", &self.seed)
            .field("log_format", &self.log_format)
            .field("access_log", &self.access_log)
            .field("db_pool_size", &self.db_pool_size)
            .field("max_queries_per_caller", &self.max_queries_per_caller)
            .field("rate_limit_per_sec", &self.rate_limit_per_sec)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("rest_max_bulk_rows", &self.rest_max_bulk_rows)
            .field("quotas", &self.quotas)
            .field("browser_cache_secs", &self.browser_cache_secs)
            .field("http_header_timeout", &self.http_header_timeout)
            .field("max_connections", &self.max_connections)
            .field("bundles", &self.bundles)
            .field("fleet", &self.fleet)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_describe_embedded_dev_mode() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.metrics_addr, None);
        assert_eq!(c.data_dir, PathBuf::from(".data"));
        assert!(c.jwt_secret_is_dev);
        assert_eq!(c.jwt_audience, "authenticated");
        assert_eq!(c.jwt_role_claim, "role");
        assert_eq!(c.exposed_schemas, vec!["public"]);
        assert_eq!(c.query_timeout, Duration::from_millis(5000));
        assert_eq!(c.max_rows, 10_000);
        assert_eq!(c.cache_default_ttl_secs, 300);
        assert_eq!(c.cache_memory_mb, 64);
        assert_eq!(c.cache_max_ttl_secs, 86_400);
        assert_eq!(c.cache_table_max_mb, 256);
        let err = config(&[("CACHE_MAX_TTL_SECS", "60")]).unwrap_err();
        assert!(
            err.to_string().starts_with("CACHE_DEFAULT_TTL_SECS"),
            "{err}"
        );
        assert!(c.seed);
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.access_log, AccessLog::All);
        assert_eq!(c.db_pool_size, 16);
        assert_eq!(c.max_queries_per_caller, 4);
        assert_eq!((c.rate_limit_per_sec, c.rate_limit_burst), (100, 200));
        assert_eq!(c.rest_max_bulk_rows, 1000);
        assert_eq!(c.browser_cache_secs, 0);
        assert_eq!(
            c.quotas,
            Quotas {
                dashboards: 1000,
                widgets: 10_000,
                data_sources: 1000,
                filter_preferences: 10_000
            }
        );
        assert_eq!(
            config(&[("RATE_LIMIT_PER_SEC", "0")])
                .unwrap()
                .rate_limit_per_sec,
            0
        );
        assert_eq!(c.http_header_timeout, Duration::from_secs(10));
        assert_eq!(c.max_connections, None);
    }

    #[test]
    fn an_external_database_requires_a_jwt_secret_and_does_not_seed() {
        assert_eq!(
            config(&[("DATABASE_URL", "postgres://x/y")]).unwrap_err(),
            ConfigError::MissingJwtSecret
        );
        let c = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .unwrap();
        assert!(!c.seed);
        assert!(!c.jwt_secret_is_dev);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("QUERY_TIMEOUT_MS", "soon")]).unwrap_err();
        assert!(err.to_string().starts_with("QUERY_TIMEOUT_MS"), "{err}");
        let err = config(&[("MAX_ROWS", "0")]).unwrap_err();
        assert!(err.to_string().starts_with("MAX_ROWS"), "{err}");
        for name in [
            "DB_POOL_SIZE",
            "MAX_QUERIES_PER_CALLER",
            "RATE_LIMIT_BURST",
            "QUOTA_WIDGETS",
        ] {
            let err = config(&[(name, "0")]).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
        let err = config(&[("SEED", "maybe")]).unwrap_err();
        assert!(err.to_string().starts_with("SEED"), "{err}");
        let err = config(&[("ACCESS_LOG", "some")]).unwrap_err();
        assert!(err.to_string().starts_with("ACCESS_LOG"), "{err}");
        for (name, value) in [
            ("HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("HTTP_HEADER_TIMEOUT_SECS", "10s"),
            ("MAX_CONNECTIONS", "0"),
            ("MAX_CONNECTIONS", "-5"),
        ] {
            let err = config(&[(name, value)]).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
        assert_eq!(
            config(&[("JWT_SECRET", "short")]).unwrap_err(),
            ConfigError::ShortJwtSecret
        );
    }

    #[test]
    fn the_access_log_is_chosen_by_its_variable() {
        for (value, chosen) in [
            ("all", AccessLog::All),
            ("errors", AccessLog::Errors),
            ("off", AccessLog::Off),
        ] {
            assert_eq!(config(&[("ACCESS_LOG", value)]).unwrap().access_log, chosen);
        }
    }

    #[test]
    fn edge_limits_are_read_from_their_variables() {
        let c = config(&[
            ("HTTP_HEADER_TIMEOUT_SECS", "3"),
            ("MAX_CONNECTIONS", "500"),
        ])
        .unwrap();
        assert_eq!(c.http_header_timeout, Duration::from_secs(3));
        assert_eq!(c.max_connections, Some(500));
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let c = config(&[
            ("DATABASE_URL", "postgres://u:hunter2@h/d"),
            ("JWT_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret"),
            ("REDIS_URL", "redis://:hunter3@127.0.0.1:6379"),
            ("DATABASE_READ_URLS", "postgres://u:hunter4@h/d"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn fleet_settings_have_defaults_and_refuse_what_they_cannot_use() {
        let c = config(&[]).unwrap().fleet;
        assert_eq!(c.redis_url, None);
        assert_eq!(c.redis_timeout, Duration::from_millis(50));
        assert_eq!(c.redis_max_ttl_secs, 3600);
        assert!(c.read_urls.is_empty());
        assert_eq!((c.warming_workers, c.warm_window_secs), (4, 600));
        let c = config(&[
            ("REDIS_URL", "redis://127.0.0.1:6380/0"),
            ("DATABASE_READ_URLS", "postgres://a/x, postgresql://b/x ,"),
            ("CACHE_WARMING_WORKERS", "0"),
        ])
        .unwrap()
        .fleet;
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6380/0"));
        assert_eq!(c.read_urls, ["postgres://a/x", "postgresql://b/x"]);
        assert_eq!(c.warming_workers, 0);
        for (name, value) in [
            ("REDIS_URL", "http://x"),
            ("REDIS_URL", "rediss://127.0.0.1:6379"),
            ("DATABASE_READ_URLS", "mysql://x"),
            ("CACHE_REDIS_MAX_TTL_SECS", "0"),
            ("CACHE_WARM_WINDOW_SECS", "-1"),
        ] {
            let err = config(&[(name, value)]).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }
}
