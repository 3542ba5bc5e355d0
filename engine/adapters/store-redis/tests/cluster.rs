//! The Redis store passes the same contracts against a Redis Cluster (three
//! primaries, a replica each; `weft_testkit::redis_cluster`), with each
//! run's keys under its own hash tag.
use weft_store_redis::{Options, RedisRunStore};
use weft_testkit::redis_cluster::RedisCluster;

pub fn options() -> Options {
    let urls = RedisCluster::shared().urls();
    Options {
        url: urls[0].clone(),
        urls: urls[1..].to_vec(),
        cluster: true,
        prefix: weft_testkit::unique("weft-test"),
        expire_after_secs: Some(120),
        ..Options::default()
    }
}

mod common;

redis_contracts!();

/// A run's keys share its slot, and runs spread over the primaries.
#[tokio::test]
async fn runs_spread_over_the_primaries() {
    use weft_core::ports::RunIndex;
    let options = options();
    let store = RedisRunStore::connect(options.clone()).await.unwrap();
    for i in 0..30 {
        let id = weft_testkit::unique(&format!("run{i}"));
        store
            .create_run(&weft_testkit::run_record(&id, i))
            .await
            .unwrap();
    }
    let mut holding = 0;
    for url in RedisCluster::shared().urls() {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:run:*", options.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await.unwrap();
        let primary = matches!(&role[0], redis::Value::BulkString(b) if b == b"master");
        if primary && !keys.is_empty() {
            holding += 1;
        }
    }
    assert!(holding >= 2, "30 runs' records on {holding} primary(ies)");
}

/// A single Redis given as a cluster is refused at once, naming it.
#[tokio::test]
async fn a_single_redis_given_as_a_cluster_is_refused_naming_it() {
    let single = std::env::var("WEFT_TEST_REDIS_URL").unwrap_or_else(|_| Options::default().url);
    let Err(e) = RedisRunStore::connect(Options {
        url: single.clone(),
        urls: Vec::new(),
        ..options()
    })
    .await
    else {
        panic!("a single Redis was taken for a cluster");
    };
    let text = e.to_string();
    assert!(text.contains("redis: connecting to"), "{text}");
    assert!(
        text.contains("127.0.0.1:6379") || text.contains(&single),
        "{text}"
    );
}

/// More nodes without `cluster = true` is a mistake, said at once.
#[tokio::test]
async fn more_nodes_without_cluster_are_refused() {
    let Err(e) = RedisRunStore::connect(Options {
        cluster: false,
        ..options()
    })
    .await
    else {
        panic!("urls were taken without cluster = true");
    };
    assert!(e.to_string().contains("set cluster = true"), "{e}");
}

/// Slots move from one primary to another while the store writes to the
/// runs they hold (the cluster answers `MOVED`, `ASK`, and `TRYAGAIN` to a
/// script whose keys the move has split): every write lands once, and each
/// run's log reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_writes_on_while_slots_move_between_primaries() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use weft_core::ports::{EventLog, Leases, RunIndex};

    let cluster = RedisCluster::start_private(17601);
    let urls = cluster.urls();
    let store_prefix = weft_testkit::unique("weft-test");
    let store = RedisRunStore::connect(Options {
        url: urls[0].clone(),
        urls: urls[1..].to_vec(),
        cluster: true,
        prefix: store_prefix.clone(),
        ..Options::default()
    })
    .await
    .unwrap();
    let mut runs = Vec::new();
    for i in 0..40 {
        let id = weft_testkit::unique(&format!("moving{i}"));
        store
            .create_run(&weft_testkit::run_record(&id, i))
            .await
            .unwrap();
        let fence = store.lease(&id, "a", 0, 600_000).await.unwrap().unwrap();
        runs.push((id, fence));
    }
    let moved = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, runs, moved) = (store.clone(), runs.clone(), moved.clone());
        tokio::spawn(async move {
            let mut rounds = 0u64;
            // At least a few rounds after the move, through its end.
            let mut after = 0;
            while after < 3 {
                for (id, fence) in &runs {
                    let event = weft_core::run::Event::Started { at: rounds };
                    store
                        .append_events(id, fence, rounds, &[event])
                        .await
                        .unwrap_or_else(|e| panic!("append {rounds} to {id}: {e}"));
                }
                rounds += 1;
                if moved.load(Ordering::SeqCst) {
                    after += 1;
                }
            }
            rounds
        })
    };
    let primaries = cluster.primaries();
    let id_of = |port: u16| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "myid"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (from, to) = (id_of(primaries[0]), id_of(primaries[1]));
    // The runs whose keys the receiving primary holds.
    let prefix = store_prefix.clone();
    let held_by_to = |runs: &[(String, weft_core::ports::Fence)]| {
        runs.iter()
            .filter(|(id, _)| {
                let out = std::process::Command::new("redis-cli")
                    .args(["-p", &primaries[1].to_string(), "exists"])
                    .arg(format!("{prefix}:run:{{{id}}}"))
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim() == "1"
            })
            .count()
    };
    let before = held_by_to(&runs);
    let seed = format!("127.0.0.1:{}", primaries[0]);
    let reshard = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args(["--cluster", "reshard", &seed, "--cluster-from", &from])
            .args([
                "--cluster-to",
                &to,
                "--cluster-slots",
                "3000",
                "--cluster-yes",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        reshard.status.success(),
        "{}",
        String::from_utf8_lossy(&reshard.stderr)
    );
    moved.store(true, Ordering::SeqCst);
    let rounds = writer.await.unwrap();
    let after = held_by_to(&runs);
    eprintln!(
        "{rounds} rounds of 40 appends while 3000 slots moved; the receiving primary held {before} runs, then {after}"
    );
    assert!(after > before, "no run's slot moved");
    for (id, _) in &runs {
        let events = store.events(id).await.unwrap();
        let ats: Vec<u64> = events
            .iter()
            .map(|e| match e {
                weft_core::run::Event::Started { at } => *at,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ats, (0..rounds).collect::<Vec<_>>(), "run {id}");
    }
}
