//! The `SecretStore` contract.

use weft_core::ports::SecretStore;
use weft_core::secrets::{SecretScope, StoredSecret};

fn secret(name: &str, sealed: &str) -> StoredSecret {
    StoredSecret {
        name: name.into(),
        key_id: "0a1b2c3d".into(),
        nonce: "bm9uY2U=".into(),
        sealed: sealed.into(),
        scope: SecretScope {
            workflows: vec!["etl-*".into()],
            pools: vec![],
        },
        set_by: Some("admin".into()),
        set_at: 9,
    }
}

pub async fn secrets_are_set_read_listed_replaced_and_removed(s: &dyn SecretStore) {
    assert!(s.secret("A").await.unwrap().is_none());
    s.put_secret(&secret("B", "c2VhbGVk")).await.unwrap();
    s.put_secret(&secret("A", "b2xk")).await.unwrap();
    assert_eq!(s.secret("A").await.unwrap(), Some(secret("A", "b2xk")));
    // Replacing keeps one entry, with the new value.
    s.put_secret(&secret("A", "bmV3")).await.unwrap();
    let all = s.secrets().await.unwrap();
    let names: Vec<&str> = all.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["A", "B"]);
    assert_eq!(all[0].sealed, "bmV3");
    assert_eq!(all[0].scope.workflows, ["etl-*"]);
    assert!(s.remove_secret("A").await.unwrap());
    assert!(!s.remove_secret("A").await.unwrap());
    assert!(s.secret("A").await.unwrap().is_none());
    assert_eq!(s.secrets().await.unwrap().len(), 1);
}

#[macro_export]
macro_rules! secret_store_contract {
    ($make:expr) => {
        mod secret_store_contract {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn secrets_are_set_read_listed_replaced_and_removed() {
                let store = $make.await;
                $crate::secret_store::secrets_are_set_read_listed_replaced_and_removed(&store)
                    .await;
            }
        }
    };
}
