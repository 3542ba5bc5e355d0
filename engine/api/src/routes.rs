//! The REST API of `weft serve`.
//!
//! - `POST /api/runs` `{workflow, file?, params?}`: validate and start a run; 201 with the run.
//! - `GET /api/runs?limit=N`: runs, newest first.
//! - `GET /api/runs/{id}`: a run with its steps, tasks and attempts.
//! - `POST /api/runs/{id}/cancel`: ask the run to cancel; 202.
//! - `GET /api/runs/{id}/logs/{task}?attempt=N&offset=K`: one attempt's log, as text,
//!   from byte K; header `x-weft-attempt-finished` says whether more may come.
//! - `GET /api/workers`: live workers, their pools, slots and running attempts.
//! - `GET /healthz`.
//!
//! Errors are JSON: `{"error": "...", "details": ...}`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use weft_core::ports::{LogKey, RunStore, WorkerInfo, WorkerRegistry};
use weft_core::run::{resolve_params, TaskId};
use weft_orchestrator::{NewRun, Service};

use crate::views::{RunSummary, RunView, SubmitRequest};
use crate::Error;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub service: Service,
    pub store: Arc<dyn RunStore>,
    pub workers: Arc<dyn WorkerRegistry>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/runs", post(submit).get(list))
        .route("/api/runs/{id}", get(show))
        .route("/api/runs/{id}/cancel", post(cancel))
        .route("/api/runs/{id}/logs/{task}", get(logs))
        .route("/api/workers", get(workers))
        .fallback(|| async { Error::not_found("no such endpoint") })
        .with_state(state)
}

async fn submit(
    State(api): State<ApiState>,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Result<impl IntoResponse, Error> {
    let Json(request) = body.map_err(|e| {
        Error::new(
            StatusCode::BAD_REQUEST,
            format!("bad request body: {}", e.body_text()),
        )
    })?;
    let file = request
        .file
        .clone()
        .unwrap_or_else(|| "workflow.toml".into());
    let workflow = weft_core::spec::load(&request.workflow).map_err(|diagnostics| {
        let rendered = weft_core::diagnostic::render(&file, &request.workflow, &diagnostics);
        let list: Vec<_> = diagnostics
            .iter()
            .map(|d| {
                let (line, column) = d.line_column(&request.workflow).unwrap_or((0, 0));
                serde_json::json!({"message": d.message, "line": line, "column": column})
            })
            .collect();
        Error::Api {
            status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
            message: format!("{file}: {} problem(s) found\n{rendered}", diagnostics.len()),
            details: Some(serde_json::Value::Array(list)),
        }
    })?;
    let overrides: Vec<(String, String)> = request.params.into_iter().collect();
    let params = resolve_params(&workflow, &overrides)
        .map_err(|e| Error::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let (record, _handle) = api
        .service
        .submit(
            NewRun {
                workflow,
                source: request.workflow,
                file,
                params,
            },
            Box::new(|_: &weft_core::run::RunState, _: &weft_core::run::Event| {}),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(RunSummary::from(&record))))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list(
    State(api): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<RunSummary>>, Error> {
    let runs = api
        .store
        .list_runs(q.limit.unwrap_or(50).min(10_000))
        .await?;
    Ok(Json(runs.iter().map(RunSummary::from).collect()))
}

async fn show(State(api): State<ApiState>, Path(id): Path<String>) -> Result<Json<RunView>, Error> {
    let (record, state) = weft_orchestrator::load_run(api.store.as_ref(), &id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no run {id}")))?;
    Ok(Json(RunView::new(&record, &state)))
}

async fn cancel(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Error> {
    api.service.cancel(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": id, "cancel": "requested"})),
    ))
}

#[derive(Deserialize)]
struct LogQuery {
    attempt: Option<u32>,
    /// Bytes to skip, for following a log as it grows.
    offset: Option<usize>,
}

/// Response header: whether the attempt has finished (its log is complete).
pub const FINISHED_HEADER: &str = "x-weft-attempt-finished";

async fn logs(
    State(api): State<ApiState>,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<impl IntoResponse, Error> {
    let (_, state) = weft_orchestrator::load_run(api.store.as_ref(), &id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no run {id}")))?;
    let task_id = parse_task(&task).ok_or_else(|| {
        Error::new(
            StatusCode::BAD_REQUEST,
            format!("`{task}`: write a task as `step` or `step[2]`"),
        )
    })?;
    let t = state
        .task(&task_id)
        .ok_or_else(|| Error::not_found(format!("`{task}` never ran in run {id}")))?;
    let attempt = q.attempt.unwrap_or_else(|| t.attempt());
    if attempt == 0 || attempt > t.attempt() {
        return Err(Error::not_found(format!(
            "`{task}` has attempts 1 to {}",
            t.attempt()
        )));
    }
    let finished = state.status.is_terminal()
        || t.attempts
            .get(attempt as usize - 1)
            .is_some_and(|a| a.finished_at.is_some());
    let log = api
        .store
        .read_log(&LogKey {
            run_id: id,
            task: task_id,
            attempt,
        })
        .await?;
    let tail = log
        .get(q.offset.unwrap_or(0).min(log.len())..)
        .unwrap_or_default()
        .to_vec();
    let finished = axum::http::HeaderValue::from_static(if finished { "true" } else { "false" });
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                axum::http::HeaderName::from_static(FINISHED_HEADER),
                finished,
            ),
        ],
        tail,
    ))
}

async fn workers(State(api): State<ApiState>) -> Result<Json<Vec<WorkerInfo>>, Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok(Json(api.workers.workers(now).await?))
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
