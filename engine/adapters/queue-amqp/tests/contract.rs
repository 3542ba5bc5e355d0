//! The RabbitMQ queue passes the `JobQueue` contract against the broker on
//! 127.0.0.1:5672 (`WEFT_TEST_AMQP_URL` to point elsewhere). Each test has
//! its own prefix; its queues expire shortly after it ends.
use weft_queue_amqp::{AmqpJobQueue, Options};

mod common;
use common::options;

weft_testkit::job_queue_contract!(async { AmqpJobQueue::connect(options()).await.unwrap() });

/// On a single node job queues are classic: they count no returns (a
/// worker's claim catches a job that keeps crashing its workers), but a
/// job its taker rejects is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_job_queue_counts_no_returns_and_dead_letters_what_is_rejected() {
    use std::time::Duration;
    use weft_core::ports::JobQueue;
    let q = AmqpJobQueue::connect(Options {
        delivery_limit: 1,
        ..options()
    })
    .await
    .unwrap();
    assert_eq!(q.delivery_limit(), Some(1), "the claim's limit");
    let pool = weft_testkit::unique("pool");
    let job = weft_testkit::job("r1", "crash", &pool);
    q.publish(&job).await.unwrap();
    for _ in 0..4 {
        let d = tokio::time::timeout(Duration::from_secs(5), q.take(&pool))
            .await
            .expect("a job handed back comes back, past the limit too")
            .unwrap();
        assert_eq!(d.job(), &job);
        d.reject(true).await.unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), q.next_dead_job())
            .await
            .is_err(),
        "nothing dead-lettered by returns"
    );
    let d = tokio::time::timeout(Duration::from_secs(5), q.take(&pool))
        .await
        .expect("the job")
        .unwrap();
    d.reject(false).await.unwrap();
    let dead = tokio::time::timeout(Duration::from_secs(5), q.next_dead_job())
        .await
        .expect("a rejected job is dead-lettered")
        .unwrap();
    assert_eq!(dead.job(), &job);
    dead.ack().await.unwrap();
}

/// A taker whose normal band is at its prefetch (its jobs running,
/// unacked) holds a low job the broker sent it meanwhile; when a normal job
/// ends, the next normal one waiting at the broker goes first, though the
/// broker has not sent it yet, in their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_low_job_waits_for_normal_ones_the_broker_has_not_sent() {
    use std::time::Duration;
    use weft_core::ports::JobQueue;
    let q = AmqpJobQueue::connect(options()).await.unwrap();
    let pool = weft_testkit::unique("pool");
    let ranked = |step: &str, priority: i32| {
        let mut j = weft_testkit::job("r1", step, &pool);
        j.priority = priority;
        j
    };
    let normal: Vec<_> = (1..=6).map(|i| ranked(&format!("normal-{i}"), 0)).collect();
    q.publish_all(&normal[..4]).await.unwrap();
    // Four running normal jobs: the prefetch (4) of the normal band.
    let mut running = Vec::new();
    for _ in 0..4 {
        let d = tokio::time::timeout(Duration::from_secs(5), q.take(&pool))
            .await
            .expect("a job")
            .unwrap();
        assert!(d.job().task.step.starts_with("normal"));
        running.push(d);
    }
    q.publish(&ranked("low", -1)).await.unwrap();
    q.publish_all(&normal[4..]).await.unwrap();
    // The low job reaches the taker; the normal ones stay at the broker.
    tokio::time::timeout(Duration::from_secs(5), q.wait_for_job(&pool))
        .await
        .expect("the low job arrives")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut order = Vec::new();
    for _ in 0..3 {
        // One running job ends; the taker takes at once.
        running.remove(0).ack().await.unwrap();
        let d = q.try_take(&pool).await.unwrap().expect("a job is there");
        order.push(d.job().task.step.clone());
        running.push(d);
    }
    assert_eq!(order, ["normal-5", "normal-6", "low"]);
    for d in running {
        d.ack().await.unwrap();
    }
}

