//! The ports: what the engine needs from the outside world. Each has an
//! embedded adapter and, later, a networked one; all must pass the contract
//! tests in `weft-testkit`.

mod artifact_store;
mod audit_log;
mod change_bus;
mod clock;
mod concurrency_slots;
mod container_runtime;
mod deliveries;
mod fence;
mod job_queue;
mod kernel_runtime;
mod plugin_store;
mod run_removal;
mod run_store;
mod secret_store;
mod span_sink;
mod step_cache;
mod token_store;
mod worker_registry;
mod workflow_store;

pub use artifact_store::{ArtifactStore, StoredArtifact};
pub use audit_log::{AuditAction, AuditEntry, AuditLog, MAX_AUDIT_ENTRIES};
pub use change_bus::ChangeBus;
pub use clock::Clock;
pub use concurrency_slots::ConcurrencySlots;
pub use container_runtime::{
    ContainerExit, ContainerMount, ContainerRun, ContainerRuntime, LogSink, WORKER_LABEL,
};
pub use deliveries::{Deliveries, MAX_DELIVERIES};
pub use fence::{
    worker_of, Claim, ClaimDecision, ClaimRecord, ClaimState, Claimants, ClaimedExecution, Fence,
    LeaseRecord, CLAIM_HISTORY,
};
pub use job_queue::{Delivery, JobQueue, PriorityBand, Report, ReportDelivery, ReportKind};
pub use kernel_runtime::{
    BufferData, KernelLaunch, KernelOutput, KernelReport, KernelRuntime, LaunchArg, LaunchCode,
};
pub use plugin_store::PluginStore;
pub use run_removal::RunRemoval;
pub use run_store::{
    run_since_in_parts, AttemptClaims, AttemptId, EventLog, Leases, LogSlice, RunIndex, RunQuery,
    RunRecord, RunStore, StepLogs, LOG_CHUNK_BYTES, LOG_PAGE_BYTES,
};
pub use secret_store::SecretStore;
pub use span_sink::SpanSink;
pub use step_cache::{StepCache, MAX_CACHE_ENTRIES};
pub use token_store::{Role, TokenRecord, TokenStore};
pub use worker_registry::{gpu_label, GpuSlot, Slots, WorkerInfo, WorkerRegistry};
pub use workflow_store::{SavedWorkflow, WorkflowStore};

/// A backend's URL as messages show it: without its password.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            let at = if user.is_empty() { "" } else { "@" };
            format!("{scheme}://{user}{at}{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_messages_carry_no_password() {
        use super::redacted_url as r;
        assert_eq!(
            r("amqp://guest:s3cret@10.0.0.5:5672/%2f"),
            "amqp://guest@10.0.0.5:5672/%2f"
        );
        assert_eq!(r("redis://:s3cret@cache:6379/0"), "redis://cache:6379/0");
        assert_eq!(r("amqps://broker.example/vh"), "amqps://broker.example/vh");
        assert_eq!(r("amqp://u:p@w@host"), "amqp://u@host");
        assert_eq!(r("not a url"), "not a url");
    }
}
