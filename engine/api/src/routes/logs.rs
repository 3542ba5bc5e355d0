//! Step logs: a page of an attempt's log, or the log live over SSE.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::broadcast;
use weft_core::ports::{AttemptId, Role, LOG_PAGE_BYTES};
use weft_core::run::{RunState, TaskId};

use super::{parse_task, ApiState};
use crate::auth::Caller;
use crate::changes::Batch;
use crate::Error;

#[derive(Deserialize)]
pub(super) struct LogQuery {
    attempt: Option<u32>,
    /// Bytes to skip, for following a log as it grows.
    offset: Option<u64>,
    /// Most bytes to answer with (default 1 MiB, at most 8 MiB): a long log
    /// is read in pages.
    limit: Option<u64>,
    /// The log's last this many bytes (at most 8 MiB) instead of a page
    /// from `offset`: where a failed step's log is read first.
    tail: Option<u64>,
}

/// The largest page of a log one request gets.
const MAX_PAGE_BYTES: u64 = 8 << 20;

/// Response header: whether the attempt has finished (its log is complete).
pub const FINISHED_HEADER: &str = "x-weft-attempt-finished";
/// Response header: the byte of the log the body begins at: the asked-for
/// offset, or later where the store dropped the log's oldest bytes.
pub const LOG_START_HEADER: &str = "x-weft-log-start";
/// Response header: where the log ends as stored now; while the body ends
/// short of it, more pages follow.
pub const LOG_END_HEADER: &str = "x-weft-log-end";

#[utoipa::path(get, path = "/api/runs/{id}/logs/{task}", tag = "logs", params(("id" = String, Path), ("task" = String, Path, description = "step, or step[2]"), ("attempt" = Option<u32>, Query), ("offset" = Option<u64>, Query), ("limit" = Option<u64>, Query, description = "most bytes to answer with: default 1 MiB, at most 8 MiB"), ("tail" = Option<u64>, Query, description = "the log's last this many bytes (at most 8 MiB) instead of a page from offset")), responses((status = 200, content_type = "text/plain", body = String, headers(("x-weft-attempt-finished" = String, description = "true once the attempt has ended"), ("x-weft-log-start" = u64, description = "the byte of the log the body begins at"), ("x-weft-log-end" = u64, description = "where the log ends as stored now: more pages follow while the body ends short of it")))), security(("bearer" = [])))]
pub(super) async fn logs(
    State(api): State<ApiState>,
    caller: Caller,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
    let task_id = task_param(&task)?;
    let (_, state) = super::load_run(&api, &id).await?;
    let crate::app::PickedAttempt {
        attempt: key,
        finished,
    } = crate::app::pick_attempt(&state, &task_id, q.attempt)?;
    let limit = q.limit.unwrap_or(LOG_PAGE_BYTES).clamp(1, MAX_PAGE_BYTES);
    let slice = match q.tail {
        Some(tail) => {
            let store: &dyn weft_core::ports::StepLogs = api.store.as_ref();
            crate::app::log_tail(store, &key, tail.clamp(1, MAX_PAGE_BYTES)).await?
        }
        None => {
            api.store
                .read_log_from(&key, q.offset.unwrap_or(0), limit)
                .await?
        }
    };
    let finished = HeaderValue::from_static(if finished { "true" } else { "false" });
    let text = HeaderValue::from_static("text/plain; charset=utf-8");
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, text),
            (HeaderName::from_static(FINISHED_HEADER), finished),
            (
                HeaderName::from_static(LOG_START_HEADER),
                slice.start.into(),
            ),
            (
                HeaderName::from_static(LOG_END_HEADER),
                slice.log_end.into(),
            ),
        ],
        slice.bytes,
    ))
}

/// Sends new log bytes as they come (the store is read every 250 ms) until
/// the attempt has finished and its log is drained. The run's state, which
/// says which attempt and whether it is over, is read again only when a
/// change of this run concerns the task, or every 2 s for runs driven by
/// another server.
#[utoipa::path(get, path = "/api/runs/{id}/logs/{task}/stream", tag = "logs", params(("id" = String, Path), ("task" = String, Path), ("attempt" = Option<u32>, Query)), responses((status = 200, content_type = "text/event-stream", description = "`log` events, then `end`")), security(("bearer" = [])))]
pub(super) async fn log_stream(
    State(api): State<ApiState>,
    caller: Caller,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Viewer)?;
    let task_id = task_param(&task)?;
    let id = crate::app::resolve_run(api.store.as_ref(), &id).await?;
    let start = Tail {
        changes: api.changes.subscribe(),
        api,
        id,
        task: task_id,
        asked: q.attempt,
        offset: q.offset.unwrap_or(0),
        known: None,
        done: false,
    };
    let stream = futures_util::stream::unfold(start, |mut tail| async move {
        if tail.done {
            return None;
        }
        loop {
            let Some((attempt, finished)) = tail.attempt().await else {
                tail.done = true;
                return Some((
                    Ok::<_, std::convert::Infallible>(
                        Event::default().event("end").data("run gone"),
                    ),
                    tail,
                ));
            };
            if attempt > 0 {
                let key = AttemptId {
                    run_id: tail.id.clone(),
                    task: tail.task.clone(),
                    attempt,
                };
                let log = tail
                    .api
                    .store
                    .read_log_from(&key, tail.offset, LOG_PAGE_BYTES)
                    .await
                    .unwrap_or_default();
                if !log.bytes.is_empty() {
                    tail.offset = log.end();
                    let text = String::from_utf8_lossy(&log.bytes).to_string();
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
            tokio::time::sleep(LOG_POLL).await;
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// How often a followed log is read from the store.
const LOG_POLL: Duration = Duration::from_millis(250);
/// How long the run's state is trusted without a change seen for it.
const STATE_TRUSTED: Duration = Duration::from_secs(2);

/// One followed log.
struct Tail {
    api: ApiState,
    changes: broadcast::Receiver<Arc<Batch>>,
    id: String,
    task: TaskId,
    asked: Option<u32>,
    offset: u64,
    /// The attempt and whether it is over, and when that was read.
    known: Option<((u32, bool), Instant)>,
    done: bool,
}

impl Tail {
    /// The attempt to follow and whether it has finished (`(0, false)`
    /// before it starts); `None` once the run is gone.
    async fn attempt(&mut self) -> Option<(u32, bool)> {
        let mut stale = self
            .known
            .is_none_or(|(_, at)| at.elapsed() >= STATE_TRUSTED);
        loop {
            match self.changes.try_recv() {
                Ok(batch) => {
                    stale |= batch.changes().any(|change| {
                        change.run_id == self.id
                            && (change.finished
                                || change.event.task().is_none_or(|t| *t == self.task))
                    });
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => stale = true,
                Err(_) => break,
            }
        }
        if let (Some((known, _)), false) = (self.known, stale) {
            return Some(known);
        }
        let (_, state) =
            weft_orchestrator::load_run_with(self.api.store.as_ref(), &self.id, &self.api.reads)
                .await
                .ok()
                .flatten()?;
        // Not started yet: nothing to send until it is, or the run ends.
        let known = attempt_state(&state, &self.task, self.asked)
            .unwrap_or((0, state.status.is_terminal()));
        self.known = Some((known, Instant::now()));
        Some(known)
    }
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
    crate::app::pick_attempt(state, task, asked)
        .ok()
        .map(|p| (p.attempt.attempt, p.finished))
}
