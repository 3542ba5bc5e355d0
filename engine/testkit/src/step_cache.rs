//! The `StepCache` contract.

use weft_core::artifacts::{ArtifactRef, Digest};
use weft_core::cache::{CacheEntry, CachedFrom};
use weft_core::ports::StepCache;
use weft_core::run::TaskId;

fn digest(byte: u8) -> Digest {
    Digest::from_bytes(&[byte; 32])
}

fn entry(run: &str, saved_at: u64, expires_at: u64, artifact: Option<u8>) -> CacheEntry {
    CacheEntry {
        from: CachedFrom {
            run: run.into(),
            task: TaskId::new("train", Some(2)),
        },
        outputs: serde_json::json!({"loss": 0.25, "run": run}),
        artifacts: artifact
            .map(|b| {
                (
                    "model".to_string(),
                    ArtifactRef {
                        digest: digest(b),
                        size: 42,
                        dir: false,
                    },
                )
            })
            .into_iter()
            .collect(),
        saved_at,
        expires_at,
    }
}

pub async fn entries_are_saved_found_and_replaced(c: &dyn StepCache) {
    let key = digest(1);
    assert_eq!(c.cached(&key, 10).await.unwrap(), None);
    c.save_cached(&key, &entry("r1", 10, 1_000, Some(7)))
        .await
        .unwrap();
    assert_eq!(
        c.cached(&key, 20).await.unwrap(),
        Some(entry("r1", 10, 1_000, Some(7)))
    );
    // Another key is another entry.
    assert_eq!(c.cached(&digest(2), 20).await.unwrap(), None);
    // Saving again replaces it.
    c.save_cached(&key, &entry("r2", 30, 2_000, None))
        .await
        .unwrap();
    assert_eq!(
        c.cached(&key, 40).await.unwrap(),
        Some(entry("r2", 30, 2_000, None))
    );
}

pub async fn expired_entries_are_not_found_and_are_pruned(c: &dyn StepCache) {
    c.save_cached(&digest(1), &entry("old", 10, 100, Some(8)))
        .await
        .unwrap();
    c.save_cached(&digest(2), &entry("new", 10, 10_000, Some(9)))
        .await
        .unwrap();
    assert!(c.cached(&digest(1), 99).await.unwrap().is_some());
    assert_eq!(c.cached(&digest(1), 100).await.unwrap(), None);
    // Only live entries keep their artifacts.
    let kept = c.cached_artifacts(500).await.unwrap();
    assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![digest(9)]);
    assert_eq!(c.prune_cached(500).await.unwrap(), 1);
    assert_eq!(c.prune_cached(500).await.unwrap(), 0);
    assert!(c.cached(&digest(2), 500).await.unwrap().is_some());
}

#[macro_export]
macro_rules! step_cache_contract {
    ($make:expr) => {
        mod step_cache_contract {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn entries_are_saved_found_and_replaced() {
                let store = $make.await;
                $crate::step_cache::entries_are_saved_found_and_replaced(&store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expired_entries_are_not_found_and_are_pruned() {
                let store = $make.await;
                $crate::step_cache::expired_entries_are_not_found_and_are_pruned(&store).await;
            }
        }
    };
}
