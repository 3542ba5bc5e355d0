//! A publish the broker refuses (a nack: a quorum queue whose leader's node
//! died, or one at its length limit) is sent again on a new channel of the
//! same connection, so the jobs the process holds stay held: a new connection would hand them
//! back, and RabbitMQ counts each such return against a job's delivery
//! limit though nothing ran. Against the broker on 127.0.0.1:5672, with a
//! policy of the test's own (a length limit that refuses publishes).

use std::process::Command;
use std::time::Duration;

use weft_core::ports::{Delivery, JobQueue};
use weft_queue_amqp::{AmqpJobQueue, Options};

// Only its broker options are used here.
#[allow(dead_code)]
mod common;

/// A RabbitMQ policy on one queue, cleared when dropped.
struct Policy {
    name: String,
}

impl Policy {
    fn set(queue: &str, definition: &str) -> Self {
        let name = weft_testkit::unique("weft-test-policy");
        let pattern = format!("^{}$", queue.replace('.', "\\."));
        let out = Command::new("rabbitmqctl")
            .args(["-q", "set_policy", &name, &pattern, definition])
            .args(["--apply-to", "queues", "--priority", "100"])
            .output()
            .expect("running rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl set_policy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { name }
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "clear_policy", &self.name])
            .output();
    }
}

/// The job a take gives within 10 s.
async fn within_10s(
    take: impl std::future::Future<Output = Result<Box<dyn Delivery>, weft_core::Error>>,
) -> Box<dyn Delivery> {
    tokio::time::timeout(Duration::from_secs(10), take)
        .await
        .expect("a job within 10 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_is_sent_again_on_its_connection_and_what_the_process_holds_stays_held() {
    // Limit 0 on a quorum job queue: any job handed back unacked is
    // dead-lettered at once.
    let options = Options {
        delivery_limit: 0,
        replicated_jobs: Some(true),
        prefetch: 2,
        ..common::options()
    };
    let pool = weft_testkit::unique("pool");
    let q = AmqpJobQueue::connect(options.clone()).await.unwrap();
    let other = AmqpJobQueue::connect(options.clone()).await.unwrap();
    let job = |step: &str| weft_testkit::job("r1", step, &pool);
    // `a` taken (a running step), `b` sent ahead and held unstarted.
    q.publish(&job("a")).await.unwrap();
    q.publish(&job("b")).await.unwrap();
    let running = q.take(&pool).await.unwrap();
    assert_eq!(running.job(), &job("a"));
    // Two ready (the taker is at its prefetch): a third is refused.
    let _policy = Policy::set(
        &format!("{}.jobs.{pool}", options.prefix),
        r#"{"max-length": 1, "overflow": "reject-publish"}"#,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    q.publish(&job("c")).await.unwrap();
    q.publish(&job("d")).await.unwrap();
    let refused = async { q.publish(&job("e")).await };
    let freeing = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Room again: another taker takes `c` and `d`.
        for step in ["c", "d"] {
            let next = other.take(&pool).await.unwrap();
            assert_eq!(next.job(), &job(step));
            next.ack().await.unwrap();
        }
    };
    let (published, ()) = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join(refused, freeing),
    )
    .await
    .expect("the refused publish went through once there was room");
    published.unwrap();
    // This process still holds `b` on the connection it had (a new one
    // would have handed it back, dead-lettered at this limit).
    let next = within_10s(q.take(&pool)).await;
    assert_eq!(next.job(), &job("b"));
    next.ack().await.unwrap();
    running.ack().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), other.next_dead_job())
            .await
            .is_err(),
        "nothing was handed back"
    );
    let last = within_10s(other.take(&pool)).await;
    assert_eq!(last.job(), &job("e"), "published once there was room");
    last.ack().await.unwrap();
}
