//! The orchestrator's settings.

use serde::Deserialize;

/// How the orchestrator drives runs. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Options {
    /// This orchestrator's name in leases. Default: `<hostname>-<pid>`.
    pub owner: String,
    /// How long a run's lease lasts without renewal, in milliseconds; a run
    /// whose orchestrator died is taken over after this. Default: 15000.
    pub lease_ttl_ms: u64,
    /// Extra time past a step's timeout for its worker to report before the
    /// orchestrator gives up on the attempt, in milliseconds. Default: 5000.
    pub deadline_grace_ms: u64,
    /// Whether dispatched jobs are lost when the orchestrator's process
    /// ends (an in-process queue): a run taken over then has its running
    /// attempts dispatched again. Set by the binary, not by configuration.
    #[serde(skip)]
    pub jobs_lost_on_restart: bool,
}

impl Default for Options {
    fn default() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "weft".into());
        Self {
            owner: format!("{host}-{}", std::process::id()),
            lease_ttl_ms: 15_000,
            deadline_grace_ms: 5_000,
            jobs_lost_on_restart: false,
        }
    }
}
