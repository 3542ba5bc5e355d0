//! `GET /metrics` of `weft serve`, in Prometheus text format: runs and
//! attempts by outcome, attempt and plugin-hook durations (counted from the
//! live change stream), runs driven now, queue depth per pool, and worker
//! slots.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use weft_core::run::{Event, Outcome, RunStatus};
use weft_orchestrator::Service;

/// Upper bounds of the attempt-duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 3600.0];

/// Upper bounds of the hook-duration histogram, in seconds: hooks are fast.
const HOOK_BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
const PHASES: [&str; 2] = ["pre", "post"];

/// Counters kept from the change stream.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    runs: [AtomicU64; 3],
    attempts: [AtomicU64; 2],
    buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_ms: AtomicU64,
    /// Per phase (pre, post).
    hook_buckets: [[AtomicU64; HOOK_BUCKETS.len()]; 2],
    hook_count: [AtomicU64; 2],
    hook_sum_us: [AtomicU64; 2],
    hook_failed: [AtomicU64; 2],
}

impl ServerMetrics {
    /// Counts every change of `service`'s runs from now on.
    pub fn collect(service: &Service) -> Arc<Self> {
        let metrics = Arc::new(Self::default());
        let (m, mut changes) = (metrics.clone(), service.watch());
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(change) => m.count(
                        &change.event,
                        change.finished.then_some(change.status),
                        change.duration_ms,
                    ),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
        metrics
    }

    /// `finished`: the run's final status, if this change ended it.
    fn count(&self, event: &Event, finished: Option<RunStatus>, duration_ms: Option<u64>) {
        if let Event::TaskFinished { outcome, hooks, .. } = event {
            for hook in hooks {
                let p = usize::from(hook.phase == "post");
                let secs = hook.ms / 1000.0;
                for (b, bound) in HOOK_BUCKETS.iter().enumerate() {
                    if secs <= *bound {
                        self.hook_buckets[p][b].fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.hook_count[p].fetch_add(1, Ordering::Relaxed);
                self.hook_sum_us[p].fetch_add((hook.ms * 1000.0) as u64, Ordering::Relaxed);
                if hook.error.is_some() {
                    self.hook_failed[p].fetch_add(1, Ordering::Relaxed);
                }
            }
            let i = usize::from(matches!(outcome, Outcome::Failed { .. }));
            self.attempts[i].fetch_add(1, Ordering::Relaxed);
            if let Some(ms) = duration_ms {
                let secs = ms as f64 / 1000.0;
                for (b, bound) in BUCKETS.iter().enumerate() {
                    if secs <= *bound {
                        self.buckets[b].fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.duration_count.fetch_add(1, Ordering::Relaxed);
                self.duration_sum_ms.fetch_add(ms, Ordering::Relaxed);
            }
        }
        let i = match finished {
            Some(RunStatus::Succeeded) => 0,
            Some(RunStatus::Failed) => 1,
            Some(RunStatus::Cancelled) => 2,
            _ => return,
        };
        self.runs[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition, with the gauges given by the caller.
    pub fn render(
        &self,
        active_runs: usize,
        jobs_published: u64,
        depths: &[(String, u64)],
        slots: u64,
        busy: u64,
        workers: usize,
    ) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# TYPE weft_runs_active gauge\nweft_runs_active {active_runs}"
        );
        let _ = writeln!(
            out,
            "# TYPE weft_jobs_published_total counter\nweft_jobs_published_total {jobs_published}"
        );
        let _ = writeln!(out, "# TYPE weft_runs_finished_total counter");
        for (i, s) in ["succeeded", "failed", "cancelled"].iter().enumerate() {
            let _ = writeln!(
                out,
                "weft_runs_finished_total{{status=\"{s}\"}} {}",
                g(&self.runs[i])
            );
        }
        let _ = writeln!(out, "# TYPE weft_attempts_finished_total counter");
        for (i, s) in ["succeeded", "failed"].iter().enumerate() {
            let _ = writeln!(
                out,
                "weft_attempts_finished_total{{outcome=\"{s}\"}} {}",
                g(&self.attempts[i])
            );
        }
        let _ = writeln!(out, "# TYPE weft_attempt_duration_seconds histogram");
        for (b, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "weft_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                g(&self.buckets[b])
            );
        }
        let count = g(&self.duration_count);
        let _ = writeln!(
            out,
            "weft_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "weft_attempt_duration_seconds_sum {}",
            g(&self.duration_sum_ms) as f64 / 1000.0
        );
        let _ = writeln!(out, "weft_attempt_duration_seconds_count {count}");
        let _ = writeln!(out, "# TYPE weft_hook_duration_seconds histogram");
        for (p, phase) in PHASES.iter().enumerate() {
            for (b, bound) in HOOK_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "weft_hook_duration_seconds_bucket{{phase=\"{phase}\",le=\"{bound}\"}} {}",
                    g(&self.hook_buckets[p][b])
                );
            }
            let count = g(&self.hook_count[p]);
            let _ = writeln!(
                out,
                "weft_hook_duration_seconds_bucket{{phase=\"{phase}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "weft_hook_duration_seconds_sum{{phase=\"{phase}\"}} {}",
                g(&self.hook_sum_us[p]) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "weft_hook_duration_seconds_count{{phase=\"{phase}\"}} {count}"
            );
        }
        let _ = writeln!(out, "# TYPE weft_hook_failures_total counter");
        for (p, phase) in PHASES.iter().enumerate() {
            let _ = writeln!(
                out,
                "weft_hook_failures_total{{phase=\"{phase}\"}} {}",
                g(&self.hook_failed[p])
            );
        }
        let _ = writeln!(out, "# TYPE weft_queue_depth gauge");
        for (pool, depth) in depths {
            let _ = writeln!(out, "weft_queue_depth{{pool=\"{pool}\"}} {depth}");
        }
        let _ = writeln!(out, "# TYPE weft_workers gauge\nweft_workers {workers}");
        let _ = writeln!(
            out,
            "# TYPE weft_worker_slots gauge\nweft_worker_slots {slots}"
        );
        let _ = writeln!(
            out,
            "# TYPE weft_worker_slots_busy gauge\nweft_worker_slots_busy {busy}"
        );
        out
    }
}
