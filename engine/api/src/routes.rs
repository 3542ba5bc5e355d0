//! The REST API of `weft serve`. Every route but `/healthz` needs a bearer
//! token (unless the server runs without auth); the role each needs is
//! noted.
//!
//! - `POST /api/runs` `{workflow, file?, params?}` (operator): validate and start a run; 201.
//! - `GET /api/runs?status=S&workflow=W&limit=N&before=C` (viewer): runs, newest first;
//!   header `x-weft-next-before` holds the cursor of the next page.
//! - `GET /api/runs/{id}` (viewer): a run with its steps, tasks and attempts.
//! - `POST /api/runs/{id}/cancel` (operator): ask the run to cancel; 202.
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
//! - `GET /healthz`, `GET /metrics` (Prometheus; open, for scrapers).
//!
//! Errors are JSON: `{"error": "...", "details": ...}`. Bodies over
//! `MAX_BODY_BYTES` get 413.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::broadcast;
use weft_core::ports::{LogKey, Role, RunQuery, RunStore, TokenStore, WorkerInfo, WorkerRegistry};
use weft_core::run::{resolve_params, RunStatus, TaskId};
use weft_orchestrator::{NewRun, Service};

use crate::auth::{mint, Caller};
use crate::metrics::ServerMetrics;
use crate::views::{NewToken, RunSummary, RunView, SubmitRequest, TokenView};
use crate::Error;

/// Largest request body: a workflow file's limit with room for JSON escaping.
pub const MAX_BODY_BYTES: usize = 40 << 20;

/// Response header: whether the attempt has finished (its log is complete).
pub const FINISHED_HEADER: &str = "x-weft-attempt-finished";

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub service: Service,
    pub store: Arc<dyn RunStore>,
    pub workers: Arc<dyn WorkerRegistry>,
    /// `None` runs the API without auth (single-user opt-out).
    pub tokens: Option<Arc<dyn TokenStore>>,
    pub metrics: Arc<ServerMetrics>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/api/runs", post(submit).get(list))
        .route("/api/runs/{id}", get(show))
        .route("/api/runs/{id}/cancel", post(cancel))
        .route("/api/runs/{id}/retry", post(retry))
        .route("/api/runs/{id}/logs/{task}", get(logs))
        .route("/api/runs/{id}/logs/{task}/stream", get(log_stream))
        .route("/api/workers", get(workers))
        .route("/api/events", get(events))
        .route("/api/tokens", post(create_token).get(list_tokens))
        .route("/api/tokens/{id}", delete(revoke_token))
        .fallback(|| async { Error::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Error> {
    body.map(|Json(b)| b).map_err(|e| {
        let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        Error::new(status, format!("bad request body: {}", e.body_text()))
    })
}

async fn submit(
    State(api): State<ApiState>,
    caller: Caller,
    request: Result<Json<SubmitRequest>, JsonRejection>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Operator)?;
    let request = body(request)?;
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
    let run = NewRun {
        workflow,
        source: request.workflow,
        file,
        params,
        reuse: Vec::new(),
    };
    let (record, _handle) = api
        .service
        .submit(
            run,
            Box::new(|_: &weft_core::run::RunState, _: &weft_core::run::Event| {}),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(RunSummary::from(&record))))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    status: Option<String>,
    workflow: Option<String>,
    /// `<created_at>:<id>` of the last run of the previous page.
    before: Option<String>,
}

/// Response header of `GET /api/runs`: the `before` of the next page, when there may be one.
pub const NEXT_PAGE_HEADER: &str = "x-weft-next-before";

