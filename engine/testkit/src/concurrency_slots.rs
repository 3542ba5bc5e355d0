//! The `ConcurrencySlots` contract.

use std::sync::Arc;

use weft_core::concurrency::{ConcurrencyPolicy, QueueSpot, SlotAnswer};
use weft_core::ports::ConcurrencySlots;

/// A spot on a key unique to this test run (stores are shared).
fn spot(key: &str, limit: u32, priority: i32, queued_at: u64) -> QueueSpot {
    QueueSpot {
        key: key.into(),
        limit,
        policy: ConcurrencyPolicy::Queue,
        priority,
        queued_at,
    }
}

fn fresh_key(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

pub async fn a_key_lets_its_limit_through_and_the_rest_in_order(s: &dyn ConcurrencySlots) {
    let key = fresh_key("order");
    let a = spot(&key, 1, 0, 1_000);
    let b = spot(&key, 1, 0, 2_000);
    let c = spot(&key, 1, 5, 3_000);
    assert_eq!(s.acquire_slot("a", &a).await.unwrap(), SlotAnswer::Granted);
    // Asking again changes nothing.
    assert_eq!(s.acquire_slot("a", &a).await.unwrap(), SlotAnswer::Granted);
    assert_eq!(
        s.acquire_slot("b", &b).await.unwrap(),
        SlotAnswer::Waiting {
            holders: vec!["a".into()],
            ahead: 0
        }
    );
    // c's priority puts it ahead of b.
    assert!(matches!(
        s.acquire_slot("c", &c).await.unwrap(),
        SlotAnswer::Waiting { ahead: 0, .. }
    ));
    assert_eq!(
        s.acquire_slot("b", &b).await.unwrap(),
        SlotAnswer::Waiting {
            holders: vec!["a".into()],
            ahead: 1
        }
    );
    s.release_slot(&key, "a").await.unwrap();
    s.release_slot(&key, "a").await.unwrap();
    assert!(matches!(
        s.acquire_slot("b", &b).await.unwrap(),
        SlotAnswer::Waiting { ahead: 1, .. }
    ));
    assert_eq!(s.acquire_slot("c", &c).await.unwrap(), SlotAnswer::Granted);
    // A waiter that leaves gives up its place.
    s.release_slot(&key, "b").await.unwrap();
    let d = spot(&key, 1, 0, 4_000);
    assert_eq!(
        s.acquire_slot("d", &d).await.unwrap(),
        SlotAnswer::Waiting {
            holders: vec!["c".into()],
            ahead: 0
        }
    );
    s.release_slot(&key, "c").await.unwrap();
    assert_eq!(s.acquire_slot("d", &d).await.unwrap(), SlotAnswer::Granted);
    s.release_slot(&key, "d").await.unwrap();
    // Another key is another line.
    let other = spot(&fresh_key("other"), 2, 0, 1);
    assert_eq!(
        s.acquire_slot("a", &other).await.unwrap(),
        SlotAnswer::Granted
    );
    assert_eq!(
        s.acquire_slot("b", &other).await.unwrap(),
        SlotAnswer::Granted
    );
    assert!(matches!(
        s.acquire_slot("c", &other).await.unwrap(),
        SlotAnswer::Waiting { ahead: 0, .. }
    ));
    for r in ["a", "b", "c"] {
        s.release_slot(&other.key, r).await.unwrap();
    }
}

pub async fn racing_askers_never_pass_the_limit<S: ConcurrencySlots + 'static>(s: Arc<S>) {
    let key = fresh_key("race");
    let asks = (0..24).map(|i| {
        let (s, spot) = (s.clone(), spot(&key, 3, 0, 1_000 + i));
        tokio::spawn(async move { s.acquire_slot(&format!("r{i:02}"), &spot).await.unwrap() })
    });
    let mut granted = 0;
    for ask in asks {
        if ask.await.unwrap() == SlotAnswer::Granted {
            granted += 1;
        }
    }
    assert_eq!(granted, 3);
    for i in 0..24 {
        s.release_slot(&key, &format!("r{i:02}")).await.unwrap();
    }
}

/// Runs every `ConcurrencySlots` contract case as its own test.
#[macro_export]
macro_rules! concurrency_slots_contract {
    ($make:expr) => {
        mod concurrency_slots_contract {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_key_lets_its_limit_through_and_the_rest_in_order() {
                let store = $make.await;
                $crate::concurrency_slots::a_key_lets_its_limit_through_and_the_rest_in_order(
                    &store,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn racing_askers_never_pass_the_limit() {
                let store = std::sync::Arc::new($make.await);
                $crate::concurrency_slots::racing_askers_never_pass_the_limit(store).await;
            }
        }
    };
}
