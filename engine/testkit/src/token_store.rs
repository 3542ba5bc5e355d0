//! The `TokenStore` contract.

use weft_core::ports::{Role, TokenRecord, TokenStore};
use weft_core::Error;

use crate::unique;

fn record(id: &str, role: Role) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        name: format!("{id} name"),
        role,
        secret_hash: "ab".repeat(32),
        created_at: 1,
    }
}

pub async fn a_token_reads_back_and_revokes(s: &dyn TokenStore) {
    let (a, b) = (unique("tok"), unique("tok"));
    s.add_token(&record(&a, Role::Viewer)).await.unwrap();
    s.add_token(&record(&b, Role::Admin)).await.unwrap();
    assert_eq!(s.token(&a).await.unwrap(), Some(record(&a, Role::Viewer)));
    let listed: Vec<String> = s
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .filter(|id| *id == a || *id == b)
        .collect();
    assert_eq!(listed.len(), 2);
    s.revoke_token(&a).await.unwrap();
    assert_eq!(s.token(&a).await.unwrap(), None);
    assert!(matches!(s.revoke_token(&a).await, Err(Error::NotFound(_))));
}

pub async fn a_token_id_is_added_once(s: &dyn TokenStore) {
    let a = unique("tok");
    s.add_token(&record(&a, Role::Viewer)).await.unwrap();
    assert!(matches!(
        s.add_token(&record(&a, Role::Admin)).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(s.token(&a).await.unwrap().unwrap().role, Role::Viewer);
}

/// Runs every `TokenStore` contract case as its own test.
#[macro_export]
macro_rules! token_store_contract {
    ($make:expr) => {
        mod token_store_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::token_store_contract!(@cases $make; a_token_reads_back_and_revokes, a_token_id_is_added_once);
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make.await;
                $crate::token_store::$case(&store).await;
            }
        )*
    };
}
