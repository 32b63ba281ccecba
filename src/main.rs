//! `cargo run --release`: configuration, logging, the database (embedded
//! when `DATABASE_URL` is unset), then serve until Ctrl-C or SIGTERM.

use anyhow::Context;
use embedded_pg::{ClusterState, EmbeddedError, EmbeddedPostgres, Supervisor};
use std::process::ExitCode;
use widget_data::config::{Config, LogFormat};
use widget_data::{app::App, auth, db, http};

// Chosen by measurement (BENCHMARKS.md, "Idle connections"): glibc's malloc
// kept the memory of 10k closed connections for good; jemalloc, with its
// background thread purging (the crate's `background_threads` feature),
// gives it back within seconds and holds each open one in less.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// Freed pages go back to the system after 200 ms, not jemalloc's default
// 10 s: cached answers of hundreds of KB come and go as the memory level
// evicts, and with the default the pages they left kept RSS at 1.6 times
// CACHE_MEMORY_MB plus the idle RSS; with this, 1.16 (BENCHMARKS.md,
// "Cache memory"). jemalloc reads this symbol (a C string) at start.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 59] = b"background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0\0";

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("widget-data: {e}");
            return ExitCode::from(2);
        }
    };
    // Held to the end: dropping it writes out the lines still queued.
    let _log_writer = init_logging(config.log_format);
    http::install_panic_hook();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A missing PostgreSQL is a set-up problem, not a crash: one line.
            if let Some(EmbeddedError::NoBinaries) = e.downcast_ref::<EmbeddedError>() {
                eprintln!("widget-data: {}", EmbeddedError::NoBinaries);
            } else {
                eprintln!("widget-data: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let limits = http::serve::EdgeLimits::from_config(&config, http::serve::raise_file_limit());
    // The pages' files are checked (and compressed) before anything starts:
    // a PAGES_DIR that does not load is refused, not served without pages.
    http::site::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let embedded = match &config.database_url {
        Some(_) => None,
        None => {
            let dir = config.data_dir.join("postgres");
            tracing::info!(dir = %dir.display(), "starting embedded PostgreSQL");
            Some(EmbeddedPostgres::start(&dir).await?.supervise())
        }
    };
    let url = match (&config.database_url, &embedded) {
        (Some(url), _) => url.clone(),
        (None, Some(pg)) => pg.url("postgres"),
        (None, None) => unreachable!("embedded is started when DATABASE_URL is unset"),
    };
    let pool = db::connect(&url, config.db_pool_size)
        .await
        .context("connecting to PostgreSQL")?;
    db::migrate(&pool).await.context("applying migrations")?;
    if config.seed && db::seed(&pool).await.context("loading seed/")? {
        tracing::info!("sample data loaded");
    }
    let app = App::new(config.clone(), pool.clone())
        .await
        .context("loading the schema cache")?;
    let mut tasks = vec![
        app.spawn_listener(),
        app.spawn_purge(),
        app.spawn_history(),
        app.spawn_probe(),
        app.spawn_rate_limit_cleanup(),
    ];
    tasks.extend(app.spawn_bundle_verification());
    tasks.extend(app.spawn_warming());
    tasks.extend(app.spawn_replica_probes());
    if let Some(pg) = &embedded {
        tasks.push(tokio::spawn(report_cluster(pg.state(), app.clone())));
    }
    // Serve once changes are heard, so the first answers are cached too;
    // a listener that cannot start only costs caching, not service.
    let heard = async {
        while !app.cache.is_listening() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(10), heard)
        .await
        .is_err()
    {
        tracing::warn!("not hearing data changes yet; answers are not cached until it does");
    }
    // Prometheus scrapes METRICS_ADDR without a token: only the operator's
    // network should reach it.
    let mut metrics_at = None;
    if let Some(addr) = config.metrics_addr {
        let metrics =
            http::serve::bind(addr).with_context(|| format!("listening on METRICS_ADDR {addr}"))?;
        metrics_at = Some(metrics.local_addr()?);
        let router = http::metrics_router(app.clone());
        tasks.push(tokio::spawn(async move {
            let never = std::future::pending::<()>();
            if let Err(e) = http::serve::serve(metrics, router, limits, never).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        }));
        tracing::info!(%addr, "metrics served without a token");
    }
    let listener = http::serve::bind(config.listen_addr)
        .with_context(|| format!("listening on {}", config.listen_addr))?;
    let addr = listener.local_addr()?;
    print_banner(&config, addr, metrics_at, embedded.as_ref());

    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_secs = limits.header_timeout.as_secs(),
        "serving"
    );
    http::serve::serve(listener, http::router(app), limits, shutdown_signal())
        .await
        .context("serving HTTP")?;

    tracing::info!("in-flight requests finished; shutting down");
    for task in tasks {
        task.abort();
    }
    pool.close().await;
    if let Some(pg) = embedded {
        pg.stop().await?;
    }
    Ok(())
}