/// A taker with no room releases the pool: the jobs it held go back (as
/// new messages: giving back three times does not reach a delivery limit
/// of 2) and it is sent no more until it waits again, so another taker
/// gets every job meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_taker_holds_nothing_and_counts_no_delivery() {
    use std::time::Duration;
    use weft_core::ports::JobQueue;
    // Quorum job queues, which count returns.
    let shared = Options {
        delivery_limit: 2,
        replicated_jobs: Some(true),
        ..options()
    };
    let mut busy = Vec::new();
    for _ in 0..3 {
        busy.push(AmqpJobQueue::connect(shared.clone()).await.unwrap());
    }
    let free = AmqpJobQueue::connect(shared).await.unwrap();
    let pool = weft_testkit::unique("pool");
    let mut first = weft_testkit::job("r1", "first", &pool);
    first.priority = 5;
    busy[0].publish(&first).await.unwrap();
    for busy in &busy {
        // A busy taker is sent the job, then has no room for it.
        tokio::time::timeout(Duration::from_secs(5), busy.wait_for_job(&pool))
            .await
            .expect("the job reaches the busy taker")
            .unwrap();
        busy.release(&pool).await.unwrap();
    }
    let busy = &busy[0];
    let later: Vec<_> = (0..4)
        .map(|i| weft_testkit::job("r1", &format!("later-{i}"), &pool))
        .collect();
    busy.publish_all(&later).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        let d = tokio::time::timeout(Duration::from_secs(5), free.take(&pool))
            .await
            .expect("every job reaches the free taker")
            .unwrap();
        got.push(d.job().task.step.clone());
        d.ack().await.unwrap();
    }
    assert_eq!(got[0], "first", "{got:?}");
    assert_eq!(got.len(), 5);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), free.take(&pool))
            .await
            .is_err(),
        "a job came twice"
    );
}

/// A taker sent jobs ahead of its slots (its prefetch is above them) and
/// busy for a while gives back the ones it holds, and is not sent them (or
/// others) again while it has no room: another taker gets them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_taker_gives_back_the_jobs_it_was_sent_ahead_and_is_not_sent_more() {
    use std::time::Duration;
    use weft_core::ports::JobQueue;
    let shared = Options {
        prefetch: 2,
        ..options()
    };
    let busy = AmqpJobQueue::connect(shared.clone()).await.unwrap();
    let free = AmqpJobQueue::connect(shared).await.unwrap();
    let pool = weft_testkit::unique("pool");
    let jobs: Vec<_> = (1..=4)
        .map(|i| weft_testkit::job("r1", &format!("job-{i}"), &pool))
        .collect();
    busy.publish_all(&jobs).await.unwrap();
    // One running, one held ahead of it: the busy taker's prefetch.
    let running = tokio::time::timeout(Duration::from_secs(5), busy.take(&pool))
        .await
        .expect("a job")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), busy.wait_for_job(&pool))
        .await
        .expect("a second job is sent ahead")
        .unwrap();
    busy.release(&pool).await.unwrap();
    let mut got = Vec::new();
    while let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(2), free.take(&pool)).await {
        got.push(d.job().task.step.clone());
        d.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(
        got,
        ["job-2", "job-3", "job-4"],
        "the free taker got the rest"
    );
    running.ack().await.unwrap();
}

/// A cluster's URL list whose first node is down: the client reaches the
/// next one, and jobs go through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_down_at_start_is_passed_over_for_the_next() {
    use std::time::Duration;
    use weft_core::ports::JobQueue;
    let live = options();
    let q = tokio::time::timeout(
        Duration::from_secs(30),
        AmqpJobQueue::connect(Options {
            url: "amqp://guest:guest@127.0.0.1:1/%2f".into(),
            urls: vec![live.url.clone()],
            ..live
        }),
    )
    .await
    .expect("connected within the time")
    .unwrap();
    let pool = weft_testkit::unique("pool");
    let job = weft_testkit::job("r1", "a", &pool);
    q.publish(&job).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), q.take(&pool))
        .await
        .expect("the job came")
        .unwrap();
    assert_eq!(d.job().task, job.task);
    d.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_mailbox_is_its_own_until_it_stops_reading() {
    common::a_servers_mailbox_is_its_own_until_it_stops_reading(options()).await;
}
