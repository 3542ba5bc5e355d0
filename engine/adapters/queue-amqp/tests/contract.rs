//! The RabbitMQ queue passes the `JobQueue` contract against the broker on
//! 127.0.0.1:5672 (`WEFT_TEST_AMQP_URL` to point elsewhere). Each test has
//! its own prefix; its queues expire shortly after it ends.
use weft_queue_amqp::{AmqpJobQueue, Options};

pub fn options() -> Options {
    Options {
        url: std::env::var("WEFT_TEST_AMQP_URL").unwrap_or_else(|_| Options::default().url),
        prefix: weft_testkit::unique("weft-test"),
        expire_after_ms: Some(60_000),
        prefetch: 4,
        ..Options::default()
    }
}

weft_testkit::job_queue_contract!(async { AmqpJobQueue::connect(options()).await.unwrap() });
