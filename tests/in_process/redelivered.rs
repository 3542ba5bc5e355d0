//! A job delivered twice to one worker while it runs: the copy whose claim
//! is held runs; the other prepared its scratch directory aside while its
//! claim was asked, starts nothing, and leaves nothing behind, without
//! touching the directory of the copy that runs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use weft_core::ports::{Clock, Delivery, JobQueue, Report, ReportDelivery, RunStore};
use weft_core::run::Job;
use weft_core::Error;
use weft_orchestrator::SystemClock;
use weft_queue_local::LocalJobQueue;
use weft_testkit::MemoryRunStore;
use weft_worker::Worker;

/// The local queue, delivering every job twice (a broker's redelivery).
struct Twice(LocalJobQueue);

#[async_trait]
impl JobQueue for Twice {
    async fn publish(&self, job: &Job) -> Result<(), Error> {
        self.0.publish(job).await?;
        self.0.publish(job).await
    }
    async fn wait_for_job(&self, pool: &str) -> Result<(), Error> {
        self.0.wait_for_job(pool).await
    }
    async fn try_take(&self, pool: &str) -> Result<Option<Box<dyn Delivery>>, Error> {
        self.0.try_take(pool).await
    }
    async fn report(&self, to: Option<&str>, report: &Report) -> Result<(), Error> {
        self.0.report(to, report).await
    }
    async fn next_report(&self) -> Result<Box<dyn ReportDelivery>, Error> {
        self.0.next_report().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_delivered_twice_runs_once_and_its_other_copy_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    // Runs a while in its directory, and fails if anything there is taken
    // away meanwhile.
    let source = format!(
        "[workflow]\nname = \"twice\"\n[steps.one]\nrun = 'echo ran >> {}; touch mine; sleep 1; test -e mine && test -e inputs.json'\n",
        marks.display()
    );
    let store: Arc<dyn RunStore> = Arc::new(MemoryRunStore::new());
    let queue: Arc<dyn JobQueue> = Arc::new(Twice(LocalJobQueue::new()));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let work = dir.path().join("work");
    let options = weft_worker::Options {
        name: "w".into(),
        concurrency: 2,
        work_dir: work.clone(),
        // The second copy asks its claim again every 300 ms.
        heartbeat_ms: 300,
        run_as: weft_worker::RunAs::Worker,
        ..Default::default()
    };
    let worker = Worker::new(queue.clone(), store.clone(), clock.clone(), options);
    let state = crate::harness::run_to_success(
        worker,
        (queue, store, clock),
        (&source, "twice.toml"),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap(),
        "ran\n",
        "the step ran once"
    );
    // The other copy settles once the first has finished; give it a moment.
    let run_dir = work.join(&state.run_id);
    let mut left = Vec::new();
    for _ in 0..100 {
        left = std::fs::read_dir(&run_dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|name| name.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(left.is_empty(), "nothing left aside: {left:?}");
}
