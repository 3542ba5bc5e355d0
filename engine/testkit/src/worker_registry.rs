//! The `WorkerRegistry` contract.

use weft_core::ports::{Slots, WorkerInfo, WorkerRegistry};

use crate::unique;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn info(name: &str, running: &[&str]) -> WorkerInfo {
    WorkerInfo {
        name: name.into(),
        host: "test".into(),
        pid: 1,
        pools: vec!["default".into()],
        slots: Slots {
            cpus: 2,
            memory_bytes: 1 << 30,
            gpus: vec![],
            concurrency: 2,
        },
        running: running.iter().map(|s| s.to_string()).collect(),
        started_at: now(),
        seen_at: now(),
        status_url: None,
    }
}

fn mine(all: Vec<WorkerInfo>, names: &[&String]) -> Vec<WorkerInfo> {
    all.into_iter()
        .filter(|w| names.contains(&&w.name))
        .collect()
}

pub async fn a_beating_worker_is_listed_with_its_latest_beat(r: &dyn WorkerRegistry) {
    let (a, b) = (unique("worker"), unique("worker"));
    r.heartbeat(&info(&a, &[]), 60_000).await.unwrap();
    r.heartbeat(&info(&b, &[]), 60_000).await.unwrap();
    r.heartbeat(&info(&a, &["run/x#1"]), 60_000).await.unwrap();
    let listed = mine(r.workers(now()).await.unwrap(), &[&a, &b]);
    assert_eq!(listed.len(), 2);
    let wa = listed.iter().find(|w| w.name == a).unwrap();
    assert_eq!(wa.running, vec!["run/x#1".to_string()]);
}

pub async fn a_silent_worker_drops_out(r: &dyn WorkerRegistry) {
    let a = unique("worker");
    r.heartbeat(&info(&a, &[]), 300).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(mine(r.workers(now()).await.unwrap(), &[&a]).is_empty());
}

pub async fn a_leaving_worker_is_gone_at_once(r: &dyn WorkerRegistry) {
    let a = unique("worker");
    r.heartbeat(&info(&a, &[]), 60_000).await.unwrap();
    r.leave(&a).await.unwrap();
    assert!(mine(r.workers(now()).await.unwrap(), &[&a]).is_empty());
}

/// Runs every `WorkerRegistry` contract case as its own test.
#[macro_export]
macro_rules! worker_registry_contract {
    ($make:expr) => {
        mod worker_registry_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::worker_registry_contract!(@cases $make;
                a_beating_worker_is_listed_with_its_latest_beat,
                a_silent_worker_drops_out,
                a_leaving_worker_is_gone_at_once);
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let registry = $make.await;
                $crate::worker_registry::$case(&registry).await;
            }
        )*
    };
}