async fn list(
    State(api): State<ApiState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
    let bad = |what: String| Error::new(StatusCode::BAD_REQUEST, what);
    let status = q
        .status
        .as_deref()
        .map(|s| RunStatus::parse(s).ok_or_else(|| bad(format!("`{s}` is not a run status"))))
        .transpose()?;
    let before = q
        .before
        .as_deref()
        .map(|b| {
            b.split_once(':')
                .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
                .ok_or_else(|| bad(format!("`{b}` is not a page cursor")))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let runs = api
        .store
        .query_runs(&RunQuery {
            status,
            workflow: q.workflow,
            before,
            limit,
        })
        .await?;
    let next = (runs.len() == limit)
        .then(|| runs.last().map(|r| format!("{}:{}", r.created_at, r.id)))
        .flatten()
        .unwrap_or_default();
    let next = HeaderValue::from_str(&next).unwrap_or_else(|_| HeaderValue::from_static(""));
    Ok((
        [(HeaderName::from_static(NEXT_PAGE_HEADER), next)],
        Json(runs.iter().map(RunSummary::from).collect::<Vec<_>>()),
    ))
}

async fn show(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunView>, Error> {
    caller.require(Role::Viewer)?;
    let (record, state) = weft_orchestrator::load_run(api.store.as_ref(), &id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no run {id}")))?;
    Ok(Json(RunView::new(&record, &state)))
}

async fn cancel(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Operator)?;
    api.service.cancel(&id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": id, "cancel": "requested"})),
    ))
}

#[derive(Deserialize, Default)]
struct RetryRequest {
    /// Run again from this step (and what is downstream of it); by default
    /// from the steps that did not succeed.
    from: Option<String>,
}

async fn retry(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    request: Option<Json<RetryRequest>>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Operator)?;
    let request = request.map(|Json(r)| r).unwrap_or_default();
    let (record, _handle) = api.service.retry(&id, request.from.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(RunSummary::from(&record))))
}

#[derive(Deserialize)]
struct LogQuery {
    attempt: Option<u32>,
    /// Bytes to skip, for following a log as it grows.
    offset: Option<usize>,
}

async fn logs(
    State(api): State<ApiState>,
    caller: Caller,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
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
    let finished = HeaderValue::from_static(if finished { "true" } else { "false" });
    let text = HeaderValue::from_static("text/plain; charset=utf-8");
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, text),
            (HeaderName::from_static(FINISHED_HEADER), finished),
        ],
        tail,
    ))
}

