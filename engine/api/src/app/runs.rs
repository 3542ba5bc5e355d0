//! Runs: finding one by its id or a unique prefix of it, the filters of a
//! listing, and the view of one run.

use axum::http::StatusCode;
use weft_core::ports::{RunIndex, RunQuery, RunRecord, WorkerInfo};
use weft_core::run::{RunState, RunStatus};

use super::{queued_steps, waiting_reason};
use crate::views::RunView;
use crate::Error;

/// The most runs one listing returns.
const MAX_LISTED: usize = 1000;

/// The id of run `id_or_prefix`, or of the one run whose id starts with
/// it: the exact id is tried first, so only a shortened id costs a query,
/// and the store finds a prefix however old the run.
pub async fn resolve_run(store: &dyn RunIndex, id_or_prefix: &str) -> Result<String, Error> {
    if id_or_prefix.is_empty() {
        return Err(Error::new(StatusCode::BAD_REQUEST, "name a run"));
    }
    if store.get_run(id_or_prefix).await?.is_some() {
        return Ok(id_or_prefix.to_string());
    }
    let query = RunQuery {
        id_prefix: Some(id_or_prefix.to_string()),
        // Two are enough to tell that a prefix is not unique.
        limit: 2,
        ..RunQuery::default()
    };
    let found = store.query_runs(&query).await?;
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(Error::not_found(format!(
            "no run `{id_or_prefix}`; `weft runs` lists them"
        ))),
        _ => Err(Error::new(
            StatusCode::BAD_REQUEST,
            format!("`{id_or_prefix}` matches more than one run; give more of the id"),
        )),
    }
}

/// A listing's filters, as a person or a URL writes them.
#[derive(Debug, Clone, Default)]
pub struct RunFilter<'a> {
    pub status: Option<&'a str>,
    pub workflow: Option<&'a str>,
    /// `<created_at>:<id>` of the last run of the previous page.
    pub before: Option<&'a str>,
    pub prefix: Option<&'a str>,
    /// Default 50, at most [`MAX_LISTED`].
    pub limit: Option<usize>,
}

/// The store query a listing's filters mean; a bad filter is named.
pub fn run_query(filter: &RunFilter) -> Result<RunQuery, Error> {
    let bad = |what: String| Error::new(StatusCode::BAD_REQUEST, what);
    let status = filter
        .status
        .map(|s| RunStatus::parse(s).ok_or_else(|| bad(format!("`{s}` is not a run status"))))
        .transpose()?;
    let before = filter
        .before
        .map(|b| {
            b.split_once(':')
                .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
                .ok_or_else(|| bad(format!("`{b}` is not a page cursor")))
        })
        .transpose()?;
    Ok(RunQuery {
        status,
        workflow: filter.workflow.map(str::to_string),
        before,
        id_prefix: filter.prefix.filter(|p| !p.is_empty()).map(str::to_string),
        limit: filter.limit.unwrap_or(50).clamp(1, MAX_LISTED),
    })
}

/// The view of one run; a queued step says why it waits, from `workers`
/// (the live workers, read only when [`needs_workers`] says so).
pub fn run_view(record: &RunRecord, state: &RunState, workers: &[WorkerInfo]) -> RunView {
    let mut view = RunView::new(record, state);
    for i in queued_steps(state) {
        let step = &mut view.steps[i];
        if step.reason.is_none() {
            step.reason = waiting_reason(&state.plan.workflow.steps[i], workers);
        }
    }
    view
}

/// Whether [`run_view`] needs the live workers: a step of the run waits in a queue.
pub fn needs_workers(state: &RunState) -> bool {
    !queued_steps(state).is_empty()
}
