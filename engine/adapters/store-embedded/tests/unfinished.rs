//! The index of unfinished runs: a store written before it existed has it
//! built when it is opened, so no unfinished run is left unadopted.

use redb::TableDefinition;
use weft_core::ports::{RunIndex, RunRecord};
use weft_core::run::RunStatus;
use weft_store_embedded::EmbeddedRunStore;

fn record(id: &str, status: RunStatus) -> RunRecord {
    RunRecord {
        status,
        ..weft_testkit::run_record(id, 1)
    }
}

#[tokio::test]
async fn a_store_from_before_the_index_has_it_built_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedRunStore::open(dir.path()).unwrap();
        store
            .create_run(&record("running", RunStatus::Running))
            .await
            .unwrap();
        store
            .create_run(&record("done", RunStatus::Failed))
            .await
            .unwrap();
        assert_eq!(store.unfinished_runs(10).await.unwrap(), ["running"]);
    }
    // What an older weft left: the runs, and no index of unfinished ones.
    {
        let db = redb::Database::create(dir.path().join("weft.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        let index: TableDefinition<&str, ()> = TableDefinition::new("unfinished-runs");
        assert!(txn.delete_table(index).unwrap());
        txn.commit().unwrap();
    }
    let store = EmbeddedRunStore::open(dir.path()).unwrap();
    assert_eq!(store.unfinished_runs(10).await.unwrap(), ["running"]);
}
