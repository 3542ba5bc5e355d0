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
