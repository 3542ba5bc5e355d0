//! Runs: submit, list, show, cancel, retry, and the live change stream.

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use tokio::sync::broadcast;
use weft_core::ports::{AuditAction, Role};
use weft_core::run::resolve_params;
use weft_orchestrator::NewRun;

use super::{body, ApiState};
use crate::app::{queued_steps, waiting_reason};
use crate::auth::Caller;
use crate::finished::ViewKind;
use crate::views::{RunStates, RunSummary, RunView, StepView, SubmitRequest};
use crate::Error;

#[utoipa::path(post, path = "/api/runs", tag = "runs", request_body = SubmitRequest, responses((status = 201, body = RunSummary), (status = 422, description = "problems in the workflow, each with line and column")), security(("bearer" = [])))]
pub(super) async fn submit(
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
    let choices = RunChoices {
        cache: request.cache_choice(),
        priority: request.priority,
        parent: None,
    };
    let record = start(
        &api,
        request.workflow,
        file,
        request.params,
        choices,
        &caller,
        None,
    )
    .await?;
    super::audit(&api, &caller, AuditAction::SubmitRun, &record.id).await;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Checks a workflow's text (422 with the diagnostics) and parses it.
pub(super) fn check(file: &str, source: &str) -> Result<weft_core::spec::Workflow, Error> {
    weft_core::spec::load(source).map_err(|diagnostics| {
        let rendered = weft_core::diagnostic::render(file, source, &diagnostics);
        let list = super::graph::diagnostic_views(source, &diagnostics);
        Error::Api {
            status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
            message: format!("{file}: {} problem(s) found\n{rendered}", diagnostics.len()),
            details: serde_json::to_value(list).ok(),
        }
    })
}

/// 403 with every refusal of the server's policy, each with line and column.
fn refused(
    file: &str,
    source: &str,
    diagnostics: Vec<weft_core::diagnostic::Diagnostic>,
) -> Result<(), Error> {
    problems(
        StatusCode::FORBIDDEN,
        "refused by the server's policy",
        file,
        source,
        diagnostics,
    )
}

/// `status` with every diagnostic, each with line and column.
fn problems(
    status: StatusCode,
    headline: &str,
    file: &str,
    source: &str,
    diagnostics: Vec<weft_core::diagnostic::Diagnostic>,
) -> Result<(), Error> {
    if diagnostics.is_empty() {
        return Ok(());
    }
    let rendered = weft_core::diagnostic::render(file, source, &diagnostics);
    let list = super::graph::diagnostic_views(source, &diagnostics);
    Err(Error::Api {
        status: status.as_u16(),
        message: format!(
            "{file}: {headline} ({} problem(s))\n{rendered}",
            diagnostics.len()
        ),
        details: serde_json::to_value(list).ok(),
    })
}

/// What a submitter chooses for one run besides its params.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunChoices {
    /// `--no-cache`, `--refresh STEP`.
    pub cache: weft_core::cache::RunCacheChoice,
    /// Its place among runs waiting for a concurrency key's slots.
    pub priority: i32,
    /// The run and step it is a sub-workflow of.
    pub parent: Option<weft_core::spec::sub_workflow::ParentRef>,
}

