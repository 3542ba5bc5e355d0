//! What the contract files share: the test broker's options, and the
//! mailbox check both queue layouts pass.

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

fn started(run: &str) -> weft_core::ports::Report {
    weft_core::ports::Report {
        run_id: run.to_string(),
        task: weft_core::run::TaskId::new("a", None),
        attempt: 1,
        worker: "w".into(),
        at: 1,
        execution: 1,
        earlier: Vec::new(),
        kind: weft_core::ports::ReportKind::Started,
    }
}

/// Two servers on one broker: each reads its own mailbox's reports and not
/// the other's; a report in the mailbox of a server that stopped reading
/// (it died) reaches the other through the shared queue once it has
/// waited `mailbox_ttl_ms`.
pub async fn a_servers_mailbox_is_its_own_until_it_stops_reading(options: Options) {
    let options = Options {
        mailbox_ttl_ms: 1500,
        ..options
    };
    let a = AmqpJobQueue::connect(options.clone()).await.unwrap();
    let b = AmqpJobQueue::connect(options).await.unwrap();
    let to_a = a.open_mailbox("server-a").await.unwrap();
    let to_b = b.open_mailbox("server-b").await.unwrap();
    assert_eq!(to_a.as_deref(), Some("server-a"));

    let for_b = started(&weft_testkit::unique("run"));
    a.report(to_b.as_deref(), &for_b).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), b.next_report())
        .await
        .expect("b's report")
        .unwrap();
    assert_eq!((got.report(), got.came_by_mailbox()), (&for_b, true));
    got.ack().await.unwrap();

    // From now on `a` reads nothing: it is dead.
    let for_a = started(&weft_testkit::unique("run"));
    b.report(to_a.as_deref(), &for_a).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), b.next_report())
            .await
            .is_err(),
        "b took a's report before a's mailbox gave it up"
    );
    let got = tokio::time::timeout(Duration::from_secs(10), b.next_report())
        .await
        .expect("a's report, handed on from its mailbox")
        .unwrap();
    assert_eq!((got.report(), got.came_by_mailbox()), (&for_a, false));
    got.ack().await.unwrap();
}
