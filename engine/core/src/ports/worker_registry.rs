//! Live workers: who they are, which pools they serve, their resource slots
//! and what they are running, refreshed by heartbeats.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::run::Millis;
use crate::Error;

/// A worker's resource slots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slots {
    pub cpus: u32,
    pub memory_bytes: u64,
    /// Its GPUs; empty where there is no GPU driver.
    #[serde(default)]
    pub gpus: Vec<GpuSlot>,
    /// Steps it runs at once.
    pub concurrency: u32,
}

/// One GPU of a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GpuSlot {
    /// Its index on the machine, in PCI order (as `nvidia-smi` numbers it).
    pub index: u32,
    pub name: String,
    #[serde(default)]
    pub memory_bytes: u64,
    /// The driver's `GPU-…` identifier, when known: it names the same GPU
    /// whatever `CUDA_DEVICE_ORDER` or the worker's own
    /// `CUDA_VISIBLE_DEVICES` say, so steps are handed GPUs by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Whether a step holds it now.
    #[serde(default)]
    pub busy: bool,
}

impl GpuSlot {
    /// How `CUDA_VISIBLE_DEVICES` and container device requests name this
    /// GPU: its UUID when known, else its index.
    pub fn device_id(&self) -> String {
        self.uuid.clone().unwrap_or_else(|| self.index.to_string())
    }
}

/// A GPU named by its [`GpuSlot::device_id`], as messages write it:
/// `GPU 0`, or the UUID as it is (`GPU-…`, `MIG-…`).
pub fn gpu_label(device_id: &str) -> String {
    if device_id.starts_with("GPU-") || device_id.starts_with("MIG-") {
        device_id.to_string()
    } else {
        format!("GPU {device_id}")
    }
}

/// What a worker says in each heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub pools: Vec<String>,
    pub slots: Slots,
    /// Attempts running now, as `run/task#attempt`.
    pub running: Vec<String>,
    pub started_at: Millis,
    pub seen_at: Millis,
    /// Its `/healthz` and `/metrics` address, if it serves one.
    #[serde(default)]
    pub status_url: Option<String>,
}

/// The worker registry port.
#[async_trait]
pub trait WorkerRegistry: Send + Sync {
    /// Records a heartbeat.
    ///
    /// # Contract
    /// The worker is listed until `ttl_ms` after `info.seen_at` unless it
    /// beats again; a later beat replaces the earlier one.
    async fn heartbeat(&self, info: &WorkerInfo, ttl_ms: u64) -> Result<(), Error>;

    /// Live workers, by name.
    async fn workers(&self, now: Millis) -> Result<Vec<WorkerInfo>, Error>;

    /// Removes a worker that is shutting down.
    async fn leave(&self, name: &str) -> Result<(), Error>;
}
