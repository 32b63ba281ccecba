//! The HTTP/1 accept loop. Takes a bound listener, the router and the edge
//! limits; gives each accepted connection to hyper with a deadline for every
//! request head, holds the number of open connections under a cap, and on
//! shutdown finishes the requests in flight. Knows nothing of routes,
//! tokens or the database.

use super::unread_body::UnreadBodyLayer;
use crate::config::Config;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tower::{Layer, ServiceExt};

/// Descriptors kept back from connections for the database pool, the
/// embedded cluster's pipes, log and migration files and the listener.
const RESERVED_FILES: u64 = 1024;

/// Handshakes the kernel completes and holds for `accept` (it caps this
/// at `net.core.somaxconn`). Tokio's `TcpListener::bind` asks for 128: a
/// burst of connects, or a server at its connection cap, overflows that,
/// and the kernel then drops handshakes that clients retry only after 1 s,
/// 3 s, 7 s...
const LISTEN_BACKLOG: u32 = 1024;

/// How long a failing `accept` (out of descriptors or memory) waits before
/// it tries again.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);

/// How often, at most, reaching the connection cap is logged.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeLimits {
    /// A request head must arrive whole within this. hyper starts the
    /// clock when a connection is ready for a request (on accept, and again
    /// each time a response has been written), so it also closes keep-alive
    /// connections that stay idle this long.
    pub header_timeout: Duration,
    /// At this many open connections, accepting stops until one closes;
    /// new connections wait in the kernel's listen backlog meanwhile.
    pub max_connections: usize,
}

impl EdgeLimits {
    /// `file_limit`: the process's open-file limit, from [`raise_file_limit`].
    pub fn from_config(config: &Config, file_limit: u64) -> Self {
        let fits = default_max_connections(file_limit);
        let max_connections = config.max_connections.unwrap_or(fits);
        if max_connections > fits {
            tracing::warn!(
                max_connections,
                file_limit,
                "MAX_CONNECTIONS leaves too few files for the database and the rest: \
                 accepting may fail with \"too many open files\""
            );
        }
        Self {
            header_timeout: config.http_header_timeout,
            max_connections,
        }
    }
}

/// Raises the soft open-file limit to the hard one where the system
/// allows, and returns the soft limit then in force.
pub fn raise_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
            tracing::warn!(error = %e, limit = soft, "could not raise the open-file limit");
            soft
        }
    }
}

/// Listens on `addr` with a backlog of [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As tokio's own `bind` does: a restart may reuse the port at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Every descriptor the process may open, less a reserve for everything
/// that is not a client connection: half of them when the limit is small.
pub fn default_max_connections(file_limit: u64) -> usize {
    let connections = file_limit - RESERVED_FILES.min(file_limit / 2);
    usize::try_from(connections).unwrap_or(usize::MAX)
}

/// Serves `router` on `listener` (made by [`bind`], for its backlog) until `shutdown` completes, then stops
/// accepting, lets every open connection finish the request it is serving
/// (idle ones close at once) and returns.
///
/// Every request carries the client's address as
/// `ConnectInfo<SocketAddr>`, and its body is watched by
/// [`UnreadBodyLayer`], so that an answer to a request whose body was left
/// unread tells the client the connection closes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let app = UnreadBodyLayer.layer(router);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // Slots are taken before `accept`: at the cap the loop stops accepting
    // rather than accepting and dropping, so a connection over the cap is
    // served late, not refused, and the process never runs out of files.
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut last_cap_warning: Option<Instant> = None;
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if last_cap_warning.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
                    last_cap_warning = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "MAX_CONNECTIONS open; new connections wait in the listen backlog until one closes"
                    );
                }
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => slot.map_err(io::Error::other)?,
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Responses are written whole; waiting to coalesce them only adds
        // latency.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let service =
            TowerToHyperService::new(app.clone().map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                req
            }));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Clients that vanish, reset or time out are routine at the
            // edge: not worth more than a debug line.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %remote, "connection ended early");
            }
            drop(slot);
        });
    }
    // New connections are refused from here on.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    // The client gave up before it was accepted: nothing to do.
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    // Out of descriptors or memory: retrying at once would spin on the
    // same error.
    tracing::error!(error = %e, "accept failed; retrying in {ACCEPT_RETRY:?}");
    tokio::time::sleep(ACCEPT_RETRY).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_a_reserve_of_files() {
        assert_eq!(default_max_connections(20_000), 18_976);
        assert_eq!(default_max_connections(1_048_576), 1_047_552);
        // A small limit keeps half for everything else.
        assert_eq!(default_max_connections(1024), 512);
        assert_eq!(default_max_connections(256), 128);
    }
}
