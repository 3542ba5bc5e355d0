//! What the contract files share: the test broker's options, and the
//! dead-lettering check both queue layouts pass.

use std::time::Duration;

use weft_core::ports::JobQueue;
use weft_queue_amqp::{AmqpJobQueue, Options};

/// The broker on 127.0.0.1:5672 (`WEFT_TEST_AMQP_URL` to point elsewhere),
/// under a prefix of the test's own; its queues expire after it.
pub fn options() -> Options {
    Options {
        url: std::env::var("WEFT_TEST_AMQP_URL").unwrap_or_else(|_| Options::default().url),
        prefix: weft_testkit::unique("weft-test"),
        expire_after_ms: Some(60_000),
        prefetch: 4,
        ..Options::default()
    }
}

/// A job returned again and again (what a crashed worker's lost channel
/// does) is delivered three times with a delivery limit of 2, then
/// dead-lettered whole.
pub async fn a_job_that_keeps_coming_back_is_dead_lettered(options: Options) {
    let q = AmqpJobQueue::connect(Options {
        delivery_limit: 2,
        ..options
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
