//! Schedules of saved workflows: list them with their next fire times, and
//! backfill (one run per fire time in a range, under each fire's own id, so
//! a backfill done twice, or a fire the scheduler already started, starts
//! nothing again).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use weft_core::ports::{AuditAction, Role};
use weft_core::schedule::{fire_run_id, parse_time, MAX_FIRES_AT_ONCE};

use super::{body, now, ApiState};
use crate::app::ScheduleView;
use crate::auth::Caller;
use crate::Error;

#[utoipa::path(get, path = "/api/schedules", tag = "workflows", responses((status = 200, body = [ScheduleView])), security(("bearer" = [])))]
pub(super) async fn list(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<ScheduleView>>, Error> {
    caller.require(Role::Viewer)?;
    Ok(Json(crate::app::schedule_views(&api, now()).await?))
}

/// `POST /api/workflows/{name}/backfill` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Backfill {
    /// First fire time to start, RFC 3339 or a day (`2026-01-10`).
    from: String,
    /// Last fire time to start (included).
    to: String,
    /// Which `[[triggers.schedule]]`, from 0; the first by default.
    #[serde(default)]
    schedule: usize,
}

/// What a backfill did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackfillAnswer {
    /// Runs started, one per fire time, oldest first.
    pub started: Vec<String>,
    /// Fire times that had a run already (started by the scheduler or an
    /// earlier backfill): their runs.
    pub existing: Vec<String>,
}

#[utoipa::path(post, path = "/api/workflows/{name}/backfill", tag = "workflows", params(("name" = String, Path)), request_body = Backfill, responses((status = 201, body = BackfillAnswer), (status = 404, description = "no such workflow or schedule"), (status = 422, description = "a bad time or range")), security(("bearer" = [])))]
pub(super) async fn backfill(
    State(api): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    request: Result<Json<Backfill>, JsonRejection>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Operator)?;
    let request = body(request)?;
    let unprocessable = |m: String| Error::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let from = parse_time(&request.from).map_err(unprocessable)?;
    let to = parse_time(&request.to).map_err(unprocessable)?;
    if to < from {
        return Err(unprocessable(format!(
            "`to` ({}) is before `from` ({})",
            request.to, request.from
        )));
    }
    let saved = api
        .workflows
        .workflow(&name, None)
        .await?
        .ok_or_else(|| Error::not_found(format!("no saved workflow {name}")))?;
    let workflow = weft_core::spec::load(&saved.source)
        .map_err(|_| unprocessable(format!("saved workflow {name} no longer parses")))?;
    let spec = workflow.schedules.get(request.schedule).ok_or_else(|| {
        Error::not_found(format!(
            "workflow {name} has {} schedule(s); there is no schedule {}",
            workflow.schedules.len(),
            request.schedule
        ))
    })?;
    let timing = spec.timing().map_err(|e| unprocessable(e.to_string()))?;
    let fires = timing.fires(from.saturating_sub(1), to, MAX_FIRES_AT_ONCE + 1);
    if fires.len() > MAX_FIRES_AT_ONCE {
        return Err(unprocessable(format!(
            "more than {MAX_FIRES_AT_ONCE} fire times between {} and {}: backfill a shorter range at a time",
            request.from, request.to
        )));
    }
    let runner = Caller {
        role: caller.role,
        token_id: caller.token_id.clone(),
        name: Some(format!(
            "{} (backfill of {})",
            caller.name.as_deref().unwrap_or("anonymous"),
            weft_core::schedule::submitter(&name, request.schedule)
        )),
    };
    let mut answer = BackfillAnswer {
        started: Vec::new(),
        existing: Vec::new(),
    };
    let params = spec
        .overrides()
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>();
    for fire in fires {
        let id = fire_run_id(&name, request.schedule, fire);
        if api.store.get_run(&id).await?.is_some() {
            answer.existing.push(id);
            continue;
        }
        let started = super::start_saved(
            &api,
            &saved,
            params.clone(),
            id.clone(),
            super::RunChoices {
                priority: spec.priority,
                ..Default::default()
            },
            &runner,
        )
        .await;
        match started {
            Ok(_) => answer.started.push(id),
            // The scheduler started it meanwhile.
            Err(_) if api.store.get_run(&id).await?.is_some() => answer.existing.push(id),
            Err(e) => return Err(e),
        }
    }
    let target = format!(
        "{name}#{} {}..{}",
        request.schedule, request.from, request.to
    );
    super::audit(&api, &caller, AuditAction::SubmitRun, target).await;
    Ok((StatusCode::CREATED, Json(answer)))
}
