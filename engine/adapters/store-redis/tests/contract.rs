//! The Redis store passes the `RunStore` contract against the server on
//! 127.0.0.1:6379 (`WEFT_TEST_REDIS_URL` to point elsewhere). Each test has
//! its own key prefix, and its keys expire shortly after it ends.
use weft_store_redis::{Options, RedisRunStore};

pub fn options() -> Options {
    Options {
        url: std::env::var("WEFT_TEST_REDIS_URL").unwrap_or_else(|_| Options::default().url),
        prefix: weft_testkit::unique("weft-test"),
        expire_after_secs: Some(120),
        ..Options::default()
    }
}

weft_testkit::run_store_contract!(async { RedisRunStore::connect(options()).await.unwrap() });

weft_testkit::worker_registry_contract!(async { RedisRunStore::connect(options()).await.unwrap() });
weft_testkit::token_store_contract!(async { RedisRunStore::connect(options()).await.unwrap() });
weft_testkit::workflow_store_contract!(async { RedisRunStore::connect(options()).await.unwrap() });
weft_testkit::audit_log_contract!(async { RedisRunStore::connect(options()).await.unwrap() });
weft_testkit::secret_store_contract!(async { RedisRunStore::connect(options()).await.unwrap() });
weft_testkit::plugin_store_contract!(async { RedisRunStore::connect(options()).await.unwrap() });
weft_testkit::step_cache_contract!(async { RedisRunStore::connect(options()).await.unwrap() });
weft_testkit::run_removal_contract!(async { RedisRunStore::connect(options()).await.unwrap() });
weft_testkit::deliveries_contract!(async { RedisRunStore::connect(options()).await.unwrap() });
weft_testkit::concurrency_slots_contract!(async {
    RedisRunStore::connect(options()).await.unwrap()
});
weft_testkit::change_bus_contract!(async {
    weft_store_redis::RedisChangeBus::connect(&options())
        .await
        .unwrap()
});
