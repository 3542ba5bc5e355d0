//! The REST API of `weft serve`. Every route but `/healthz` needs a bearer
//! token (unless the server runs without auth); the role each needs is
//! noted.
//!
//! - `POST /api/runs` `{workflow, file?, params?}` (operator): validate and start a run; 201.
//! - `GET /api/runs?status=S&workflow=W&limit=N&before=C` (viewer): runs, newest first;
//!   header `x-weft-next-before` holds the cursor of the next page.
//! - `GET /api/runs/{id}` (viewer): a run with its steps, tasks and attempts.
//! - `GET /api/runs/{id}/states` (viewer): the run's step states and task counts, without
//!   tasks and attempts (what a live page polls).
//! - `GET /api/runs/{id}/steps/{step}` (viewer): one step with its tasks and attempts.
//! - `GET /api/runs/{id}/graph` (viewer): the step graph laid out left to right, with states.
//! - `POST /api/check` `{workflow, file?}` (viewer): diagnostics with line and column, and the
//!   graph the workflow would run; 200 either way.
//! - `POST /api/runs/{id}/cancel` (operator): ask the run to cancel; 202.
//! - `POST /api/runs/{id}/steps/{step}/decision` `{approve, inputs?, comment?}` (the roles
//!   the step's `approve.roles` names, and admins): approve or reject a step waiting for a
//!   person; 202.
//! - `POST /api/runs/{id}/retry` `{from?}` (operator): a new run that reuses the outputs of
//!   the steps that succeeded (all but `from` and its downstream); 201.
//! - `GET /api/runs/{id}/logs/{task}?attempt=N&offset=K` (viewer): one attempt's log, as text,
//!   from byte K; header `x-weft-attempt-finished` says whether more may come.
//! - `GET /api/runs/{id}/logs/{task}/stream?attempt=N` (viewer): the same log live, as
//!   Server-Sent Events: `log` events with new text, then one `end` event.
//! - `GET /api/workers` (viewer): live workers, their pools, slots and running attempts.
//! - `GET /api/events?run=ID` (viewer): Server-Sent Events, one `run` event per state change
//!   of the runs this server drives (all of them, or one).
//! - `POST /api/tokens` `{name, role}`, `GET /api/tokens`, `DELETE /api/tokens/{id}` (admin).
//! - `POST /api/workflows` `{workflow, name?}` (operator), `GET /api/workflows`, `GET /api/workflows/{name}?version=`
//!   (viewer), `POST /api/workflows/{name}/runs` `{version?, params?}` (operator): saved definitions.
//! - `GET /api/schedules` (viewer): the `[[triggers.schedule]]` of saved workflows, with their
//!   next fire times; `POST /api/workflows/{name}/backfill` `{from, to, schedule?}` (operator):
//!   one run per fire time in the range, each fire's run started once.
//! - `POST /api/triggers/{name}` (no token: signed with the webhook's secret): a webhook
//!   delivery starts a run of the saved workflow naming it; the same delivery id twice, one run.
//! - `GET /api/secrets`, `PUT /api/secrets/{name}` `{value, scope?}`, `DELETE /api/secrets/{name}`,
//!   `POST /api/secrets/rotate` (admin): secrets; no answer holds a value.
//! - `GET /api/openapi.json` (viewer): this API as an OpenAPI document.
//! - `GET /healthz`, `GET /metrics` (Prometheus; open, for scrapers).
//! - `GET /` and `GET /ui/...`: the dashboard's files (open: they hold no data).
//!
//! Errors are JSON: `{"error": "...", "details": ...}`. Bodies over
//! `MAX_BODY_BYTES` get 413.

mod approvals;
mod artifacts;
mod audit_routes;
mod graph;
mod logs;
mod openapi;
mod ops;
mod plugins;
mod runs;
mod schedules;
mod secrets;
mod tokens;
mod triggers;
mod workflows;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use weft_core::ports::{PluginStore, RunStore, TokenStore, WorkerRegistry, WorkflowStore};
use weft_core::run::TaskId;
use weft_orchestrator::Service;

