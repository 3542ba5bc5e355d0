//! A connection to the broker that dies under a worker: settling a job that
//! came on it (its ack) ends within the broker call bound, whatever the
//! client library does with a frame for a dead connection, so an attempt
//! never holds its place among those in flight for ever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use weft_core::ports::JobQueue;
use weft_queue_amqp::{AmqpJobQueue, Options};

// Only its broker options are used here.
#[allow(dead_code)]
mod common;

/// Forwards connections to `to`; those open when `cut` is notified close.
async fn cuttable_proxy(to: String, cut: Arc<Notify>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (to, cut) = (to.clone(), cut.clone());
            tokio::spawn(async move {
                let Ok(mut broker) = TcpStream::connect(to).await else {
                    return;
                };
                tokio::select! {
                    _ = copy_bidirectional(&mut client, &mut broker) => {}
                    () = cut.notified() => {}
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acking_a_job_whose_connection_died_ends_within_the_call_bound() {
    let base = common::options();
    // amqp://user:password@host:port/vhost: the same URL through the proxy.
    let at = base.url.rfind('@').expect("a URL with credentials") + 1;
    let end = at + base.url[at..].find('/').unwrap_or(base.url.len() - at);
    let broker = base.url[at..end].to_string();
    let cut = Arc::new(Notify::new());
    let port = cuttable_proxy(broker, cut.clone()).await;
    let through = format!("{}127.0.0.1:{port}{}", &base.url[..at], &base.url[end..]);
    let q = AmqpJobQueue::connect(Options {
        url: through,
        heartbeat_secs: 60,
        ..base
    })
    .await
    .unwrap();
    let pool = weft_testkit::unique("pool");
    q.publish(&weft_testkit::job("r1", "a", &pool))
        .await
        .unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), q.take(&pool))
        .await
        .expect("the job is delivered")
        .unwrap();
    cut.notify_waiters();
    // The queue finds its connection gone and opens another, as a worker
    // reporting a step's end does; the job's ack comes after.
    q.publish(&weft_testkit::job("r1", "b", &pool))
        .await
        .unwrap();
    let started = Instant::now();
    let settled = tokio::time::timeout(Duration::from_secs(30), delivery.ack()).await;
    assert!(
        settled.is_ok(),
        "the ack was still waiting after {:?}",
        started.elapsed()
    );
}
