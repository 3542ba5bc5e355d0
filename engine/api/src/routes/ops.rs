//! Operations: live workers and Prometheus metrics.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::Json;
use weft_core::ports::{Role, WorkerInfo};

use super::{now, ApiState};
use crate::auth::Caller;
use crate::Error;

#[utoipa::path(get, path = "/api/workers", tag = "workers", responses((status = 200, description = "live workers with pools, slots and running attempts")), security(("bearer" = [])))]
pub(super) async fn workers(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<WorkerInfo>>, Error> {
    caller.require(Role::Viewer)?;
    Ok(Json(api.workers.workers(now()).await?))
}

/// Open like `/healthz`, for scrapers.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", description = "Prometheus text format")))]
pub(super) async fn metrics(State(api): State<ApiState>) -> Result<impl IntoResponse, Error> {
    let workers = api.workers.workers(now()).await?;
    let mut pools: Vec<String> = workers.iter().flat_map(|w| w.pools.clone()).collect();
    pools.push(weft_core::spec::DEFAULT_POOL.to_string());
    pools.sort();
    pools.dedup();
    let mut depths = Vec::new();
    for pool in pools {
        match api.service.queue().depth(&pool).await {
            Ok(Some(depth)) => depths.push((pool, depth)),
            Ok(None) => {}
            // The rest is still worth scraping; the broker's answers would
            // each take as long to fail.
            Err(e) => {
                tracing::warn!("metrics without queue depths: {e}");
                break;
            }
        }
    }
    let slots = workers.iter().map(|w| u64::from(w.slots.concurrency)).sum();
    let busy = workers.iter().map(|w| w.running.len() as u64).sum();
    let text = api.metrics.render(
        api.service.active_runs(),
        api.service.jobs_published(),
        &depths,
        slots,
        busy,
        workers.len(),
    );
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    ))
}
