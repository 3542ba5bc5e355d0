//! Counters a worker keeps, for its status endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    pub slots: AtomicU64,
    pub running: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    /// Deliveries that found their attempt held by another live worker
    /// (the broker redelivered a job still running) and waited.
    pub deferred: AtomicU64,
}

impl Stats {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "# TYPE weft_worker_slots gauge\nweft_worker_slots {}\n# TYPE weft_worker_running gauge\nweft_worker_running {}\n# TYPE weft_worker_attempts_total counter\nweft_worker_attempts_total{{outcome=\"succeeded\"}} {}\nweft_worker_attempts_total{{outcome=\"failed\"}} {}\n# TYPE weft_worker_deferred_total counter\nweft_worker_deferred_total {}\n",
            g(&self.slots),
            g(&self.running),
            g(&self.succeeded),
            g(&self.failed),
            g(&self.deferred)
        )
    }
}
