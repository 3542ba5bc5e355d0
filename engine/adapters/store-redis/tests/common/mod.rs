//! What both contract files run: every store contract, on stores made by
//! the file's `options()`.

/// Every contract the Redis store and its change bus pass.
#[macro_export]
macro_rules! redis_contracts {
    () => {
        weft_testkit::run_store_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });

        weft_testkit::worker_registry_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });
        weft_testkit::token_store_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });
        weft_testkit::workflow_store_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });
        weft_testkit::audit_log_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });
        weft_testkit::secret_store_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });
        weft_testkit::plugin_store_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });
        weft_testkit::step_cache_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });
        weft_testkit::run_removal_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });
        weft_testkit::deliveries_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });
        weft_testkit::concurrency_slots_contract!(async {
            weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap()
        });
        /// Redis tells who holds a lease: servers forward a report of a
        /// run they do not drive to its holder's mailbox.
        #[tokio::test]
        async fn the_holder_of_a_lease_is_told() {
            use weft_core::ports::Leases;
            let store = weft_store_redis::RedisRunStore::connect(options())
                .await
                .unwrap();
            let run = weft_testkit::unique("run");
            assert_eq!(store.holder(&run).await.unwrap(), None);
            store
                .lease(&run, "server-a", 0, 60_000)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                store.holder(&run).await.unwrap().as_deref(),
                Some("server-a")
            );
        }
        weft_testkit::change_bus_contract!(async {
            weft_store_redis::RedisChangeBus::connect(&options())
                .await
                .unwrap()
        });
    };
}
