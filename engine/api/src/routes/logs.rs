//! Step logs: a page of an attempt's log, or the log live over SSE.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use serde::Deserialize;
use weft_core::ports::{LogKey, Role};
use weft_core::run::{RunState, TaskId};

use super::{parse_task, ApiState};
use crate::auth::Caller;
use crate::Error;

#[derive(Deserialize)]
pub(super) struct LogQuery {
    attempt: Option<u32>,
    /// Bytes to skip, for following a log as it grows.
    offset: Option<usize>,
}

/// Response header: whether the attempt has finished (its log is complete).
pub const FINISHED_HEADER: &str = "x-weft-attempt-finished";

#[utoipa::path(get, path = "/api/runs/{id}/logs/{task}", tag = "logs", params(("id" = String, Path), ("task" = String, Path, description = "step, or step[2]"), ("attempt" = Option<u32>, Query), ("offset" = Option<usize>, Query)), responses((status = 200, content_type = "text/plain", body = String)), security(("bearer" = [])))]
pub(super) async fn logs(
    State(api): State<ApiState>,
    caller: Caller,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
    let task_id = task_param(&task)?;
    let (_, state) = super::load_run(&api, &id).await?;
    let (attempt, finished) =
        attempt_state(&state, &task_id, q.attempt).ok_or_else(|| match state.task(&task_id) {
            Some(t) if t.attempt() > 0 => {
                Error::not_found(format!("`{task}` has attempts 1 to {}", t.attempt()))
            }
            _ => Error::not_found(format!("`{task}` never ran in run {id}")),
        })?;
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
#[utoipa::path(get, path = "/api/runs/{id}/logs/{task}/stream", tag = "logs", params(("id" = String, Path), ("task" = String, Path), ("attempt" = Option<u32>, Query)), responses((status = 200, content_type = "text/event-stream", description = "`log` events, then `end`")), security(("bearer" = [])))]
pub(super) async fn log_stream(
    State(api): State<ApiState>,
    caller: Caller,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
    let task_id = task_param(&task)?;
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
            let state = weft_orchestrator::load_run_with(
                tail.api.store.as_ref(),
                &tail.id,
                &tail.api.plans,
            )
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
            // Not started yet: nothing to send until it is, or the run ends.
            let (attempt, finished) = attempt_state(&state, &tail.task, tail.attempt)
                .unwrap_or((0, state.status.is_terminal()));
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

/// `step` or `step[2]` from the path; 400 otherwise.
fn task_param(task: &str) -> Result<TaskId, Error> {
    parse_task(task).ok_or_else(|| {
        Error::new(
            StatusCode::BAD_REQUEST,
            format!("`{task}`: write a task as `step` or `step[2]`"),
        )
    })
}

/// The attempt of `task` a caller means (`asked`, else the last one) and
/// whether its log is complete; `None` if that attempt never started.
fn attempt_state(state: &RunState, task: &TaskId, asked: Option<u32>) -> Option<(u32, bool)> {
    let t = state.task(task)?;
    let attempt = asked.unwrap_or_else(|| t.attempt());
    let record = t.attempts.get((attempt as usize).checked_sub(1)?)?;
    Some((
        attempt,
        state.status.is_terminal() || record.finished_at.is_some(),
    ))
}
