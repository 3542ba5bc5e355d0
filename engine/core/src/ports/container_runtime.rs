//! Running containers: what the worker asks of a container engine.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The label every container a worker starts carries, with the worker's name.
pub const WORKER_LABEL: &str = "dev.weft.worker";

/// One container to run for one attempt. Safe by default: whatever is not
/// asked for here (privileges, capabilities, network, a writable root) the
/// runtime does not grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRun {
    /// Unique per attempt; the runtime's container name.
    pub name: String,
    /// Identify the run, step, attempt and worker: for cleanup and humans.
    pub labels: BTreeMap<String, String>,
    pub image: String,
    /// Replaces the image's entrypoint when given.
    pub command: Option<Vec<String>>,
    /// Replaces the image's default arguments when given.
    pub args: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub mounts: Vec<ContainerMount>,
    /// Host directory mounted read-write at `/weft` (inputs and outputs files).
    pub scratch: String,
    pub cpus: Option<f64>,
    pub memory_bytes: Option<u64>,
    /// Most processes at once.
    pub pids_limit: i64,
    pub network: bool,
    /// GPUs to hand to the container, as [`GpuSlot::device_id`] names them.
    ///
    /// [`GpuSlot::device_id`]: crate::ports::GpuSlot::device_id
    pub gpus: Vec<String>,
}

/// A host path a container sees; in a step's table, a `mounts` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ContainerMount {
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerExit {
    Exited(i64),
    /// The kernel killed it for going over its memory limit.
    OomKilled,
}

/// Where a running container's output goes, as it comes.
#[async_trait]
pub trait LogSink: Send + Sync {
    async fn write(&self, chunk: &[u8]);

    /// Output the container wrote to its stderr; a sink that keeps step
    /// logs marks its lines (`crate::log_format`).
    async fn write_err(&self, chunk: &[u8]) {
        self.write(chunk).await;
    }
}

/// The container runtime port.
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Pulls the image if it is missing (progress into `log`), creates and
    /// starts the container, streams its output into `log`, waits for it,
    /// and removes it. Dropping the future leaves the container running:
    /// call `kill` to stop it.
    async fn run(&self, run: &ContainerRun, log: &dyn LogSink) -> Result<ContainerExit, Error>;

    /// Stops and removes the container `name`, if it exists.
    async fn kill(&self, name: &str) -> Result<(), Error>;

    /// Removes every container labelled as run by `worker` (left by an
    /// earlier life of it); returns how many.
    async fn remove_orphans(&self, worker: &str) -> Result<usize, Error>;
}
