//! With `replicated-reports` (a RabbitMQ cluster's setting), reports and
//! dead letters live in quorum queues: the queue passes the same
//! `JobQueue` contract, dead-letters as before, and a queue that exists
//! with the other type is refused with what to do about it.
use std::time::Duration;

use weft_core::ports::JobQueue;
use weft_queue_amqp::{AmqpJobQueue, Options};

fn options() -> Options {
    Options {
        url: std::env::var("WEFT_TEST_AMQP_URL").unwrap_or_else(|_| Options::default().url),
        prefix: weft_testkit::unique("weft-test"),
        expire_after_ms: Some(60_000),
        prefetch: 4,
        replicated_reports: Some(true),
        ..Options::default()
    }
}

weft_testkit::job_queue_contract!(async { AmqpJobQueue::connect(options()).await.unwrap() });

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_coming_back_reaches_the_replicated_dead_letters() {
    let q = AmqpJobQueue::connect(Options {
        delivery_limit: 1,
        ..options()
    })
    .await
    .unwrap();
    let pool = weft_testkit::unique("pool");
    let job = weft_testkit::job("r1", "crash", &pool);
    q.publish(&job).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), q.take(&pool))
        .await
        .expect("the job")
        .unwrap();
    d.reject(true).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), q.take(&pool))
        .await
        .expect("the job again")
        .unwrap();
    d.reject(true).await.unwrap();
    let dead = tokio::time::timeout(Duration::from_secs(5), q.next_dead_job())
        .await
        .expect("a dead job")
        .unwrap();
    assert_eq!(dead.job(), &job);
    dead.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reports_queue_of_the_other_type_is_refused_with_what_to_do() {
    let classic = options();
    let prefix = classic.prefix.clone();
    // The queues made classic, as a single node's weft had them.
    drop(
        AmqpJobQueue::connect(Options {
            replicated_reports: Some(false),
            ..classic
        })
        .await
        .unwrap(),
    );
    let Err(e) = AmqpJobQueue::connect(Options {
        prefix: prefix.clone(),
        reconnect_max_delay_ms: 100,
        ..options()
    })
    .await
    else {
        panic!("a classic reports queue was taken for a quorum one");
    };
    let text = e.to_string();
    assert!(
        text.contains(&format!("{prefix}.dead")) || text.contains(&format!("{prefix}.reports")),
        "{text}"
    );
    assert!(text.contains("exists as a classic queue"), "{text}");
    assert!(text.contains("replicated-reports"), "{text}");
}
