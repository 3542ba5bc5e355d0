//! Approving or rejecting a step that waits for a person (`approve = {...}`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use weft_core::ports::{AuditAction, ReportKind, Role};
use weft_core::run::{TaskId, TaskStatus};
use weft_core::spec::StepAction;

use super::{body, ApiState};
use crate::auth::Caller;
use crate::views::DecisionRequest;
use crate::Error;

#[utoipa::path(post, path = "/api/runs/{id}/steps/{step}/decision", tag = "runs", params(("id" = String, Path), ("step" = String, Path)), request_body = DecisionRequest, responses((status = 202, description = "the decision is handed to the run"), (status = 403, description = "the caller's role may not decide this step"), (status = 404, description = "no such run or step"), (status = 409, description = "the step is not waiting for approval"), (status = 422, description = "inputs missing, unknown or of the wrong type")), security(("bearer" = [])))]
pub(super) async fn decide(
    State(api): State<ApiState>,
    caller: Caller,
    Path((id, step)): Path<(String, String)>,
    request: Result<Json<DecisionRequest>, JsonRejection>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
    let request = body(request)?;
    let (record, state) = super::load_run(&api, &id).await?;
    let si = state
        .plan
        .dag
        .index_of(&step)
        .ok_or_else(|| Error::not_found(format!("run {} has no step {step}", record.id)))?;
    let StepAction::Approve { spec } = &state.plan.workflow.steps[si].action else {
        return Err(Error::new(
            StatusCode::CONFLICT,
            format!("step {step} is not an approval step"),
        ));
    };
    if !spec.allows(caller.role) {
        let takes: Vec<&str> = spec.roles.iter().map(|r| r.as_str()).collect();
        return Err(Error::new(
            StatusCode::FORBIDDEN,
            format!(
                "role {} may not approve or reject step {step}: it takes {}",
                caller.role.as_str(),
                takes.join(", ")
            ),
        ));
    }
    let task = TaskId::new(&step, None);
    let waiting = state
        .task(&task)
        .filter(|t| t.status == TaskStatus::AwaitingApproval);
    let Some(waiting) = waiting else {
        let now = state
            .task(&task)
            .map_or(state.steps[si].status.as_str(), |t| t.status.as_str());
        return Err(Error::new(
            StatusCode::CONFLICT,
            format!("step {step} is not waiting for approval: it is {now}"),
        ));
    };
    if request.approve {
        spec.outputs(&request.inputs)
            .map_err(|e| Error::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    }
    if request.comment.as_ref().is_some_and(|c| c.len() > 1_000) {
        return Err(Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a comment is at most 1,000 bytes",
        ));
    }
    let by = caller.name.clone().unwrap_or_else(|| "anonymous".into());
    let decision = ReportKind::Decided {
        by,
        approved: request.approve,
        inputs: request.inputs,
        comment: request.comment,
    };
    api.service
        .decide(&record.id, task, waiting.attempt(), decision)
        .await?;
    let action = match request.approve {
        true => AuditAction::ApproveStep,
        false => AuditAction::RejectStep,
    };
    super::audit(&api, &caller, action, &format!("{}/{step}", record.id)).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": record.id, "step": step, "approved": request.approve})),
    ))
}
