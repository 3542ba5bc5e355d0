//! With `replicated-reports` (a RabbitMQ cluster's setting), reports and
//! dead letters live in quorum queues: the queue passes the same
//! `JobQueue` contract, dead-letters as before, and a queue that exists
//! with the other type is refused with what to do about it.

use weft_queue_amqp::{AmqpJobQueue, Options};

mod common;

fn options() -> Options {
    Options {
        replicated_reports: Some(true),
        ..common::options()
    }
}

weft_testkit::job_queue_contract!(async { AmqpJobQueue::connect(options()).await.unwrap() });

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_coming_back_reaches_the_replicated_dead_letters() {
    common::a_job_that_keeps_coming_back_is_dead_lettered(options()).await;
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
