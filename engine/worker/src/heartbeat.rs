//! The worker's heartbeat: who it is, its slots, what it runs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_core::ports::{Clock, Slots, WorkerInfo, WorkerRegistry};

use crate::gpus::Gpus;
use crate::Options;

/// Attempts running on this worker, as `run/task#attempt`.
pub(crate) type Running = Arc<Mutex<BTreeSet<String>>>;

fn memory_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Beats until dropped (the task is aborted by the worker on shutdown).
pub(crate) async fn beat(
    registry: Arc<dyn WorkerRegistry>,
    clock: Arc<dyn Clock>,
    options: Arc<Options>,
    running: Running,
    gpus: Arc<Gpus>,
    status_url: Option<String>,
) {
    let every = Duration::from_millis(options.heartbeat_ms.max(100));
    let started_at = clock.now();
    let mut slots = Slots {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_bytes: memory_bytes(),
        gpus: Vec::new(),
        concurrency: options.concurrency as u32,
    };
    let (host, pid) = (host(), std::process::id());
    loop {
        slots.gpus = gpus.snapshot();
        let info = WorkerInfo {
            name: options.name.clone(),
            host: host.clone(),
            pid,
            pools: options.pools.clone(),
            slots: slots.clone(),
            running: running
                .lock()
                .expect("running lock")
                .iter()
                .cloned()
                .collect(),
            started_at,
            seen_at: clock.now(),
            status_url: status_url.clone(),
        };
        if let Err(e) = registry
            .heartbeat(&info, options.heartbeat_ms.saturating_mul(3))
            .await
        {
            tracing::warn!("heartbeat failed: {e}");
        }
        tokio::time::sleep(every).await;
    }
}
