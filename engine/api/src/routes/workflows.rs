//! Saved workflow definitions: save a version, list, read, run one.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use weft_core::ports::{AuditAction, Role, SavedWorkflow};

use super::runs::{check, start, RunChoices};
use super::{body, now, ApiState};
use crate::auth::Caller;
use crate::views::{RunSummary, SavedWorkflowView};
use crate::Error;

/// `POST /api/workflows` body.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct SaveWorkflow {
    /// The workflow file's text.
    workflow: String,
    /// The name to save it under; by default its `[workflow] name`.
    name: Option<String>,
}

#[utoipa::path(post, path = "/api/workflows", tag = "workflows", request_body = SaveWorkflow, responses((status = 201, body = SavedWorkflowView), (status = 422, description = "problems in the workflow, each with line and column")), security(("bearer" = [])))]
pub(super) async fn save(
    State(api): State<ApiState>,
    caller: Caller,
    request: Result<Json<SaveWorkflow>, JsonRejection>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Operator)?;
    let request = body(request)?;
    let workflow = check("workflow.toml", &request.workflow)?;
    let name = request.name.unwrap_or(workflow.name);
    if !weft_core::spec::parse::is_name(&name) {
        return Err(Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("`{name}` is not a workflow name: use letters, digits, `_` and `-`"),
        ));
    }
    // A webhook's name is its URL: one saved workflow per name.
    for hook in &workflow.webhooks {
        let taken = api
            .hooks
            .named(api.workflows.as_ref(), &hook.name.value)
            .await?;
        if let Some(other) = taken.iter().find(|h| h.saved.name != name) {
            return Err(Error::new(
                StatusCode::CONFLICT,
                format!(
                    "webhook `{}` is saved workflow {}'s already: give this one another name",
                    hook.name.value, other.saved.name
                ),
            ));
        }
    }
    let saved_at = now();
    let version = api
        .workflows
        .save_workflow(&name, &request.workflow, saved_at)
        .await?;
    let target = format!("{name}@{version}");
    super::audit(&api, &caller, AuditAction::SaveWorkflow, target).await;
    Ok((
        StatusCode::CREATED,
        Json(SavedWorkflowView {
            name,
            version,
            saved_at,
            source: None,
            params: None,
        }),
    ))
}

#[utoipa::path(get, path = "/api/workflows", tag = "workflows", responses((status = 200, body = [SavedWorkflowView])), security(("bearer" = [])))]
pub(super) async fn list(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<SavedWorkflowView>>, Error> {
    caller.require(Role::Viewer)?;
    let all = api.workflows.workflows().await?;
    Ok(Json(
        all.into_iter()
            .map(|w| SavedWorkflowView {
                name: w.name,
                version: w.version,
                saved_at: w.saved_at,
                source: None,
                params: None,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub(super) struct VersionQuery {
    version: Option<u32>,
}

#[utoipa::path(get, path = "/api/workflows/{name}", tag = "workflows", params(("name" = String, Path), ("version" = Option<u32>, Query, description = "the latest by default")), responses((status = 200, body = SavedWorkflowView), (status = 404, description = "no such workflow or version")), security(("bearer" = [])))]
pub(super) async fn show(
    State(api): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<SavedWorkflowView>, Error> {
    caller.require(Role::Viewer)?;
    let w = api
        .workflows
        .workflow(&name, q.version)
        .await?
        .ok_or_else(|| Error::not_found(format!("no saved workflow {name} at that version")))?;
    // Saved versions were checked when saved; one that no longer loads
    // (a newer weft reads it differently) still shows, without a form.
    let params = weft_core::spec::load(&w.source)
        .ok()
        .map(|workflow| workflow.param_defaults());
    Ok(Json(SavedWorkflowView {
        name: w.name,
        version: w.version,
        saved_at: w.saved_at,
        source: Some(w.source),
        params,
    }))
}

/// Starts a run of saved workflow version `saved` with run id `id` (a
/// scheduled fire's, a delivery's, a follow-up's), as `caller`: the checks
/// a submit has.
pub(crate) async fn start_saved(
    api: &ApiState,
    saved: &SavedWorkflow,
    params: BTreeMap<String, String>,
    id: String,
    choices: RunChoices,
    caller: &Caller,
) -> Result<RunSummary, Error> {
    start(
        api,
        saved.source.clone(),
        format!("{}@{}", saved.name, saved.version),
        params,
        choices,
        caller,
        Some(id),
    )
    .await
}

/// `POST /api/workflows/{name}/runs` body.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub(super) struct RunSaved {
    /// Which version; the latest by default.
    version: Option<u32>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    /// -1000 to 1000, higher first: its place among runs waiting for a
    /// concurrency key's slots and its jobs' band in their pools' queues.
    #[serde(default)]
    priority: i32,
}

#[utoipa::path(post, path = "/api/workflows/{name}/runs", tag = "workflows", params(("name" = String, Path)), request_body(content = RunSaved, description = "optional"), responses((status = 201, body = RunSummary), (status = 404, description = "no such workflow or version")), security(("bearer" = [])))]
pub(super) async fn run(
    State(api): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    request: Option<Json<RunSaved>>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Operator)?;
    let request = request.map(|Json(r)| r).unwrap_or_default();
    let w = api
        .workflows
        .workflow(&name, request.version)
        .await?
        .ok_or_else(|| Error::not_found(format!("no saved workflow {name} at that version")))?;
    let record = start(
        &api,
        w.source,
        format!("{}@{}", w.name, w.version),
        request.params,
        RunChoices {
            priority: request.priority,
            ..Default::default()
        },
        &caller,
        None,
    )
    .await?;
    super::audit(&api, &caller, AuditAction::SubmitRun, &record.id).await;
    Ok((StatusCode::CREATED, Json(record)))
}
