//! The embedded store passes the `RunStore` contract, and keeps data across reopen.
use weft_core::ports::{EventLog, Leases};
use weft_store_embedded::EmbeddedRunStore;

async fn fresh() -> EmbeddedRunStore {
    // Leaked on purpose: the directory must outlive the store inside the test.
    let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
    EmbeddedRunStore::open(dir.path()).unwrap()
}

weft_testkit::run_store_contract!(fresh());
weft_testkit::worker_registry_contract!(fresh());
weft_testkit::plugin_store_contract!(fresh());
weft_testkit::token_store_contract!(fresh());
weft_testkit::workflow_store_contract!(fresh());
weft_testkit::audit_log_contract!(fresh());
weft_testkit::secret_store_contract!(fresh());
weft_testkit::step_cache_contract!(fresh());

#[tokio::test]
async fn history_survives_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedRunStore::open(dir.path()).unwrap();
        let fence = store.lease("r", "o", 0, 1000).await.unwrap().unwrap();
        store
            .append_events("r", &fence, 0, &[weft_core::run::Event::Started { at: 5 }])
            .await
            .unwrap();
    }
    let store = EmbeddedRunStore::open(dir.path()).unwrap();
    assert_eq!(store.events("r").await.unwrap().len(), 1);
}
weft_testkit::run_removal_contract!(fresh());
weft_testkit::deliveries_contract!(fresh());
weft_testkit::concurrency_slots_contract!(fresh());
