//! An execution's start is recorded by its claim, before its step runs;
//! the `Started` report is for people watching. A step that ends within
//! `START_REPORT_AFTER` sends one report, its end, which dates its start;
//! a longer one reports its start while it runs, and a start report the
//! broker refuses or holds up neither delays nor stops the step.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use weft_core::ports::{Clock, Delivery, JobQueue, Report, ReportDelivery, ReportKind, RunStore};
use weft_core::run::{Job, RunState};
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

/// The local queue, keeping every report sent; with `refuse_starts`, each
/// `Started` report is refused after `delay` (the broker is down); with
/// `slow_ends`, each end is sent that much later (a slow broker).
struct Reports {
    inner: LocalJobQueue,
    refuse_starts: Option<Duration>,
    slow_ends: Option<Duration>,
    sent: Mutex<Vec<Report>>,
    /// When each start report was refused, ns since the epoch.
    refused: Mutex<Vec<u128>>,
}

#[async_trait]
impl JobQueue for Reports {
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
        if let (ReportKind::Started, Some(delay)) = (&report.kind, self.refuse_starts) {
            tokio::time::sleep(delay).await;
            self.refused.lock().unwrap().push(now_ns());
            return Err(Error::Closed("the broker is down".into()));
        }
        if let (ReportKind::Finished { .. }, Some(delay)) = (&report.kind, self.slow_ends) {
            tokio::time::sleep(delay).await;
        }
        self.sent.lock().unwrap().push(report.clone());
        self.inner.report(to, report).await
    }
    async fn next_report(&self) -> Result<Box<dyn ReportDelivery>, Error> {
        self.inner.next_report().await
    }
}

/// Runs a one-step workflow whose step is `command` to its end.
async fn run_one(queue: Arc<Reports>, work: &std::path::Path, command: &str) -> RunState {
    let source = format!("[workflow]\nname = \"start\"\n[steps.one]\nrun = '{command}'\n");
    run_source(queue, work, &source).await
}

/// Runs the workflow `source` to its end on a worker with one slot.
async fn run_source(queue: Arc<Reports>, work: &std::path::Path, source: &str) -> RunState {
    run_on_one_slot(queue, work, source, false).await
}

/// As [`run_source`], the worker preparing jobs ahead of its slot or not.
async fn run_on_one_slot(
    queue: Arc<Reports>,
    work: &std::path::Path,
    source: &str,
    prepare_ahead: bool,
) -> RunState {
    let store: Arc<dyn RunStore> = Arc::new(MemoryRunStore::new());
    let queue: Arc<dyn JobQueue> = queue;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = weft_worker::Options {
        name: "w".into(),
        concurrency: 1,
        work_dir: work.join("work"),
        // The step writes its marks into this test's directory.
        run_as: weft_worker::RunAs::Worker,
        prepare_ahead,
        ..Default::default()
    };
    let worker = Worker::new(queue.clone(), store.clone(), clock.clone(), options);
    crate::harness::run_to_success(
        worker,
        (queue, store, clock),
        (source, "start.toml"),
        Duration::from_secs(60),
    )
    .await
}

/// A worker `w` of one slot that prepares jobs ahead of it, its steps
/// running as the worker, its work directory under `work`.
fn one_slot_preparing_ahead(work: &std::path::Path) -> weft_worker::Options {
    weft_worker::Options {
        name: "w".into(),
        concurrency: 1,
        work_dir: work.join("work"),
        run_as: weft_worker::RunAs::Worker,
        prepare_ahead: true,
        ..Default::default()
    }
}

/// Tells the worker to stop and waits (at most 10 s) until it has.
async fn stop_worker(
    stop: &tokio::sync::watch::Sender<bool>,
    worker: tokio::task::JoinHandle<Result<(), weft_worker::Error>>,
) {
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stopped")
        .unwrap()
        .unwrap();
}

