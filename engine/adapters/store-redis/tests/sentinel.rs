//! The Redis store through Redis Sentinel (a primary, its replica, three
//! Sentinels; `weft_testkit::redis_sentinel`): the same contracts as on a
//! single Redis, and a primary killed is left for the replica the
//! Sentinels promote, with no write acknowledged before the kill lost.
use std::time::{Duration, Instant};

use weft_core::ports::{EventLog, Leases, RunIndex};
use weft_store_redis::{Options, RedisRunStore};
use weft_testkit::redis_sentinel::{RedisSentinel, MASTER};

fn on(set: &RedisSentinel) -> Options {
    let urls = set.urls();
    Options {
        url: urls[0].clone(),
        urls: urls[1..].to_vec(),
        sentinel_master: Some(MASTER.into()),
        prefix: weft_testkit::unique("weft-test"),
        expire_after_secs: Some(120),
        ..Options::default()
    }
}

pub fn options() -> Options {
    on(&RedisSentinel::shared())
}

mod common;

redis_contracts!();

/// The primary is killed with SIGKILL: the store's calls fail over to the
/// replica the Sentinels promote, what was written before the kill (and
/// replicated) is there, and writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_replaced_and_the_store_writes_on() {
    let set = RedisSentinel::start_private(17401);
    let store = RedisRunStore::connect(on(&set)).await.unwrap();
    let before = weft_testkit::unique("before");
    store
        .create_run(&weft_testkit::run_record(&before, 1))
        .await
        .unwrap();
    let fence = store.lease(&before, "a", 0, 60_000).await.unwrap().unwrap();
    store
        .append_events(
            &before,
            &fence,
            0,
            &[weft_core::run::Event::Started { at: 1 }],
        )
        .await
        .unwrap();
    // Replicated before the kill (the store does not wait for replicas).
    let primary = set.primary().expect("the Sentinels name a primary");
    let replica = *set.servers.iter().find(|p| **p != primary).unwrap();
    wait_for_offset(primary, replica);
    set.kill9(primary);

    let start = Instant::now();
    let after = weft_testkit::unique("after");
    store
        .create_run(&weft_testkit::run_record(&after, 2))
        .await
        .expect("a write after the failover");
    eprintln!("written again {:?} after the kill", start.elapsed());
    assert_eq!(set.primary(), Some(replica), "the replica was promoted");
    assert!(store.get_run(&before).await.unwrap().is_some());
    assert_eq!(store.events(&before).await.unwrap().len(), 1);
    assert!(store.get_run(&after).await.unwrap().is_some());
}

/// Waits until `replica` has everything `primary` wrote.
fn wait_for_offset(primary: u16, replica: u16) {
    let offset = |port: u16, field: &str| -> Option<u64> {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "info", "replication"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().parse().ok())
    };
    let start = Instant::now();
    while offset(primary, "master_repl_offset:") != offset(replica, "slave_repl_offset:") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the replica lags"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sentinels and a cluster at once are refused, as are Sentinels that
/// watch no primary of the name given.
#[tokio::test]
async fn sentinels_are_refused_with_a_cluster_or_an_unknown_primary() {
    let set = RedisSentinel::shared();
    let Err(e) = RedisRunStore::connect(Options {
        cluster: true,
        ..on(&set)
    })
    .await
    else {
        panic!("cluster and sentinel-master were taken together");
    };
    assert!(e.to_string().contains("exclude each other"), "{e}");
    let Err(e) = RedisRunStore::connect(Options {
        sentinel_master: Some("nobody".into()),
        ..on(&set)
    })
    .await
    else {
        panic!("a primary the Sentinels do not know was taken");
    };
    assert!(e.to_string().contains("\"nobody\""), "{e}");
}

/// With `wait-for-replicas = 1`, a write is on the replica when the call
/// that made it returns: while the replica is stalled (`DEBUG SLEEP`), an
/// append waits for it, and the replica holds the events at once after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_for_replicas_a_write_is_on_the_replica_when_its_call_returns() {
    let set = RedisSentinel::start_private(17421);
    let options = Options {
        wait_for_replicas: 1,
        wait_timeout_ms: 5_000,
        ..on(&set)
    };
    let prefix = options.prefix.clone();
    let store = RedisRunStore::connect(options).await.unwrap();
    let run = weft_testkit::unique("waited");
    store
        .create_run(&weft_testkit::run_record(&run, 1))
        .await
        .unwrap();
    let fence = store.lease(&run, "a", 0, 60_000).await.unwrap().unwrap();
    let replica = set.servers[1];
    let stall = std::thread::spawn(move || {
        std::process::Command::new("redis-cli")
            .args(["-p", &replica.to_string(), "debug", "sleep", "0.8"])
            .output()
    });
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    store
        .append_events(&run, &fence, 0, &[weft_core::run::Event::Started { at: 1 }])
        .await
        .unwrap();
    let took = start.elapsed();
    let held = std::process::Command::new("redis-cli")
        .args(["-p", &replica.to_string(), "llen"])
        .arg(format!("{prefix}:events:{run}"))
        .output()
        .unwrap();
    stall.join().unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&held.stdout).trim(), "1");
    assert!(
        took >= Duration::from_millis(400),
        "the append returned after {took:?}, before the stalled replica could hold it"
    );
}
