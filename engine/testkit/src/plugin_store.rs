//! The `PluginStore` contract.

use weft_core::plugins::{PluginRecord, PluginWorld};
use weft_core::ports::PluginStore;
use weft_core::Error;

use crate::unique;

fn record(name: &str, version: &str, sha256: &str, at: u64) -> PluginRecord {
    PluginRecord {
        name: name.into(),
        version: version.into(),
        sha256: sha256.into(),
        size: 3,
        world: PluginWorld::Hook,
        exports: vec!["weft:plugin/hook@0.1.0#pre-process".into()],
        imports: vec![],
        uploaded_at: at,
    }
}

pub async fn versions_are_immutable_and_bytes_content_addressed(s: &dyn PluginStore) {
    let name = unique("plugin");
    let (a, b) = (unique("sha-a"), unique("sha-b"));
    // A record needs its bytes first: nothing half-stored.
    assert!(matches!(
        s.put_plugin(&record(&name, "1.0.0", &a, 1)).await,
        Err(Error::NotFound(_))
    ));
    assert!(s.plugin_versions(&name).await.unwrap().is_empty());
    s.put_wasm(&a, b"aaa").await.unwrap();
    s.put_wasm(&a, b"aaa").await.unwrap();
    s.put_wasm(&b, b"bbb").await.unwrap();
    assert_eq!(s.wasm(&a).await.unwrap().as_deref(), Some(&b"aaa"[..]));
    assert_eq!(s.wasm(&unique("sha")).await.unwrap(), None);

    s.put_plugin(&record(&name, "1.0.0", &a, 1)).await.unwrap();
    // Same version, same bytes: a no-op. Other bytes: refused.
    s.put_plugin(&record(&name, "1.0.0", &a, 5)).await.unwrap();
    assert!(matches!(
        s.put_plugin(&record(&name, "1.0.0", &b, 6)).await,
        Err(Error::Conflict(_))
    ));
    s.put_plugin(&record(&name, "1.1.0", &b, 2)).await.unwrap();
    let versions = s.plugin_versions(&name).await.unwrap();
    let listed: Vec<(&str, &str, u64)> = versions
        .iter()
        .map(|r| (r.version.as_str(), r.sha256.as_str(), r.uploaded_at))
        .collect();
    assert_eq!(listed, [("1.0.0", a.as_str(), 1), ("1.1.0", b.as_str(), 2)]);
    assert_eq!(versions[0], record(&name, "1.0.0", &a, 1));
    let all = s.plugins().await.unwrap();
    assert_eq!(all.iter().filter(|r| r.name == name).count(), 2);

    assert_eq!(s.remove_plugin(&name, Some("1.0.0")).await.unwrap(), 1);
    assert_eq!(s.remove_plugin(&name, Some("1.0.0")).await.unwrap(), 0);
    assert_eq!(s.plugin_versions(&name).await.unwrap().len(), 1);
    assert_eq!(s.remove_plugin(&name, None).await.unwrap(), 1);
    assert!(s.plugin_versions(&name).await.unwrap().is_empty());
    assert!(!s.plugins().await.unwrap().iter().any(|r| r.name == name));
    // Runs that resolved the bytes can still fetch them.
    assert_eq!(s.wasm(&a).await.unwrap().as_deref(), Some(&b"aaa"[..]));
}

/// Runs every `PluginStore` contract case as its own test.
#[macro_export]
macro_rules! plugin_store_contract {
    ($make:expr) => {
        mod plugin_store_contract {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn versions_are_immutable_and_bytes_content_addressed() {
                let store = $make.await;
                $crate::plugin_store::versions_are_immutable_and_bytes_content_addressed(&store)
                    .await;
            }
        }
    };
}
