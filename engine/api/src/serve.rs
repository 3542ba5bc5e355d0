//! Serving the API over TCP with the bounds a shared server needs: a
//! client must send its request's headers within a deadline, a request
//! (its body read and its answer built) must finish within another, and
//! at most so many connections are served at once (past that, new ones
//! wait in the kernel's backlog until one closes). Long-lived answers
//! (Server-Sent Events) are not cut: their answer begins at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;

/// How the server bounds its clients (`[server]` in `weft.toml`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// A client must send a request's headers within this, in milliseconds
    /// (an idle kept-alive connection is closed after it too). Default: 10000.
    pub header_read_timeout_ms: u64,
    /// A request must be read and answered within this, in milliseconds
    /// (answered with 408 otherwise). Default: 60000.
    pub request_timeout_ms: u64,
    /// Connections served at once. Default: 1024.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            max_connections: 1024,
        }
    }
}

/// How long open connections (an event stream never ends on its own) may
/// take to finish once the server stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = app.layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_millis(limits.request_timeout_ms.max(1)),
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let header_timeout = Duration::from_millis(limits.header_read_timeout_ms.max(1));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer),
                Err(e) => {
                    // Out of file descriptors, say: wait, do not spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        builder.http2().timer(TokioTimer::new());
        let (stream, peer) = stream;
        // Every request carries its client's address (for the auth throttle).
        let client = crate::throttle::ClientAddr(peer.ip());
        let service = TowerToHyperService::new(app.clone().layer(axum::Extension(client)));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A connection that fails (reset, timed out) is the client's business.
            let _ = connection.await;
            drop(slot);
        });
    }
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    Ok(())
}
