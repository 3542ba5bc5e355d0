//! `[workflow] on-finish`: when a run this server drives ends, start the
//! saved workflows it names (each whose `when` holds), with the run's id,
//! status and workflow as params where they declare `parent_run`,
//! `parent_status`, `parent_workflow`. A follow-up's run id comes from the
//! finished run and the entry, so it starts once; chains of follow-ups
//! stop at [`MAX_DEPTH`] (a workflow that starts itself, or A↔B).

use std::collections::BTreeMap;

use tokio::sync::broadcast::error::RecvError;
use weft_core::ports::{Role, RunRecord};
use weft_core::run::RunStatus;
use weft_core::schedule::follow_up_run_id;
use weft_core::spec::on_finish::FOLLOW_UP_PARAMS;

use crate::auth::Caller;
use crate::routes::ApiState;

/// Longest chain of runs started by runs' ends.
pub const MAX_DEPTH: usize = 8;
const SUBMITTER: &str = "on-finish of ";

/// Watches the runs this server drives and starts their follow-ups.
pub fn spawn_follow_ups(api: ApiState) -> tokio::task::JoinHandle<()> {
    let mut changes = api.service.watch();
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(change) if change.finished => {
                    let api = api.clone();
                    tokio::spawn(
                        async move { follow_up(&api, &change.run_id, change.status).await },
                    );
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => tracing::warn!(
                    "on-finish: {missed} run changes went by unread (a flood of changes); \
                     follow-ups of runs that ended among them were not started"
                ),
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// How many runs up the chain of follow-ups `record` is (0: started
/// another way), at most `MAX_DEPTH + 1`.
async fn depth(api: &ApiState, record: &RunRecord) -> usize {
    let mut depth = 0;
    let mut by = record.submitted_by.clone();
    while let Some(parent) = by.as_deref().and_then(|b| b.strip_prefix(SUBMITTER)) {
        depth += 1;
        if depth > MAX_DEPTH {
            break;
        }
        by = match api.store.get_run(parent).await {
            Ok(Some(r)) => r.submitted_by,
            _ => None,
        };
    }
    depth
}

/// `status`: how the run ended, as the change that ended it says (the
/// driver records the end in the run's record a moment later; nothing here
/// needs the record's copy of it).
async fn follow_up(api: &ApiState, run_id: &str, status: RunStatus) {
    let Ok(Some(record)) = api.store.get_run(run_id).await else {
        return;
    };
    // Most runs have no follow-up: a text without the key has none, and is
    // not parsed. (Not through the read cache: it would keep the plan of
    // every finished run, however large, in memory.)
    if !record.source.contains("on-finish") {
        return;
    }
    let Ok(workflow) = weft_core::spec::load(&record.source) else {
        return;
    };
    if workflow.on_finish.is_empty() {
        return;
    }
    let status = status.as_str();
    if depth(api, &record).await >= MAX_DEPTH {
        tracing::warn!(run = %run_id, "on-finish: not started: {MAX_DEPTH} runs in a row were started by the end of the one before");
        return;
    }
    for (index, entry) in workflow.on_finish.iter().enumerate() {
        match entry.applies(run_id, &record.workflow, status) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(run = %run_id, "on-finish `{}`: `when`: {e}", entry.workflow.value);
                continue;
            }
        }
        let target = &entry.workflow.value;
        let id = follow_up_run_id(run_id, index, record.created_at);
        if matches!(api.store.get_run(&id).await, Ok(Some(_))) {
            continue;
        }
        let saved = match api.workflows.workflow(target, None).await {
            Ok(Some(saved)) => saved,
            Ok(None) => {
                tracing::warn!(run = %run_id, "on-finish: no saved workflow {target}");
                continue;
            }
            Err(e) => {
                tracing::warn!(run = %run_id, "on-finish: reading saved workflow {target}: {e}");
                continue;
            }
        };
        let declared = weft_core::spec::load(&saved.source)
            .map(|w| w.params.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
            .unwrap_or_default();
        let values = [run_id, status, record.workflow.as_str()];
        let params: BTreeMap<String, String> = FOLLOW_UP_PARAMS
            .iter()
            .zip(values)
            .filter(|(name, _)| declared.iter().any(|d| d == *name))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let caller = Caller {
            role: Role::Operator,
            token_id: None,
            name: Some(format!("{SUBMITTER}{run_id}")),
        };
        match crate::routes::start_saved(
            api,
            &saved,
            params,
            id.clone(),
            Default::default(),
            &caller,
        )
        .await
        {
            Ok(_) => tracing::info!(run = %run_id, follow_up = %id, "on-finish: started {target}"),
            Err(_) if matches!(api.store.get_run(&id).await, Ok(Some(_))) => {}
            Err(e) => tracing::warn!(run = %run_id, "on-finish: starting {target}: {e}"),
        }
    }
}
