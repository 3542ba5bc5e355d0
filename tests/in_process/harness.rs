//! One run to its end in this process: an orchestrator over the worker's
//! own queue and store, the run submitted, the worker stopped after.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json};
use tokio::sync::watch;
use weft_core::ports::{Clock, JobQueue, RunStore};
use weft_core::run::RunState;
use weft_orchestrator::{NewRun, Service};
use weft_worker::Worker;

/// Runs `source` (file name `file`, `params` over its defaults) on
/// `worker`, which takes its jobs from `queue` and writes to `store`;
/// its final state, within `limit`.
pub async fn run_to_end(
    worker: Worker,
    (queue, store, clock): (Arc<dyn JobQueue>, Arc<dyn RunStore>, Arc<dyn Clock>),
    (source, file): (&str, &str),
    params: Map<String, Json>,
    limit: Duration,
) -> RunState {
    let aborts = worker.aborts();
    let abort = Arc::new(
        move |run: &str, task: &weft_core::run::TaskId, attempt: u32| {
            aborts.abort(run, task, attempt)
        },
    );
    let service = Service::new(queue, store, clock, abort, Default::default());
    let router = service.spawn_router();
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(worker.run(stopped));
    let new = new_run((source, file), params);
    let (_, handle) = service
        .submit(new, Box::new(|_: &RunState, _: &weft_core::run::Event| {}))
        .await
        .unwrap();
    let state = tokio::time::timeout(limit, handle)
        .await
        .expect("the run ended")
        .unwrap()
        .unwrap();
    let _ = stop.send(true);
    let _ = worker.await;
    router.abort();
    state
}

/// A run of `source` (file name `file`), `params` over its defaults, to
/// submit as a person would.
pub fn new_run((source, file): (&str, &str), params: Map<String, Json>) -> NewRun {
    let workflow = weft_core::spec::load(source).unwrap();
    let mut values = workflow.param_defaults();
    values.extend(params);
    NewRun::plain(workflow, source.into(), file.into(), values)
}

/// As [`run_to_end`], with no params, for a run that must succeed.
pub async fn run_to_success(
    worker: Worker,
    parts: (Arc<dyn JobQueue>, Arc<dyn RunStore>, Arc<dyn Clock>),
    source: (&str, &str),
    limit: Duration,
) -> RunState {
    let state = run_to_end(worker, parts, source, Default::default(), limit).await;
    assert_eq!(
        state.status,
        weft_core::run::RunStatus::Succeeded,
        "{:?}",
        state.failure_summary()
    );
    state
}
