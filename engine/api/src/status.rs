//! The worker's status endpoint: `/healthz` and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

/// `metrics` renders the Prometheus text on each scrape.
pub fn status_router(metrics: Arc<dyn Fn() -> String + Send + Sync>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { m() }
            }),
        )
}