/// Validates `source` with `params` overrides and starts a run of it.
pub(super) async fn start(
    api: &ApiState,
    source: String,
    file: String,
    params: std::collections::BTreeMap<String, String>,
    choices: RunChoices,
    caller: &Caller,
    id: Option<String>,
) -> Result<RunSummary, Error> {
    let RunChoices {
        cache,
        priority,
        parent,
    } = choices;
    let workflow = check(&file, &source)?;
    crate::app::refuse_sub_workflow_cycles(api, &workflow).await?;
    cache
        .check(&workflow)
        .map_err(|e| Error::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let policy = super::run_policy(api, caller.role)?;
    if let Some(policy) = &policy {
        refused(&file, &source, policy.review(&workflow))?;
    }
    let (missing, out_of_scope) = super::secrets::review(api, &workflow).await?;
    problems(
        StatusCode::UNPROCESSABLE_ENTITY,
        "secrets that are not set",
        &file,
        &source,
        missing,
    )?;
    refused(&file, &source, out_of_scope)?;
    let decisions = api
        .admission
        .review(&workflow, caller.name.as_deref(), caller.role.as_str())
        .await?;
    if let Some(denial) = decisions
        .last()
        .filter(|d| d.verdict == weft_core::admission::Verdict::Deny)
    {
        problems(
            StatusCode::FORBIDDEN,
            "denied by an admission plugin",
            &file,
            &source,
            denial.diagnostics(&workflow),
        )?;
    }
    let mut prelude = match decisions.is_empty() {
        true => Vec::new(),
        false => vec![weft_core::run::Event::Admitted {
            decisions,
            at: super::now(),
        }],
    };
    if let Some(parent) = parent {
        prelude.push(weft_core::run::Event::ChildOf {
            parent,
            at: super::now(),
        });
    }
    let overrides: Vec<(String, String)> = params.into_iter().collect();
    let params = resolve_params(&workflow, &overrides)
        .map_err(|e| Error::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let plugins = weft_orchestrator::resolve_plugins(&workflow, api.plugins.as_ref(), None).await?;
    let run = NewRun {
        workflow,
        source,
        file,
        params,
        prelude,
        plugins,
        submitted_by: caller.name.clone(),
        policy,
        cache,
        priority,
    };
    let (record, _handle) = api
        .service
        .submit_as(
            run,
            id,
            Box::new(|_: &weft_core::run::RunState, _: &weft_core::run::Event| {}),
        )
        .await?;
    Ok(RunSummary::from(&record))
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    limit: Option<usize>,
    status: Option<String>,
    workflow: Option<String>,
    /// `<created_at>:<id>` of the last run of the previous page.
    before: Option<String>,
    /// Only runs whose id starts with this (how a shortened id is found).
    prefix: Option<String>,
}

/// Response header of `GET /api/runs`: the `before` of the next page, when there may be one.
pub const NEXT_PAGE_HEADER: &str = "x-weft-next-before";

#[utoipa::path(get, path = "/api/runs", tag = "runs", params(("status" = Option<String>, Query), ("workflow" = Option<String>, Query), ("limit" = Option<usize>, Query), ("before" = Option<String>, Query, description = "cursor from x-weft-next-before"), ("prefix" = Option<String>, Query, description = "only runs whose id starts with this")), responses((status = 200, body = [RunSummary])), security(("bearer" = [])))]
pub(super) async fn list(
    State(api): State<ApiState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
    let query = crate::app::run_query(&crate::app::RunFilter {
        status: q.status.as_deref(),
        workflow: q.workflow.as_deref(),
        before: q.before.as_deref(),
        prefix: q.prefix.as_deref(),
        limit: q.limit,
    })?;
    let limit = query.limit;
    let runs = api.store.query_runs(&query).await?;
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

#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", params(("id" = String, Path)), responses((status = 200, body = RunView), (status = 404, description = "no such run")), security(("bearer" = [])))]
pub(super) async fn show(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    caller.require(Role::Viewer)?;
    if let Some(json) = api.finished.get(ViewKind::Run, &id) {
        return Ok(json_response(json));
    }
    let (record, state) = super::load_run(&api, &id).await?;
    let workers = match crate::app::needs_workers(&state) {
        true => api.live_workers.get(api.workers.as_ref()).await?,
        false => Default::default(),
    };
    let view = crate::app::run_view(&record, &state, &workers);
    // Kept under the run's own id: a prefix may match another run later.
    Ok(finished_or_not(
        &api,
        ViewKind::Run,
        &record.id,
        finished(&record, &state),
        &view,
    ))
}

/// Whether nothing about the run can change any more: its state and its
/// record (written after the last event) both say it ended.
fn finished(record: &weft_core::ports::RunRecord, state: &weft_core::run::RunState) -> bool {
    state.status.is_terminal() && record.status.is_terminal()
}

/// The view as a JSON response, kept for next time if the run is finished.
fn finished_or_not(
    api: &ApiState,
    kind: ViewKind,
    id: &str,
    finished: bool,
    view: &impl serde::Serialize,
) -> Response {
    let Ok(json) = serde_json::to_vec(view) else {
        return Error::new(StatusCode::INTERNAL_SERVER_ERROR, "serializing a run view")
            .into_response();
    };
    let json = Bytes::from(json);
    if finished {
        api.finished.put(kind, id, json.clone());
    }
    json_response(json)
}

fn json_response(json: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/runs/{id}/states", tag = "runs", params(("id" = String, Path)), responses((status = 200, body = RunStates), (status = 404, description = "no such run")), security(("bearer" = [])))]
pub(super) async fn states(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    caller.require(Role::Viewer)?;
    if let Some(json) = api.finished.get(ViewKind::States, &id) {
        return Ok(json_response(json));
    }
    let (record, state) = super::load_run(&api, &id).await?;
    let view = RunStates::new(&record, &state);
    Ok(finished_or_not(
        &api,
        ViewKind::States,
        &record.id,
        finished(&record, &state),
        &view,
    ))
}

#[utoipa::path(get, path = "/api/runs/{id}/steps/{step}", tag = "runs", params(("id" = String, Path), ("step" = String, Path)), responses((status = 200, body = StepView), (status = 404, description = "no such run or step")), security(("bearer" = [])))]
pub(super) async fn step(
    State(api): State<ApiState>,
    caller: Caller,
    Path((id, step)): Path<(String, String)>,
) -> Result<Json<StepView>, Error> {
    caller.require(Role::Viewer)?;
    let (_, state) = super::load_run(&api, &id).await?;
    let i = state
        .plan
        .dag
        .index_of(&step)
        .ok_or_else(|| Error::not_found(format!("run {id} has no step {step}")))?;
    let mut view = StepView::new(&state, i);
    if view.reason.is_none() && queued_steps(&state).contains(&i) {
        let workers = api.live_workers.get(api.workers.as_ref()).await?;
        view.reason = waiting_reason(&state.plan.workflow.steps[i], &workers);
    }
    Ok(Json(view))
}

#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs", params(("id" = String, Path)), responses((status = 202, description = "cancel requested"), (status = 404, description = "no such run")), security(("bearer" = [])))]
pub(super) async fn cancel(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Operator)?;
    let id = crate::app::resolve_run(api.store.as_ref(), &id).await?;
    api.service.cancel(&id).await?;
    super::audit(&api, &caller, AuditAction::CancelRun, &id).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": id, "cancel": "requested"})),
    ))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct RetryRequest {
    /// Run again from this step (and what is downstream of it); by default
    /// from the steps that did not succeed.
    from: Option<String>,
}

#[utoipa::path(post, path = "/api/runs/{id}/retry", tag = "runs", params(("id" = String, Path)), request_body(content = RetryRequest, description = "optional"), responses((status = 201, body = RunSummary), (status = 422, description = "unfinished run or unknown step")), security(("bearer" = [])))]
pub(super) async fn retry(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    request: Option<Json<RetryRequest>>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Operator)?;
    let request = request.map(|Json(r)| r).unwrap_or_default();
    let id = crate::app::resolve_run(api.store.as_ref(), &id).await?;
    // Held to the policy of whoever retries it.
    let by = weft_orchestrator::Submitter {
        policy: super::run_policy(&api, caller.role)?,
        name: caller.name.clone(),
    };
    let (record, _handle) = api.service.retry(&id, request.from.as_deref(), by).await?;
    let target = format!("{} (retry of {id})", record.id);
    super::audit(&api, &caller, AuditAction::RetryRun, target).await;
    Ok((StatusCode::CREATED, Json(RunSummary::from(&record))))
}

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    run: Option<String>,
}

#[utoipa::path(get, path = "/api/events", tag = "runs", params(("run" = Option<String>, Query)), responses((status = 200, content_type = "text/event-stream", description = "`run` events, one per change")), security(("bearer" = [])))]
pub(super) async fn events(
    State(api): State<ApiState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
    let changes = api.changes.subscribe();
    let stream = futures_util::stream::unfold((changes, q.run), |(mut changes, run)| async move {
        // Counted from the last thing sent: changes of other runs do not
        // keep a filtered stream's connection alive.
        let quiet_until = tokio::time::Instant::now() + KEEP_ALIVE;
        loop {
            let frames = match tokio::time::timeout_at(quiet_until, changes.recv()).await {
                // A comment, so proxies and browsers keep a quiet stream open.
                Err(_) => Bytes::from_static(b":\n\n"),
                Ok(Ok(batch)) => match batch.frames_for(run.as_deref()) {
                    Some(frames) => frames,
                    None => continue,
                },
                // Too slow: say so, and go on from the newest change.
                Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                    Bytes::from(format!("event: lagged\ndata: {missed}\n\n"))
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            };
            return Some((Ok::<_, std::convert::Infallible>(frames), (changes, run)));
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    ))
}

/// How long an event stream may stay silent before a keep-alive comment.
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);
