//! With `replicated-jobs` and `replicated-reports` (a RabbitMQ cluster's
//! settings), jobs, reports and dead letters live in quorum queues: the
//! queue passes the same `JobQueue` contract, a job queue dead-letters a
//! job past its delivery limit itself, and a queue that exists with the
//! other type is refused with what to do about it.

use std::time::Duration;

use weft_core::ports::JobQueue;
use weft_queue_amqp::{AmqpJobQueue, Options};

mod common;

fn options() -> Options {
    Options {
        replicated_reports: Some(true),
        replicated_jobs: Some(true),
        ..common::options()
    }
}

weft_testkit::job_queue_contract!(async { AmqpJobQueue::connect(options()).await.unwrap() });

/// A job returned again and again (what a crashed worker's lost channel
/// does) is delivered three times with a delivery limit of 2, then
/// dead-lettered whole: a quorum job queue counts returns itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_coming_back_reaches_the_replicated_dead_letters() {
    let q = AmqpJobQueue::connect(Options {
        delivery_limit: 2,
        ..options()
    })
    .await
    .unwrap();
    let pool = weft_testkit::unique("pool");
    let job = weft_testkit::job("r1", "crash", &pool);
    q.publish(&job).await.unwrap();
    let mut deliveries = 0;
    // Each return is what a crashed worker's lost channel does.
    while let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(2), q.take(&pool)).await {
        deliveries += 1;
        d.reject(true).await.unwrap();
        assert!(deliveries < 10, "the job keeps coming back");
    }
    assert_eq!(
        deliveries, 3,
        "delivered once, then returned twice before dead-lettering"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_mailbox_is_its_own_until_it_stops_reading() {
    common::a_servers_mailbox_is_its_own_until_it_stops_reading(options()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_queue_of_the_other_type_is_refused_with_what_to_do() {
    let replicated = options();
    let prefix = replicated.prefix.clone();
    let pool = weft_testkit::unique("pool");
    // A pool's queues made quorum, as an earlier weft made them everywhere.
    let earlier = AmqpJobQueue::connect(replicated.clone()).await.unwrap();
    earlier
        .publish(&weft_testkit::job("r1", "a", &pool))
        .await
        .unwrap();
    drop(earlier);
    let single_node = AmqpJobQueue::connect(Options {
        replicated_jobs: Some(false),
        ..replicated
    })
    .await
    .unwrap();
    let Err(e) = single_node
        .publish(&weft_testkit::job("r1", "b", &pool))
        .await
    else {
        panic!("a quorum job queue was taken for a classic one");
    };
    let text = e.to_string();
    assert!(text.contains(&format!("{prefix}.jobs.{pool}")), "{text}");
    assert!(text.contains("exists as a quorum queue"), "{text}");
    assert!(text.contains("replicated-jobs is false"), "{text}");
}
