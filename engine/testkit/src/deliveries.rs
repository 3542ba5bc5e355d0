//! The `Deliveries` contract.

use weft_core::ports::Deliveries;

use crate::unique;

pub async fn a_delivery_is_recorded_once_until_it_expires(s: &dyn Deliveries) {
    let key = unique("delivery");
    assert_eq!(
        s.record_delivery(&key, "run-1", 1_000, 61_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.record_delivery(&key, "run-2", 2_000, 62_000)
            .await
            .unwrap(),
        Some("run-1".to_string()),
        "the same delivery again names the first run"
    );
    assert_eq!(
        s.record_delivery(&unique("delivery"), "run-3", 2_000, 62_000)
            .await
            .unwrap(),
        None,
        "another delivery is recorded"
    );
    assert_eq!(
        s.record_delivery(&key, "run-4", 61_001, 121_001)
            .await
            .unwrap(),
        None,
        "an expired record counts as none"
    );
    assert_eq!(
        s.record_delivery(&key, "run-5", 61_002, 121_002)
            .await
            .unwrap(),
        Some("run-4".to_string())
    );
}

pub async fn racing_records_of_one_delivery_make_one(s: &dyn Deliveries) {
    let key = unique("delivery");
    let ids: Vec<String> = (0..8).map(|i| format!("run-{i}")).collect();
    let calls = ids
        .iter()
        .map(|id| s.record_delivery(&key, id, 1_000, 61_000));
    let answers: Vec<Option<String>> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        answers.iter().filter(|a| a.is_none()).count(),
        1,
        "{answers:?}"
    );
    let winner = ids[answers.iter().position(Option::is_none).unwrap()].clone();
    assert!(
        answers.iter().flatten().all(|a| *a == winner),
        "{answers:?}"
    );
}

/// Runs every `Deliveries` contract case as its own test.
#[macro_export]
macro_rules! deliveries_contract {
    ($make:expr) => {
        mod deliveries_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::deliveries_contract!(@cases $make; a_delivery_is_recorded_once_until_it_expires, racing_records_of_one_delivery_make_one);
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make.await;
                $crate::deliveries::$case(&store).await;
            }
        )*
    };
}
