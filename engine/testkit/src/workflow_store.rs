//! The `WorkflowStore` contract.

use weft_core::ports::WorkflowStore;

use crate::unique;

pub async fn saves_number_versions_and_read_back(s: &dyn WorkflowStore) {
    let name = unique("wf");
    assert_eq!(s.save_workflow(&name, "v1", 1).await.unwrap(), 1);
    assert_eq!(s.save_workflow(&name, "v2", 2).await.unwrap(), 2);
    assert_eq!(s.workflow(&name, None).await.unwrap().unwrap().source, "v2");
    let first = s.workflow(&name, Some(1)).await.unwrap().unwrap();
    assert_eq!(
        (first.version, first.source.as_str(), first.saved_at),
        (1, "v1", 1)
    );
    assert_eq!(s.workflow(&name, Some(3)).await.unwrap(), None);
    assert_eq!(s.workflow(&unique("wf"), None).await.unwrap(), None);
    let latest: Vec<_> = s
        .workflows()
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.name == name)
        .collect();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].version, 2);
    let versions = s.latest_versions().await.unwrap();
    assert!(versions.contains(&(name.clone(), 2)), "{versions:?}");
    assert!(versions.windows(2).all(|w| w[0].0 < w[1].0), "by name");
}

/// `s` is a store of its own (each case gets a fresh one).
pub async fn a_fresh_store_has_no_versions(s: &dyn WorkflowStore) {
    assert_eq!(s.latest_versions().await.unwrap(), Vec::new());
    assert!(s.workflows().await.unwrap().is_empty());
}

pub async fn racing_saves_get_distinct_versions(s: &dyn WorkflowStore) {
    let name = unique("wf");
    // Polled together, so the saves interleave at the store.
    let saves = (0..8u64).map(|i| s.save_workflow(&name, if i % 2 == 0 { "a" } else { "b" }, i));
    let mut versions: Vec<u32> = futures_util::future::join_all(saves)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
}

/// Runs every `WorkflowStore` contract case as its own test.
#[macro_export]
macro_rules! workflow_store_contract {
    ($make:expr) => {
        mod workflow_store_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::workflow_store_contract!(@cases $make; saves_number_versions_and_read_back, racing_saves_get_distinct_versions, a_fresh_store_has_no_versions);
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make.await;
                $crate::workflow_store::$case(&store).await;
            }
        )*
    };
}
