//! A connection to the broker that dies under a worker: settling a job that
//! came on it (its ack) ends within the broker call bound, whatever the
//! client library does with a frame for a dead connection, so an attempt
//! never holds its place among those in flight for ever. And one that goes
//! silent, left half-open (a network that drops everything, a host gone
//! without a word): the queue notices and carries on over a new one.

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

/// What becomes of the connections a proxy holds once it is told.
#[derive(Clone, Copy)]
enum Fault {
    /// Closed, as when the broker's side goes away.
    Cut,
    /// Left open, forwarding nothing either way: half-open, as a peer
    /// behind a dead network looks.
    Silence,
}

/// Forwards connections to `to`; those open when `told` is notified meet
/// `fault`. Later connections forward as usual.
async fn proxy(to: String, fault: Fault, told: Arc<Notify>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (to, told) = (to.clone(), told.clone());
            tokio::spawn(async move {
                let Ok(mut broker) = TcpStream::connect(to).await else {
                    return;
                };
                tokio::select! {
                    _ = copy_bidirectional(&mut client, &mut broker) => {}
                    () = told.notified() => {
                        if let Fault::Silence = fault {
                            // Both sockets held open, nothing forwarded.
                            std::future::pending::<()>().await;
                        }
                    }
                }
            });
        }
    });
    port
}

/// A queue on the test broker, reached through a [`proxy`] that meets
/// `fault` when `told`, with a heartbeat of `heartbeat_secs`.
async fn through(heartbeat_secs: u16, fault: Fault, told: Arc<Notify>) -> AmqpJobQueue {
    let base = common::options();
    // amqp://user:password@host:port/vhost: the same URL through the proxy.
    let at = base.url.rfind('@').expect("a URL with credentials") + 1;
    let end = at + base.url[at..].find('/').unwrap_or(base.url.len() - at);
    let port = proxy(base.url[at..end].to_string(), fault, told).await;
    let url = format!("{}127.0.0.1:{port}{}", &base.url[..at], &base.url[end..]);
    AmqpJobQueue::connect(Options {
        url,
        heartbeat_secs,
        ..base
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acking_a_job_whose_connection_died_ends_within_the_call_bound() {
    let cut = Arc::new(Notify::new());
    let q = through(60, Fault::Cut, cut.clone()).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_gone_silent_is_replaced_and_jobs_flow_again() {
    let silence = Arc::new(Notify::new());
    let q = through(2, Fault::Silence, silence.clone()).await;
    let pool = weft_testkit::unique("pool");
    let first = weft_testkit::job("r1", "a", &pool);
    q.publish(&first).await.unwrap();
    let held = tokio::time::timeout(Duration::from_secs(10), q.take(&pool))
        .await
        .expect("the job is delivered")
        .unwrap();
    assert_eq!(held.job(), &first);
    silence.notify_waiters();
    let started = Instant::now();
    // Publishing carries on over a new connection (at-least-once: it may
    // have gone twice), and the held job, whose connection the broker
    // drops for its missed heartbeats, comes back on it, as does the new one.
    let second = weft_testkit::job("r1", "b", &pool);
    tokio::time::timeout(Duration::from_secs(30), q.publish(&second))
        .await
        .expect("a publish on a silent connection ends")
        .unwrap();
    let mut seen = Vec::new();
    while !(seen.contains(&first) && seen.contains(&second)) {
        let next = tokio::time::timeout(Duration::from_secs(30), q.take(&pool))
            .await
            .unwrap_or_else(|_| panic!("only {seen:?} came back after {:?}", started.elapsed()))
            .unwrap();
        seen.push(next.job().clone());
        next.ack().await.unwrap();
    }
    drop(held);
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
}

/// Asked of a broker that stopped answering, before missed heartbeats
/// tell (they take two minutes here), a pool's depth is refused within the
/// call bound: a page that shows it must not hang with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_depth_asked_of_a_silent_broker_is_refused_within_the_call_bound() {
    let silence = Arc::new(Notify::new());
    let q = through(60, Fault::Silence, silence.clone()).await;
    let pool = weft_testkit::unique("pool");
    q.publish(&weft_testkit::job("r1", "a", &pool))
        .await
        .unwrap();
    silence.notify_waiters();
    let started = Instant::now();
    let depth = tokio::time::timeout(Duration::from_secs(30), q.depth(&pool))
        .await
        .expect("asking a silent broker for a depth ends");
    assert!(depth.is_err(), "{depth:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}
