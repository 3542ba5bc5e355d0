//! A step's start is recorded before it runs: the worker prepares the step
//! while the broker confirms its `Started` report, and starts nothing until
//! it has. Here the confirm is slow and the first one fails: the step runs
//! once, after its start was confirmed, and its job, given back when the
//! start could not be recorded, runs on the next delivery.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use weft_core::ports::{Clock, Delivery, JobQueue, Report, ReportDelivery, ReportKind, RunStore};
use weft_core::run::{Job, RunStatus};
use weft_core::Error;
use weft_orchestrator::SystemClock;
use weft_queue_local::LocalJobQueue;
use weft_testkit::MemoryRunStore;
use weft_worker::Worker;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The local queue, with each `Started` report confirmed only after
/// `delay`, and the first `failures` of them refused after it.
struct SlowStarts {
    inner: LocalJobQueue,
    delay: Duration,
    failures: AtomicUsize,
    /// When each start was confirmed, ns since the epoch.
    confirmed: Mutex<Vec<u128>>,
}

#[async_trait]
impl JobQueue for SlowStarts {
    async fn publish(&self, job: &Job) -> Result<(), Error> {
        self.inner.publish(job).await
    }
    async fn wait_for_job(&self, pool: &str) -> Result<(), Error> {
        self.inner.wait_for_job(pool).await
    }
    async fn try_take(&self, pool: &str) -> Result<Option<Box<dyn Delivery>>, Error> {
        self.inner.try_take(pool).await
    }
    async fn report(&self, to: Option<&str>, report: &Report) -> Result<(), Error> {
        if matches!(report.kind, ReportKind::Started) {
            tokio::time::sleep(self.delay).await;
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err(Error::Closed("the broker is down".into()));
            }
            self.inner.report(to, report).await?;
            self.confirmed.lock().unwrap().push(now_ns());
            return Ok(());
        }
        self.inner.report(to, report).await
    }
    async fn next_report(&self) -> Result<Box<dyn ReportDelivery>, Error> {
        self.inner.next_report().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_starts_only_once_its_start_is_confirmed_and_a_refused_start_runs_it_later() {
    let work = tempfile::tempdir().unwrap();
    let marks = work.path().join("marks");
    let store: Arc<dyn RunStore> = Arc::new(MemoryRunStore::new());
    let slow = Arc::new(SlowStarts {
        inner: LocalJobQueue::new(),
        delay: Duration::from_millis(300),
        failures: AtomicUsize::new(1),
        confirmed: Mutex::default(),
    });
    let queue: Arc<dyn JobQueue> = slow.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = weft_worker::Options {
        name: "w".into(),
        concurrency: 1,
        work_dir: work.path().join("work"),
        // A short claim, so the job given back is taken again soon.
        heartbeat_ms: 100,
        // The step writes its marks into this test's directory.
        run_as: weft_worker::RunAs::Worker,
        ..Default::default()
    };
    let worker = Worker::new(queue.clone(), store.clone(), clock.clone(), options);
    let source = format!(
        "[workflow]\nname = \"gate\"\n[steps.mark]\nrun = 'date +%s%N >> {}'\n",
        marks.display()
    );
    let state = crate::harness::run_to_end(
        worker,
        (queue, store, clock),
        (&source, "gate.toml"),
        Default::default(),
        Duration::from_secs(60),
    )
    .await;

    assert_eq!(
        state.status,
        RunStatus::Succeeded,
        "{:?}",
        state.failure_summary()
    );
    let ran: Vec<u128> = std::fs::read_to_string(&marks)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(ran.len(), 1, "the step ran once: {ran:?}");
    let confirmed = slow.confirmed.lock().unwrap().clone();
    assert_eq!(confirmed.len(), 1, "one start recorded: {confirmed:?}");
    assert!(
        ran[0] >= confirmed[0],
        "the step began {} µs before its start was confirmed",
        (confirmed[0] - ran[0]) / 1000
    );
    assert_eq!(
        slow.failures.load(Ordering::SeqCst),
        0,
        "the refused start was tried"
    );
    let attempt = &state.steps[0].tasks[0].attempts[0];
    assert_eq!(
        attempt.executions.len(),
        1,
        "the execution whose start was refused never ran, and is not shown: {attempt:?}"
    );
}