/// The times (ns since the epoch) the steps wrote into `marks`, one a line.
fn marks_in(marks: &std::path::Path) -> Vec<u128> {
    std::fs::read_to_string(marks)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn quiet_queue(refuse_starts: Option<Duration>) -> Arc<Reports> {
    Arc::new(Reports {
        inner: LocalJobQueue::new(),
        refuse_starts,
        slow_ends: None,
        sent: Mutex::default(),
        refused: Mutex::default(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_step_sends_only_its_end_which_dates_its_start() {
    let work = tempfile::tempdir().unwrap();
    let queue = quiet_queue(None);
    let state = run_one(queue.clone(), work.path(), "true").await;

    let sent = queue.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one report, its end: {sent:?}");
    let ReportKind::Finished {
        unreported_start_ms,
        ..
    } = &sent[0].kind
    else {
        panic!("an end: {sent:?}")
    };
    assert!(
        unreported_start_ms.is_some(),
        "it says its start was not reported"
    );
    let attempt = &state.steps[0].tasks[0].attempts[0];
    assert_eq!(attempt.executions.len(), 1, "{attempt:?}");
    let execution = &attempt.executions[0];
    let (started, finished) = (
        execution.started_at.unwrap(),
        execution.finished_at.unwrap(),
    );
    assert!(
        started <= finished,
        "started {started}, finished {finished}"
    );
    assert!(
        attempt.started_at.is_some(),
        "the attempt shows when it began"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_step_reports_its_start_while_it_runs() {
    let work = tempfile::tempdir().unwrap();
    let queue = quiet_queue(None);
    let state = run_one(queue.clone(), work.path(), "sleep 0.5").await;

    let kinds: Vec<_> = queue
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|r| match &r.kind {
            ReportKind::Started => "started",
            ReportKind::Finished {
                unreported_start_ms: None,
                ..
            } => "finished",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["started", "finished"]);
    assert_eq!(
        state.steps[0].tasks[0].attempts[0].executions.len(),
        1,
        "one execution, started and finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_report_the_broker_refuses_neither_holds_up_nor_stops_the_step() {
    let work = tempfile::tempdir().unwrap();
    let marks = work.path().join("marks");
    // Refused 3 s after it is sent: the step (which begins at once) has
    // long marked by then.
    let queue = quiet_queue(Some(Duration::from_secs(3)));
    let state = run_one(
        queue.clone(),
        work.path(),
        &format!("sleep 0.2; date +%s%N >> {}", marks.display()),
    )
    .await;

    let ran = marks_in(&marks);
    assert_eq!(ran.len(), 1, "the step ran once: {ran:?}");
    let refused = queue.refused.lock().unwrap().clone();
    assert_eq!(refused.len(), 1, "its start report was tried, and refused");
    assert!(
        ran[0] < refused[0],
        "the step did not wait for its start report"
    );
    let attempt = &state.steps[0].tasks[0].attempts[0];
    assert_eq!(attempt.executions.len(), 1, "{attempt:?}");
    assert!(
        attempt.executions[0].started_at.is_some(),
        "its end told of its start"
    );
}

/// A step frees its slot when it ends, not once its end is recorded and
/// reported: on one slot, with each end taking a second to send, the
/// second step starts at once after the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_frees_its_slot_when_it_ends_not_once_its_end_is_sent() {
    let work = tempfile::tempdir().unwrap();
    let marks = work.path().join("marks");
    let queue = Arc::new(Reports {
        slow_ends: Some(Duration::from_secs(1)),
        ..Arc::into_inner(quiet_queue(None)).unwrap()
    });
    let mark = format!("date +%s%N >> {}", marks.display());
    let source = format!(
        "[workflow]\nname = \"two\"\n[steps.a]\nrun = '{mark}'\n[steps.b]\nrun = '{mark}'\n"
    );
    let state = run_source(queue.clone(), work.path(), &source).await;

    let ran = marks_in(&marks);
    assert_eq!(ran.len(), 2, "both ran: {ran:?}");
    let apart_ms = ran[0].abs_diff(ran[1]) / 1_000_000;
    assert!(
        apart_ms < 700,
        "the second started {apart_ms} ms after the first, waiting for its end to be sent"
    );
    assert_eq!(queue.sent.lock().unwrap().len(), 2, "both ends were sent");
    assert!(state.steps.iter().all(|s| s.tasks[0].attempts.len() == 1));
}

/// Prepared ahead of its slot (as `weft run`'s worker is), a job waits,
/// claimed, while the one slot is busy: it starts only once the slot is
/// free, and its execution is dated from then, not from its claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_prepared_ahead_starts_in_a_free_slot_and_is_dated_from_it() {
    let work = tempfile::tempdir().unwrap();
    let marks = work.path().join("marks");
    let m = marks.display();
    let source = format!(
        "[workflow]\nname = \"ahead\"\n[steps.s]\nfor-each = [1, 2, 3]\n\
         run = 'echo start >> {m}; sleep 0.3; echo end >> {m}'\n"
    );
    let state = run_on_one_slot(quiet_queue(None), work.path(), &source, true).await;

    let ran = std::fs::read_to_string(&marks).unwrap();
    assert_eq!(
        ran.lines().collect::<Vec<_>>(),
        ["start", "end", "start", "end", "start", "end"],
        "one at a time"
    );
    let mut executions: Vec<(u64, u64)> = state.steps[0]
        .tasks
        .iter()
        .flat_map(|t| &t.attempts)
        .flat_map(|a| &a.executions)
        .map(|e| (e.started_at.unwrap(), e.finished_at.unwrap()))
        .collect();
    executions.sort();
    assert_eq!(executions.len(), 3, "{executions:?}");
    for pair in executions.windows(2) {
        let ((_, finished), (next, _)) = (pair[0], pair[1]);
        // Its claim was taken while the one before ran, 300 ms earlier.
        assert!(
            next + 100 >= finished,
            "started {next}, while the step before ran until {finished}: {executions:?}"
        );
    }
}

/// A worker that stops does not start a job it took ahead of its slot:
/// the step in the slot ends, the other is handed back unrun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_starts_no_job_it_took_ahead_of_its_slot() {
    let work = tempfile::tempdir().unwrap();
    let marks = work.path().join("marks");
    let m = marks.display();
    let source = format!(
        "[workflow]\nname = \"stop\"\n[steps.s]\nfor-each = [1, 2]\n\
         run = 'echo start >> {m}; sleep 0.5; echo end >> {m}'\n"
    );
    let store: Arc<dyn RunStore> = Arc::new(MemoryRunStore::new());
    let queue: Arc<dyn JobQueue> = Arc::new(LocalJobQueue::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = one_slot_preparing_ahead(work.path());
    let worker = Worker::new(queue.clone(), store.clone(), clock.clone(), options);
    let service = weft_orchestrator::Service::new(
        queue.clone(),
        store,
        clock,
        Arc::new(|_: &str, _: &weft_core::run::TaskId, _: u32| {}),
        Default::default(),
    );
    let router = service.spawn_router();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(worker.run(stopped));
    let new = crate::harness::new_run((&source, "stop.toml"), Default::default());
    let _run = service
        .submit(new, Box::new(|_: &RunState, _: &weft_core::run::Event| {}))
        .await
        .unwrap();
    // The first runs, the second's directory is ready aside.
    let prepared = || weft_testkit::prepared_aside(&work.path().join("work"), "s[");
    for _ in 0..200 {
        if marks.exists() && prepared() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        marks.exists() && prepared(),
        "one runs, one is prepared ahead"
    );
    stop_worker(&stop, worker).await;
    router.abort();
    let ran = std::fs::read_to_string(&marks).unwrap();
    assert_eq!(ran.lines().collect::<Vec<_>>(), ["start", "end"], "{ran}");
    assert!(!prepared(), "what it prepared is undone");
    assert!(
        queue.try_take("default").await.unwrap().is_some(),
        "the job it took ahead is back in its queue"
    );
}

/// A job taken again after its worker died holds its claim while it waits
/// for a slot, and is aborted there (its attempt timed out, the server
/// aborting the claim): its own execution never ran, but the one before
/// it, whose worker died before telling anyone, may have. The copy tells
/// of that execution before it is acked (the simulation's chaos seed
/// 45029 found it acked unsaid, and the run hid an execution).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_aborted_while_it_waits_for_its_slot_tells_of_the_executions_before_it() {
    use weft_core::ports::{AttemptClaims, AttemptId, Claim};
    use weft_core::spec::{Command, StepAction};

    let work = tempfile::tempdir().unwrap();
    let marks = work.path().join("marks");
    let store = Arc::new(MemoryRunStore::new());
    let queue = quiet_queue(None);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let shell = |step: &str, command: String| {
        let mut job = weft_testkit::job("r1", step, "default");
        job.action = StepAction::Run {
            command: Command::Shell(command),
        };
        job
    };
    let busy = shell("busy", format!("echo busy >> {}; sleep 3", marks.display()));
    let waits = shell("waits", format!("echo waits >> {}", marks.display()));
    let key = AttemptId::of(&waits);

    // An earlier execution of `waits`, on a worker that died: its claim
    // lapsed unrenewed.
    let Claim::Held { token: gone, .. } = store
        .claim(&key, "gone@1#1", clock.now(), 50, None)
        .await
        .unwrap()
    else {
        panic!("the first claim is held");
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    let options = weft_worker::Options {
        heartbeat_ms: 100,
        ..one_slot_preparing_ahead(work.path())
    };
    let jobs: Arc<dyn JobQueue> = queue.clone();
    let worker = Worker::new(jobs.clone(), store.clone(), clock.clone(), options);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(worker.run(stopped));
    jobs.publish(&busy).await.unwrap();
    for _ in 0..300 {
        if marks.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(marks.exists(), "the first job runs in the one slot");
    jobs.publish(&waits).await.unwrap();
    let mut claimed = Vec::new();
    for _ in 0..300 {
        claimed = store.claim_executions(&key).await.unwrap();
        if claimed.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        claimed.len(),
        2,
        "the second job claimed, ahead of its slot"
    );

    // Its attempt times out: the server aborts the claim.
    store.abort_claim(&key).await.unwrap();
    let told = || {
        queue
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.task == waits.task)
            .map(|r| (r.execution, r.worker.clone(), r.kind.clone()))
            .collect::<Vec<_>>()
    };
    for _ in 0..300 {
        if !told().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        told(),
        [(gone, "gone".to_string(), ReportKind::Started)],
        "the execution before it is told of, and only that one"
    );
    stop_worker(&stop, worker).await;
    let ran = std::fs::read_to_string(&marks).unwrap();
    assert_eq!(ran.lines().collect::<Vec<_>>(), ["busy"], "{ran}");
    assert!(
        jobs.try_take("default").await.unwrap().is_none(),
        "the aborted job was acked, not given back"
    );
}
