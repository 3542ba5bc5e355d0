//! The `JobQueue` contract.

use std::time::Duration;

use weft_core::ports::{JobQueue, Report, ReportKind};
use weft_core::run::{Outcome, TaskId};

use crate::{job, unique};

const WAIT: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(300);

async fn take(q: &dyn JobQueue, pool: &str) -> Box<dyn weft_core::ports::Delivery> {
    tokio::time::timeout(WAIT, q.take(pool))
        .await
        .expect("a job within 5s")
        .expect("take")
}

pub async fn published_job_is_delivered_intact(q: &dyn JobQueue) {
    let pool = unique("pool");
    let j = job("r1", "a", &pool);
    q.publish(&j).await.unwrap();
    let d = take(q, &pool).await;
    assert_eq!(d.job(), &j);
    d.ack().await.unwrap();
}

pub async fn jobs_of_a_pool_come_in_publish_order(q: &dyn JobQueue) {
    let pool = unique("pool");
    for s in ["a", "b", "c"] {
        q.publish(&job("r1", s, &pool)).await.unwrap();
    }
    for s in ["a", "b", "c"] {
        let d = take(q, &pool).await;
        assert_eq!(d.job().task.step, s);
        d.ack().await.unwrap();
    }
}

/// A job of a run of `priority`.
fn ranked(step: &str, pool: &str, priority: i32) -> weft_core::run::Job {
    let mut j = job("r1", step, pool);
    j.priority = priority;
    j
}

pub async fn a_higher_band_is_taken_before_an_earlier_lower_one(q: &dyn JobQueue) {
    let pool = unique("pool");
    // Within a band, publish order; the highest band first, however late.
    for (step, priority) in [("low-1", -5), ("normal-1", 0), ("low-2", -1000)] {
        q.publish(&ranked(step, &pool, priority)).await.unwrap();
    }
    q.publish_all(&[ranked("high-1", &pool, 7), ranked("normal-2", &pool, 0)])
        .await
        .unwrap();
    q.publish(&ranked("high-2", &pool, 1000)).await.unwrap();
    // Every job is at the queue before the first take.
    tokio::time::sleep(SHORT).await;
    let mut order = Vec::new();
    for _ in 0..6 {
        let d = take(q, &pool).await;
        order.push(d.job().task.step.clone());
        d.ack().await.unwrap();
    }
    assert_eq!(
        order,
        ["high-1", "high-2", "normal-1", "normal-2", "low-1", "low-2"]
    );
}

pub async fn a_returned_job_keeps_its_band(q: &dyn JobQueue) {
    let pool = unique("pool");
    let high = ranked("high", &pool, 3);
    q.publish(&high).await.unwrap();
    take(q, &pool).await.reject(true).await.unwrap();
    q.publish(&ranked("normal", &pool, 0)).await.unwrap();
    tokio::time::sleep(SHORT).await;
    let d = take(q, &pool).await;
    assert_eq!(d.job(), &high, "the returned high job comes first");
    d.ack().await.unwrap();
    take(q, &pool).await.ack().await.unwrap();
}

pub async fn waiting_for_a_job_ends_when_one_is_published(q: &dyn JobQueue) {
    let pool = unique("pool");
    assert!(
        q.try_take(&pool).await.unwrap().is_none(),
        "an empty pool gave a job"
    );
    assert!(
        tokio::time::timeout(SHORT, q.wait_for_job(&pool))
            .await
            .is_err(),
        "waiting on an empty pool ended"
    );
    let waiting = q.wait_for_job(&pool);
    q.publish(&ranked("late", &pool, -3)).await.unwrap();
    tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the wait ends once a job is published")
        .unwrap();
    let d = tokio::time::timeout(WAIT, q.try_take(&pool))
        .await
        .expect("try_take does not wait")
        .unwrap()
        .expect("the job waited for");
    assert_eq!(d.job().task.step, "late");
    d.ack().await.unwrap();
}

pub async fn pools_are_separate(q: &dyn JobQueue) {
    let (gpu, cpu) = (unique("gpu"), unique("cpu"));
    q.publish(&job("r1", "a", &gpu)).await.unwrap();
    assert!(
        tokio::time::timeout(SHORT, q.take(&cpu)).await.is_err(),
        "a cpu taker got a gpu job"
    );
    take(q, &gpu).await.ack().await.unwrap();
}

pub async fn acked_job_is_not_delivered_again(q: &dyn JobQueue) {
    let pool = unique("pool");
    q.publish(&job("r1", "a", &pool)).await.unwrap();
    take(q, &pool).await.ack().await.unwrap();
    assert!(
        tokio::time::timeout(SHORT, q.take(&pool)).await.is_err(),
        "an acked job came back"
    );
}

pub async fn rejected_job_is_delivered_again_when_requeued(q: &dyn JobQueue) {
    let pool = unique("pool");
    q.publish(&job("r1", "a", &pool)).await.unwrap();
    take(q, &pool).await.reject(true).await.unwrap();
    let d = take(q, &pool).await;
    assert_eq!(d.job().task.step, "a");
    d.reject(false).await.unwrap();
    assert!(
        tokio::time::timeout(SHORT, q.take(&pool)).await.is_err(),
        "a job rejected without requeue came back"
    );
}

