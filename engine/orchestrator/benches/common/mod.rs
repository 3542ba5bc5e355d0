//! What both benchmarks share: workflow shapes, a no-op worker, one driven run.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use weft_core::ports::{Clock, JobQueue, Report, ReportKind, RunStore};
use weft_core::run::Outcome;
use weft_orchestrator::{NewRun, Options, Service, SystemClock};

/// `n` steps in a chain, each with `action` (empty for join steps).
pub fn chain(n: usize, action: &str) -> String {
    let mut s = String::from("[workflow]\nname = 'chain'\n");
    for i in 0..n {
        let needs = if i == 0 {
            String::new()
        } else {
            format!("needs = ['s{}']\n", i - 1)
        };
        writeln!(s, "[steps.s{i}]\n{needs}{action}").unwrap();
    }
    s
}

/// Acks every job of pool `default` with an immediate success, up to
/// `slots` at once; spawns no process, so it measures the engine alone.
pub fn noop_worker(queue: Arc<dyn JobQueue>, slots: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let permits = Arc::new(Semaphore::new(slots));
        loop {
            let permit = permits.clone().acquire_owned().await.unwrap();
            let Ok(d) = queue.take("default").await else {
                return;
            };
            let queue = queue.clone();
            tokio::spawn(async move {
                let job = d.job().clone();
                let outcome = Outcome::Succeeded {
                    outputs: serde_json::json!({}),
                    artifacts: Default::default(),
                };
                let report = Report {
                    run_id: job.run_id,
                    task: job.task,
                    attempt: job.attempt,
                    worker: "bench".into(),
                    at: SystemClock.now(),
                    execution: 1,
                    earlier: Vec::new(),
                    kind: ReportKind::Finished {
                        outcome,
                        hooks: Vec::new(),
                        unreported_start_ms: None,
                    },
                };
                queue.report(None, &report).await.unwrap();
                d.ack().await.unwrap();
                drop(permit);
            });
        }
    })
}

/// Submits `source` and waits for it to succeed; returns the time and the
/// number of tasks. `worker` (if any) is a queue handle for a no-op worker.
pub async fn drive(
    source: &str,
    queue: Arc<dyn JobQueue>,
    store: Arc<dyn RunStore>,
    worker: Option<(Arc<dyn JobQueue>, usize)>,
    options: Options,
    caching: Option<weft_orchestrator::StepCaching>,
) -> (Duration, usize) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut service = Service::new(
        queue,
        store,
        clock,
        Arc::new(|_: &str, _: &weft_core::run::TaskId, _: u32| {}),
        options,
    );
    if let Some(caching) = caching {
        service = service.with_step_cache(caching);
    }
    let router = service.spawn_router();
    let worker = worker.map(|(q, slots)| noop_worker(q, slots));
    let workflow = weft_core::spec::load(source).unwrap();
    let steps = workflow.steps.len();
    let params = workflow.param_defaults();
    let run = NewRun::plain(workflow, source.into(), "bench.toml".into(), params);
    let start = Instant::now();
    let (_, handle) = service
        .submit(
            run,
            Box::new(|_: &weft_core::run::RunState, _: &weft_core::run::Event| {}),
        )
        .await
        .unwrap();
    let state = handle.await.unwrap().unwrap();
    let took = start.elapsed();
    router.abort();
    if let Some(w) = worker {
        w.abort();
    }
    assert_eq!(state.status, weft_core::run::RunStatus::Succeeded);
    (
        took,
        state
            .steps
            .iter()
            .map(|s| s.tasks.len())
            .sum::<usize>()
            .max(steps),
    )
}
