//! The `AuditLog` contract.

use weft_core::ports::{AuditAction, AuditEntry, AuditLog, Role};

fn entry(target: &str) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at: 1,
        who: Some("ci".into()),
        role: Role::Operator,
        action: AuditAction::SubmitRun,
        target: target.into(),
    }
}

pub async fn entries_read_back_newest_first_and_page(s: &dyn AuditLog) {
    for i in 0..5 {
        s.record(&entry(&format!("run{i}"))).await.unwrap();
    }
    let all = s.audit(10, None).await.unwrap();
    let targets: Vec<&str> = all.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["run4", "run3", "run2", "run1", "run0"]);
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "{all:?}");
    assert_eq!(all[0].who.as_deref(), Some("ci"));
    let page = s.audit(2, Some(all[1].seq)).await.unwrap();
    let targets: Vec<&str> = page.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["run2", "run1"]);
    assert!(s.audit(0, None).await.unwrap().is_empty());
}

pub async fn entries_recorded_at_once_get_their_own_place(s: &dyn AuditLog) {
    let records = (0..20).map(|i| {
        let e = entry(&format!("r{i}"));
        async move { s.record(&e).await }
    });
    for r in futures_util::future::join_all(records).await {
        r.unwrap();
    }
    let all = s.audit(100, None).await.unwrap();
    assert_eq!(all.len(), 20);
    let mut seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 20, "{all:?}");
}

#[macro_export]
macro_rules! audit_log_contract {
    ($make:expr) => {
        mod audit_log_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::audit_log_contract!(@cases $make;
                entries_read_back_newest_first_and_page,
                entries_recorded_at_once_get_their_own_place);
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make.await;
                $crate::audit_log::$case(&store).await;
            }
        )*
    };
}