pub async fn dropped_delivery_is_delivered_again(q: &dyn JobQueue) {
    let pool = unique("pool");
    q.publish(&job("r1", "a", &pool)).await.unwrap();
    drop(take(q, &pool).await);
    let d = take(q, &pool).await;
    assert_eq!(d.job().task.step, "a");
    d.ack().await.unwrap();
}

pub async fn reports_arrive_in_order(q: &dyn JobQueue) {
    let run = unique("run");
    let mk = |kind| Report {
        run_id: run.clone(),
        task: TaskId::new("a", None),
        attempt: 1,
        worker: "w".into(),
        at: 1,
        execution: 3,
        // Travels whole: what the server records of executions that died.
        earlier: vec![weft_core::ports::ClaimedExecution {
            token: 2,
            worker: "gone".into(),
        }],
        kind,
    };
    let started = mk(ReportKind::Started);
    let finished = mk(ReportKind::Finished {
        outcome: Outcome::Succeeded {
            outputs: serde_json::json!({"x": 1}),
            artifacts: Default::default(),
        },
        hooks: vec![weft_core::run::HookRun {
            phase: "pre".into(),
            plugin: "validate@1.0.0".into(),
            ms: 0.25,
            error: None,
        }],
        unreported_start_ms: Some(3),
    });
    q.report(None, &started).await.unwrap();
    q.report(None, &finished).await.unwrap();
    let next = || async {
        tokio::time::timeout(WAIT, q.next_report())
            .await
            .expect("a report")
            .unwrap()
    };
    let first = next().await;
    assert_eq!(first.report(), &started);
    first.ack().await.unwrap();
    let second = next().await;
    assert_eq!(second.report(), &finished);
    second.ack().await.unwrap();
}

pub async fn unacked_report_is_delivered_again(q: &dyn JobQueue) {
    let report = started(&unique("run"));
    q.report(None, &report).await.unwrap();
    let first = next_report(q, "a report").await;
    assert_eq!(first.report(), &report);
    drop(first);
    let again = next_report(q, "the report again").await;
    assert_eq!(again.report(), &report);
    again.ack().await.unwrap();
}

/// The next report, failing the test if none comes within [`WAIT`].
async fn next_report(q: &dyn JobQueue, what: &str) -> Box<dyn weft_core::ports::ReportDelivery> {
    tokio::time::timeout(WAIT, q.next_report())
        .await
        .unwrap_or_else(|_| panic!("{what} did not come"))
        .unwrap()
}

fn started(run: &str) -> Report {
    Report {
        run_id: run.to_string(),
        task: TaskId::new("a", None),
        attempt: 1,
        worker: "w".into(),
        at: 1,
        execution: 1,
        earlier: Vec::new(),
        kind: ReportKind::Started,
    }
}

/// A report sent to this reader's mailbox comes to its `next_report`, and
/// says it came from the mailbox where the queue keeps mailboxes.
pub async fn a_report_to_a_mailbox_reaches_its_reader(q: &dyn JobQueue) {
    let name = unique("server");
    let mailbox = q.open_mailbox(&name).await.unwrap();
    let report = started(&unique("run"));
    q.report(mailbox.as_deref(), &report).await.unwrap();
    let got = next_report(q, "the report").await;
    assert_eq!(got.report(), &report);
    assert_eq!(got.came_by_mailbox(), mailbox.is_some());
    got.ack().await.unwrap();
}

/// A report sent to a mailbox nobody opened (its server is gone, or of an
/// earlier version) comes through the shared queue.
pub async fn a_report_to_a_missing_mailbox_comes_through_the_shared_queue(q: &dyn JobQueue) {
    let report = started(&unique("run"));
    q.report(Some(&unique("nobody")), &report).await.unwrap();
    let got = next_report(q, "the report").await;
    assert_eq!(got.report(), &report);
    assert!(!got.came_by_mailbox());
    got.ack().await.unwrap();
}

pub async fn a_batch_publishes_every_job(q: &dyn JobQueue) {
    let pool = unique("pool");
    let jobs: Vec<_> = (0..50)
        .map(|i| job("r1", &format!("s{i}"), &pool))
        .collect();
    q.publish_all(&jobs).await.unwrap();
    for j in &jobs {
        let d = take(q, &pool).await;
        assert_eq!(d.job(), j);
        d.ack().await.unwrap();
    }
}

/// Runs every `JobQueue` contract case as its own test. `$make` is an
/// expression (usually `async { ... }`) that yields a fresh queue.
#[macro_export]
macro_rules! job_queue_contract {
    ($make:expr) => {
        mod job_queue_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::job_queue_contract!(@cases $make;
                published_job_is_delivered_intact,
                jobs_of_a_pool_come_in_publish_order,
                a_higher_band_is_taken_before_an_earlier_lower_one,
                a_returned_job_keeps_its_band,
                waiting_for_a_job_ends_when_one_is_published,
                pools_are_separate,
                acked_job_is_not_delivered_again,
                rejected_job_is_delivered_again_when_requeued,
                dropped_delivery_is_delivered_again,
                reports_arrive_in_order,
                unacked_report_is_delivered_again,
                a_report_to_a_mailbox_reaches_its_reader,
                a_report_to_a_missing_mailbox_comes_through_the_shared_queue,
                a_batch_publishes_every_job);
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let queue = $make.await;
                $crate::job_queue::$case(&queue).await;
            }
        )*
    };
}