use crate::metrics::ServerMetrics;
use crate::Error;

pub use crate::app::LiveWorkers;
pub use logs::{FINISHED_HEADER, LOG_END_HEADER, LOG_START_HEADER};
pub(crate) use runs::RunChoices;
pub use runs::NEXT_PAGE_HEADER;
pub use schedules::BackfillAnswer;
pub use triggers::DeliveryAnswer;
pub(crate) use workflows::start_saved;

/// Largest request body: a workflow file's limit with room for JSON escaping.
pub const MAX_BODY_BYTES: usize = 40 << 20;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub service: Service,
    pub store: Arc<dyn RunStore>,
    pub workers: Arc<dyn WorkerRegistry>,
    /// `None` runs the API without auth (single-user opt-out).
    pub tokens: Option<Arc<dyn TokenStore>>,
    pub metrics: Arc<ServerMetrics>,
    pub workflows: Arc<dyn WorkflowStore>,
    pub plugins: Arc<dyn PluginStore>,
    /// Validates uploads (compiles them) before they are stored.
    pub plugin_host: Arc<weft_wasm_host::Host>,
    /// What reading runs keeps: parsed workflows, unfinished runs' states.
    pub reads: Arc<weft_orchestrator::ReadCache>,
    /// The service's changes, serialized once for every event stream.
    pub changes: crate::ChangeFeed,
    /// Views of finished runs, serialized once.
    pub finished: Arc<crate::FinishedViews>,
    /// The live workers as last read, for why queued steps wait.
    pub live_workers: Arc<LiveWorkers>,
    /// Wrong tokens per client address.
    pub auth_throttle: Arc<crate::throttle::AuthThrottle>,
    /// What each role may run (`[policy]`); `None`: no policy.
    pub policy: Option<Arc<weft_core::policy::Policy>>,
    /// Who did what: submits, cancels, retries, saves, plugins, tokens.
    pub audit: Arc<dyn weft_core::ports::AuditLog>,
    /// Secrets, sealed.
    pub secrets: Arc<dyn weft_core::ports::SecretStore>,
    /// The keys that seal them; `None`: secrets cannot be set here.
    pub keyring: Option<Arc<weft_secrets::Keyring>>,
    /// Where steps' artifacts are kept; `None`: none can be downloaded.
    pub artifacts: Option<Arc<dyn weft_core::ports::ArtifactStore>>,
    /// The plugins asked before a run is accepted (`[[admission]]`).
    pub admission: Arc<crate::app::Admission>,
    /// Webhook deliveries acted on, so one sent twice starts one run.
    pub deliveries: Arc<dyn weft_core::ports::Deliveries>,
    /// Which saved workflow each webhook name starts.
    pub hooks: Arc<crate::app::HookIndex>,
}

/// Records that `caller` did `action` to `target`. The action has
/// happened: a store that fails to record it is logged, not answered.
pub(super) async fn audit(
    api: &ApiState,
    caller: &crate::auth::Caller,
    action: weft_core::ports::AuditAction,
    target: impl Into<String>,
) {
    let entry = weft_core::ports::AuditEntry {
        seq: 0,
        at: now(),
        who: caller.name.clone(),
        role: caller.role,
        action,
        target: target.into(),
    };
    if let Err(e) = api.audit.record(&entry).await {
        tracing::error!(
            "recording {:?} of {} in the audit log: {e}",
            entry.action,
            entry.target
        );
    }
}