/// Polls the store for new log bytes (every 250 ms) and sends them as they
/// come, until the attempt has finished and its log is drained.
async fn log_stream(
    State(api): State<ApiState>,
    caller: Caller,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
    let task_id = parse_task(&task).ok_or_else(|| {
        Error::new(
            StatusCode::BAD_REQUEST,
            format!("`{task}`: write a task as `step` or `step[2]`"),
        )
    })?;
    if api.store.get_run(&id).await?.is_none() {
        return Err(Error::not_found(format!("no run {id}")));
    }
    struct Tail {
        api: ApiState,
        id: String,
        task: TaskId,
        attempt: Option<u32>,
        offset: usize,
        done: bool,
    }
    let start = Tail {
        api,
        id,
        task: task_id,
        attempt: q.attempt,
        offset: q.offset.unwrap_or(0),
        done: false,
    };
    let stream = futures_util::stream::unfold(start, |mut tail| async move {
        if tail.done {
            return None;
        }
        loop {
            // Which attempt, and is it over? The run's state says.
            let state = weft_orchestrator::load_run(tail.api.store.as_ref(), &tail.id)
                .await
                .ok()
                .flatten()
                .map(|(_, s)| s);
            let Some(state) = state else {
                tail.done = true;
                return Some((
                    Ok::<_, std::convert::Infallible>(
                        Event::default().event("end").data("run gone"),
                    ),
                    tail,
                ));
            };
            let task = state.task(&tail.task);
            let attempt = tail
                .attempt
                .or_else(|| task.map(|t| t.attempt()))
                .unwrap_or(0);
            let finished = state.status.is_terminal()
                || task
                    .and_then(|t| t.attempts.get((attempt as usize).wrapping_sub(1)))
                    .is_some_and(|a| a.finished_at.is_some());
            if attempt > 0 {
                let key = LogKey {
                    run_id: tail.id.clone(),
                    task: tail.task.clone(),
                    attempt,
                };
                let log = tail.api.store.read_log(&key).await.unwrap_or_default();
                if log.len() > tail.offset {
                    let text = String::from_utf8_lossy(&log[tail.offset..]).to_string();
                    tail.offset = log.len();
                    return Some((Ok(Event::default().event("log").data(text)), tail));
                }
            }
            if finished {
                tail.done = true;
                return Some((
                    Ok(Event::default().event("end").data(attempt.to_string())),
                    tail,
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn workers(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<WorkerInfo>>, Error> {
    caller.require(Role::Viewer)?;
    Ok(Json(api.workers.workers(now()).await?))
}

/// Open like `/healthz`, for scrapers.
async fn metrics(State(api): State<ApiState>) -> Result<impl IntoResponse, Error> {
    let workers = api.workers.workers(now()).await?;
    let mut pools: Vec<String> = workers.iter().flat_map(|w| w.pools.clone()).collect();
    pools.push(weft_core::spec::DEFAULT_POOL.to_string());
    pools.sort();
    pools.dedup();
    let mut depths = Vec::new();
    for pool in pools {
        if let Some(depth) = api.service.queue().depth(&pool).await? {
            depths.push((pool, depth));
        }
    }
    let slots = workers.iter().map(|w| u64::from(w.slots.concurrency)).sum();
    let busy = workers.iter().map(|w| w.running.len() as u64).sum();
    let text = api.metrics.render(
        api.service.active_runs(),
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

#[derive(Deserialize)]
struct EventsQuery {
    run: Option<String>,
}

async fn events(
    State(api): State<ApiState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
    let changes = api.service.watch();
    let stream = futures_util::stream::unfold((changes, q.run), |(mut changes, run)| async move {
        loop {
            match changes.recv().await {
                Ok(change) if run.as_ref().is_none_or(|r| *r == change.run_id) => {
                    let event = Event::default()
                        .event("run")
                        .json_data(&change)
                        .unwrap_or_else(|_| Event::default().event("error"));
                    return Some((Ok::<_, std::convert::Infallible>(event), (changes, run)));
                }
                Ok(_) => {}
                // Too slow: say so, and go on from the newest change.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let event = Event::default().event("lagged").data(missed.to_string());
                    return Some((Ok(event), (changes, run)));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn token_store(api: &ApiState) -> Result<&Arc<dyn TokenStore>, Error> {
    api.tokens.as_ref().ok_or_else(|| {
        Error::new(
            StatusCode::NOT_FOUND,
            "this server runs without auth: it has no tokens",
        )
    })
}

async fn create_token(
    State(api): State<ApiState>,
    caller: Caller,
    request: Result<Json<NewToken>, JsonRejection>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Admin)?;
    let request = body(request)?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "`{}` is not a role: use viewer, operator or admin",
                request.role
            ),
        )
    })?;
    let (token, record) = mint(&request.name, role, now())?;
    token_store(&api)?.add_token(&record).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenView {
            id: record.id,
            name: record.name,
            role: role.as_str().into(),
            created_at: record.created_at,
            token: Some(token),
        }),
    ))
}

async fn list_tokens(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<TokenView>>, Error> {
    caller.require(Role::Admin)?;
    let tokens = token_store(&api)?.tokens().await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenView {
                id: t.id,
                name: t.name,
                role: t.role.as_str().into(),
                created_at: t.created_at,
                token: None,
            })
            .collect(),
    ))
}

async fn revoke_token(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Admin)?;
    token_store(&api)?
        .revoke_token(&id)
        .await
        .map_err(|e| match e {
            weft_core::Error::NotFound(_) => Error::not_found(format!("no token {id}")),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
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
