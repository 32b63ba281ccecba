//! `cargo run --release`: configuration, logging, the database (embedded
//! when `DATABASE_URL` is unset), then serve until Ctrl-C or SIGTERM.

use anyhow::Context;
use std::process::ExitCode;
use widget_data::config::{Config, LogFormat};
use widget_data::embedded::{EmbeddedError, EmbeddedPostgres};
use widget_data::{app::App, auth, db, http};

// Chosen by measurement (BENCHMARKS.md, "Idle connections"): glibc's malloc
// kept the memory of 10k closed connections for good; jemalloc, with its
// background thread purging (the crate's `background_threads` feature),
// gives it back within seconds and holds each open one in less.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("widget-data: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
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
    let embedded = match &config.database_url {
        Some(_) => None,
        None => {
            let dir = config.data_dir.join("postgres");
            tracing::info!(dir = %dir.display(), "starting embedded PostgreSQL");
            Some(EmbeddedPostgres::start(&dir).await?)
        }
    };
    let url = match (&config.database_url, &embedded) {
        (Some(url), _) => url.clone(),
        (None, Some(pg)) => pg.url("postgres"),
        (None, None) => unreachable!("embedded is started when DATABASE_URL is unset"),
    };
    let pool = db::connect(&url, 16)
        .await
        .context("connecting to PostgreSQL")?;
    db::migrate(&pool).await.context("applying migrations")?;
    if config.seed && db::seed(&pool).await.context("loading seed/")? {
        tracing::info!("sample data loaded");
    }
    let app = App::new(config.clone(), pool.clone())
        .await
        .context("loading the schema cache")?;
    let listener_task = app.spawn_listener();
    let purge_task = app.spawn_purge();
    let listener = http::serve::bind(config.listen_addr)
        .with_context(|| format!("listening on {}", config.listen_addr))?;
    let addr = listener.local_addr()?;
    print_banner(&config, addr, embedded.as_ref());

    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_secs = limits.header_timeout.as_secs(),
        "serving"
    );
    http::serve::serve(listener, http::router(app), limits, shutdown_signal())
        .await
        .context("serving HTTP")?;

    tracing::info!("in-flight requests finished; shutting down");
    listener_task.abort();
    purge_task.abort();
    pool.close().await;
    if let Some(pg) = embedded {
        pg.stop().await?;
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
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
fn print_banner(config: &Config, addr: std::net::SocketAddr, embedded: Option<&EmbeddedPostgres>) {
    println!("\nwidget-data listening on http://{addr}");
    println!("  POST http://{addr}/functions/v1/widget-data   docs: http://{addr}/docs");
    let Some(pg) = embedded else { return };
    println!("  database: {}", pg.url("postgres"));
    println!(
        "    (psql -h {} -U postgres postgres)",
        pg.socket_dir().display()
    );
    if config.jwt_secret_is_dev {
        println!("  dev JWT secret: {}", config.jwt_secret);
    }
    let exp = chrono::Utc::now().timestamp() + 365 * 24 * 3600;
    let tokens = [
        ("anon", serde_json::json!({"role": "anon", "exp": exp})),
        (
            "demo user",
            serde_json::json!({"role": "authenticated", "aud": config.jwt_audience, "sub": db::DEMO_USER_ID,
                "email": "demo@example.com", "exp": exp}),
        ),
        (
            "service_role",
            serde_json::json!({"role": "service_role", "exp": exp}),
        ),
    ];
    println!("  tokens (valid for a year):");
    for (name, claims) in tokens {
        match auth::sign(&config.jwt_secret, &claims) {
            Ok(token) => println!("    {name:<13} {token}"),
            Err(e) => tracing::error!(error = %e, "could not sign the {name} token"),
        }
    }
    println!(
        "  try:\n    curl -s http://{addr}/functions/v1/widget-data -H \"Authorization: Bearer $TOKEN\" \\"
    );
    println!(
        "      -H 'Content-Type: application/json' -d '{{\"config\":{{\"table\":\"servers\",\"groupBy\":\"status\"}}}}'\n"
    );
}
