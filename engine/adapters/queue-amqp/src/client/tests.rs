//! The client glue: URLs and names offline; confirms, returns, refusals
//! and one-at-a-time requests against the broker on 127.0.0.1:5672
//! (`WEFT_TEST_AMQP_URL` to point elsewhere).

use super::address::Address;
use super::*;

#[test]
fn a_url_is_read_into_its_parts_percent_decoded() {
    let a = Address::parse("amqp://we%40ft:p%3Ass@rabbit.local:5673/%2f?heartbeat=7").unwrap();
    assert_eq!(
        a,
        Address {
            host: "rabbit.local".into(),
            port: 5673,
            user: "we@ft".into(),
            password: "p:ss".into(),
            vhost: "/".into(),
            heartbeat: Some(7),
        }
    );
    let b = Address::parse("amqp://[::1]/jobs").unwrap();
    assert_eq!((b.host.as_str(), b.port), ("::1", 5672));
    assert_eq!((b.user.as_str(), b.password.as_str()), ("guest", "guest"));
    assert_eq!((b.vhost.as_str(), b.heartbeat), ("jobs", None));
    assert_eq!(Address::parse("amqp://h").unwrap().vhost, "/");
}

#[test]
fn a_bad_url_is_an_error_that_shows_no_password() {
    for (url, says) in [
        ("http://u:secret@h/", "unknown scheme"),
        ("amqps://u:secret@h/", "TLS"),
        ("amqp://u:secret@h/?heartbeat=soon", "heartbeat"),
        ("amqp://u:secret@h/?flag", ""),
        ("not a url", ""),
    ] {
        match Address::parse(url) {
            Err(Error::Invalid(text)) => {
                assert!(text.contains(says), "{url}: {text}");
                assert!(!text.contains("secret"), "{url}: {text}");
            }
            Ok(a) if url.ends_with("?flag") => assert_eq!(a.heartbeat, None),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn a_name_longer_than_amqp_carries_is_an_error() {
    assert!(short(&"a".repeat(255), "queue").is_ok());
    let long = "é".repeat(200);
    match short(&long, "queue") {
        Err(Error::Invalid(text)) => assert!(text.contains("400 bytes"), "{text}"),
        other => panic!("{other:?}"),
    }
}

fn url() -> String {
    std::env::var("WEFT_TEST_AMQP_URL").unwrap_or_else(|_| crate::Options::default().url)
}

/// A connection, a channel in confirm mode, and a queue of the test's own
/// (gone a minute after the test) bound to `amq.direct` by its name.
async fn setup() -> (Connection, Channel, String) {
    let connection = Connection::open(&url(), 10).await.unwrap();
    let channel = connection.channel().await.unwrap();
    channel.confirm_select().await.unwrap();
    let queue = weft_testkit::unique("weft-test-client");
    let mut args = FieldTable::new();
    args.insert(
        "x-expires".try_into().unwrap(),
        amqprs::FieldValue::I(60_000),
    );
    channel.queue_declare(&queue, false, args).await.unwrap();
    channel
        .queue_bind(&queue, "amq.direct", &queue)
        .await
        .unwrap();
    (connection, channel, queue)
}

#[tokio::test]
async fn pipelined_publishes_are_each_answered_and_an_unroutable_one_comes_back() {
    let (_connection, channel, queue) = setup().await;
    let mut confirms = Vec::new();
    for i in 0..300 {
        let key = if i == 150 { "nowhere" } else { queue.as_str() };
        confirms.push(
            channel
                .publish("amq.direct", key, vec![b'x'; i])
                .await
                .unwrap(),
        );
    }
    for (i, confirm) in confirms.into_iter().enumerate() {
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), confirm.answer())
            .await
            .expect("answered")
            .unwrap();
        match (i, answer) {
            (150, Confirmation::Returned(reason)) => {
                assert!(reason.contains("NO_ROUTE"), "{reason}")
            }
            (150, other) => panic!("the unroutable publish was answered {other:?}"),
            (_, Confirmation::Ack) => {}
            (i, other) => panic!("publish {i} was answered {other:?}"),
        }
    }
    // All but the returned one arrived, in order, intact.
    let consumer_channel = _connection.channel().await.unwrap();
    let mut consumer = consumer_channel.consume(&queue).await.unwrap();
    for i in (0..300).filter(|i| *i != 150) {
        let delivery = consumer.next().await.unwrap();
        assert_eq!(delivery.data.len(), i);
        delivery.acker.ack().await.unwrap();
    }
}

#[tokio::test]
async fn requests_made_at_once_on_one_channel_each_get_their_own_answer() {
    let (_connection, channel, queue) = setup().await;
    for i in 0..5 {
        channel
            .publish("amq.direct", &queue, vec![b'x'; i])
            .await
            .unwrap()
            .answer()
            .await
            .unwrap();
    }
    // Passive declares of the test's queue (5 messages) and of a queue
    // made for each (none), all at once.
    let asks = (0..20).map(|i| {
        let channel = channel.clone();
        let queue = queue.clone();
        async move {
            if i % 2 == 0 {
                (
                    i,
                    channel
                        .queue_declare(&queue, true, FieldTable::new())
                        .await
                        .unwrap(),
                )
            } else {
                let own = format!("{queue}.{i}");
                let mut args = FieldTable::new();
                args.insert(
                    "x-expires".try_into().unwrap(),
                    amqprs::FieldValue::I(60_000),
                );
                (i, channel.queue_declare(&own, false, args).await.unwrap())
            }
        }
    });
    for (i, messages) in futures_util::future::join_all(asks).await {
        assert_eq!(messages, if i % 2 == 0 { 5 } else { 0 }, "request {i}");
    }
}

#[tokio::test]
async fn a_refused_request_says_why_and_ends_what_its_channel_was_waiting_for() {
    let (connection, channel, queue) = setup().await;
    // Declared again with other arguments: the broker closes the channel.
    let refused = channel
        .queue_declare(&queue, false, FieldTable::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("PRECONDITION_FAILED"), "{refused}");
    assert!(!channel.is_open());
    // Nothing more is sent on it: RabbitMQ would close the whole
    // connection for a frame on a channel that is not open.
    let again = channel.queue_declare(&queue, true, FieldTable::new()).await;
    assert!(matches!(again, Err(Error::Closed(_))), "{again:?}");
    let publish = channel.publish("amq.direct", &queue, b"x".to_vec()).await;
    assert!(
        matches!(publish, Err(Error::Closed(_))),
        "{:?}",
        publish.err()
    );
    // A publish to an exchange that does not exist closes its channel; its
    // wait ends with the channel, not at a timeout.
    let other = connection.channel().await.unwrap();
    other.confirm_select().await.unwrap();
    let confirm = other
        .publish("weft-test-no-such-exchange", "k", b"x".to_vec())
        .await
        .unwrap();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), confirm.answer())
        .await
        .expect("the wait ends with the channel");
    assert!(answer.is_err(), "{answer:?}");
    // The connection stands.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(connection.is_open());
    let third = connection.channel().await.unwrap();
    third
        .queue_declare(&queue, true, FieldTable::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_message_larger_than_a_frame_arrives_whole() {
    let (connection, channel, queue) = setup().await;
    // RabbitMQ's frames carry 128 KiB at most: this body takes 25 of them.
    let body: Vec<u8> = (0..3_200_000u32).map(|i| (i % 251) as u8).collect();
    let answer = channel
        .publish("amq.direct", &queue, body.clone())
        .await
        .unwrap()
        .answer()
        .await
        .unwrap();
    assert!(matches!(answer, Confirmation::Ack), "{answer:?}");
    let reader = connection.channel().await.unwrap();
    let delivery = reader.get(&queue).await.unwrap().expect("the message");
    assert!(delivery.data == body, "the body came back changed");
    delivery.acker.ack().await.unwrap();
}