/// What the embedded cluster's supervisor sees goes into `/health`, and
/// requests stop waiting on a cluster being restarted.
async fn report_cluster(
    mut state: tokio::sync::watch::Receiver<ClusterState>,
    app: std::sync::Arc<App>,
) {
    loop {
        let now = *state.borrow_and_update();
        match now {
            ClusterState::Up => app.db.health().set_restarting(false),
            ClusterState::Down | ClusterState::Restarting { .. } => {
                app.db.health().set_restarting(true)
            }
            ClusterState::Stopped => return,
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    // A request only queues its line (up to 128k lines; past that they are
    // dropped, not waited for): a writer thread writes them to stdout, a
    // batch to a system call, so a slow terminal or pipe never holds up
    // an answer.
    let (writer, guard) = tracing_appender::non_blocking(Batched(
        std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
    ));
    // Colour only for a person at a terminal: in a file or a log collector
    // the escape codes are noise, and rendering them costs.
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(colour);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
    guard
}

/// Stdout for the log's writer thread, which flushes after each batch of
/// queued lines: a pause after each flush lets the next lines queue up
/// meanwhile, so a busy service neither wakes the thread nor makes a
/// system call for every line. A line waits at most this pause.
struct Batched(std::io::BufWriter<std::io::Stdout>);

impl Batched {
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(10);
}

impl std::io::Write for Batched {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        std::thread::sleep(Self::PAUSE);
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested");
}

/// In embedded dev mode, prints ready-to-use tokens signed with the
/// configured secret (the dev secret unless JWT_SECRET is set).
fn print_banner(
    config: &Config,
    addr: std::net::SocketAddr,
    metrics: Option<std::net::SocketAddr>,
    embedded: Option<&Supervisor>,
) {
    println!("\nwidget-data listening on http://{addr}");
    println!(
        "  dashboard: http://{addr}/   playground: http://{addr}/playground   admin: http://{addr}/admin"
    );
    println!("  POST http://{addr}/functions/v1/widget-data   docs: http://{addr}/docs");
    if let Some(metrics) = metrics {
        println!("  metrics (no token): http://{metrics}/metrics");
    }
    let Some(pg) = embedded else { return };
    // Only the embedded dev cluster's URL is printed, password and all: it
    // guards sample data, and only this machine's account running us can
    // reach its socket anyway. A DATABASE_URL is never printed.
    println!("  database: {}", pg.url("postgres"));
    println!(
        "    (PGPASSWORD=$(cat {}) psql -h {} -U postgres postgres)",
        pg.password_file().display(),
        pg.socket_dir().display()
    );
    println!("  cluster: {}", pg.data_dir().display());
    if let Some(asked) = pg.relocated_from() {
        println!(
            "    {} (DATA_DIR/postgres) is not reachable by the postgres user; the cluster lives at {}",
            asked.display(),
            pg.data_dir().display()
        );
    }
    if config.jwt_secret_is_dev {
        println!("  dev JWT secret: {}", config.jwt_secret);
    }
    println!("  tokens (valid for a year):");
    match auth::dev_tokens(&config.jwt_secret, &config.jwt_audience, 365 * 24 * 3600) {
        Ok(tokens) => {
            for (name, _, token) in tokens {
                println!("    {name:<13} {token}");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not sign the dev tokens"),
    }
    println!(
        "  try:\n    curl -s http://{addr}/functions/v1/widget-data -H \"Authorization: Bearer $TOKEN\" \\"
    );
    println!(
        "      -H 'Content-Type: application/json' -d '{{\"config\":{{\"table\":\"servers\",\"groupBy\":\"status\"}}}}'\n"
    );
}