/// The policy a run submitted by `role` is held to, if the server has one.
pub(super) fn run_policy(
    api: &ApiState,
    role: weft_core::ports::Role,
) -> Result<Option<weft_core::policy::RunPolicy>, Error> {
    api.policy
        .as_ref()
        .map(|p| p.for_role(role))
        .transpose()
        .map_err(|e| Error::new(StatusCode::INTERNAL_SERVER_ERROR, e))
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(crate::web::index))
        .route("/ui/{*path}", get(crate::web::asset))
        .route("/metrics", get(ops::metrics))
        .route("/api/runs", post(runs::submit).get(runs::list))
        .route("/api/runs/{id}", get(runs::show))
        .route("/api/runs/{id}/graph", get(graph::run_graph))
        .route("/api/runs/{id}/states", get(runs::states))
        .route("/api/runs/{id}/steps/{step}", get(runs::step))
        .route(
            "/api/runs/{id}/steps/{step}/decision",
            post(approvals::decide),
        )
        .route("/api/check", post(graph::check))
        .route("/api/schema", get(graph::schema))
        .route("/api/runs/{id}/cancel", post(runs::cancel))
        .route("/api/runs/{id}/retry", post(runs::retry))
        .route("/api/runs/{id}/artifacts", get(artifacts::list))
        .route(
            "/api/runs/{id}/artifacts/{step}/{name}",
            get(artifacts::download),
        )
        .route("/api/runs/{id}/logs/{task}", get(logs::logs))
        .route("/api/runs/{id}/logs/{task}/stream", get(logs::log_stream))
        .route("/api/workers", get(ops::workers))
        .route("/api/events", get(runs::events))
        .route(
            "/api/tokens",
            post(tokens::create_token).get(tokens::list_tokens),
        )
        .route("/api/tokens/{id}", delete(tokens::revoke_token))
        .route("/api/workflows", post(workflows::save).get(workflows::list))
        .route("/api/workflows/{name}", get(workflows::show))
        .route("/api/workflows/{name}/runs", post(workflows::run))
        .route("/api/workflows/{name}/backfill", post(schedules::backfill))
        .route("/api/schedules", get(schedules::list))
        .route("/api/triggers/{name}", post(triggers::deliver))
        .route("/api/plugins", post(plugins::push).get(plugins::list))
        .route(
            "/api/plugins/{name}",
            get(plugins::versions).delete(plugins::remove_all),
        )
        .route(
            "/api/plugins/{name}/{version}",
            get(plugins::show).delete(plugins::remove),
        )
        .route("/api/audit", get(audit_routes::list))
        .route("/api/secrets", get(secrets::list))
        .route("/api/secrets/rotate", post(secrets::rotate))
        .route(
            "/api/secrets/{name}",
            axum::routing::put(secrets::set).delete(secrets::remove),
        )
        .route("/api/openapi.json", get(openapi::openapi))
        .fallback(|| async { Error::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A run's record and its state replayed from its events; 404 if unknown.
/// Run `id` (or the one run whose id starts with it), read through the
/// server's cache.
pub(super) async fn load_run(
    api: &ApiState,
    id: &str,
) -> Result<(weft_core::ports::RunRecord, Arc<weft_core::run::RunState>), Error> {
    if let Some(found) =
        weft_orchestrator::load_run_with(api.store.as_ref(), id, &api.reads).await?
    {
        return Ok(found);
    }
    let id = crate::app::resolve_run(api.store.as_ref(), id).await?;
    weft_orchestrator::load_run_with(api.store.as_ref(), &id, &api.reads)
        .await?
        .ok_or_else(|| Error::not_found(format!("no run {id}")))
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Error> {
    body.map(|Json(b)| b).map_err(|e| {
        let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        Error::new(status, format!("bad request body: {}", e.body_text()))
    })
}

/// `step` or `step[2]`.
pub fn parse_task(text: &str) -> Option<TaskId> {
    match text.split_once('[') {
        Some((name, rest)) => Some(TaskId::new(
            name,
            Some(rest.strip_suffix(']')?.parse().ok()?),
        )),
        None => Some(TaskId::new(text, None)),
    }
}
