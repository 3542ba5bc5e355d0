//! The index of unfinished runs: a store written before it existed has it
//! built when a process connects, so no unfinished run is left unadopted.

use redis::AsyncCommands;
use weft_core::ports::{RunIndex, RunRecord};
use weft_core::run::RunStatus;
use weft_store_redis::{Options, RedisRunStore};

fn options(prefix: &str) -> Options {
    Options {
        url: std::env::var("WEFT_TEST_REDIS_URL").unwrap_or_else(|_| Options::default().url),
        prefix: prefix.to_string(),
        expire_after_secs: Some(120),
        ..Options::default()
    }
}

fn record(id: &str, status: RunStatus) -> RunRecord {
    RunRecord {
        status,
        ..weft_testkit::run_record(id, 1)
    }
}

#[tokio::test]
async fn a_store_from_before_the_index_has_it_built_on_connect() {
    let prefix = weft_testkit::unique("weft-test");
    let store = RedisRunStore::connect(options(&prefix)).await.unwrap();
    store
        .create_run(&record("running", RunStatus::Running))
        .await
        .unwrap();
    store
        .create_run(&record("done", RunStatus::Succeeded))
        .await
        .unwrap();
    // What an older weft left: the runs, and no index of unfinished ones.
    let client = redis::Client::open(options(&prefix).url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = conn
        .del(&[
            format!("{prefix}:unfinished"),
            format!("{prefix}:unfinished-indexed"),
        ])
        .await
        .unwrap();
    assert!(store.unfinished_runs(10).await.unwrap().is_empty());
    let reconnected = RedisRunStore::connect(options(&prefix)).await.unwrap();
    assert_eq!(
        reconnected.unfinished_runs(10).await.unwrap(),
        vec!["running".to_string()]
    );
}
