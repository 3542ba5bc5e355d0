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
    });
    q.report(&started).await.unwrap();
    q.report(&finished).await.unwrap();
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
    let run = unique("run");
    let report = Report {
        run_id: run,
        task: TaskId::new("a", None),
        attempt: 1,
        worker: "w".into(),
        at: 1,
        execution: 1,
        kind: ReportKind::Started,
    };
    q.report(&report).await.unwrap();
    let first = tokio::time::timeout(WAIT, q.next_report())
        .await
        .expect("a report")
        .unwrap();
    assert_eq!(first.report(), &report);
    drop(first);
    let again = tokio::time::timeout(WAIT, q.next_report())
        .await
        .expect("the report again")
        .unwrap();
    assert_eq!(again.report(), &report);
    again.ack().await.unwrap();
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
                pools_are_separate,
                acked_job_is_not_delivered_again,
                rejected_job_is_delivered_again_when_requeued,
                dropped_delivery_is_delivered_again,
                reports_arrive_in_order,
                unacked_report_is_delivered_again,
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
