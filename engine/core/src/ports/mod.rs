//! The ports: what the engine needs from the outside world. Each has an
//! embedded adapter and, later, a networked one; all must pass the contract
//! tests in `weft-testkit`.

mod clock;
mod container_runtime;
mod job_queue;
mod kernel_runtime;
mod plugin_store;
mod run_store;
mod token_store;
mod worker_registry;
mod workflow_store;

pub use clock::Clock;
pub use container_runtime::{
    ContainerExit, ContainerMount, ContainerRun, ContainerRuntime, LogSink, WORKER_LABEL,
};
pub use job_queue::{Delivery, JobQueue, Report, ReportDelivery, ReportKind};
pub use kernel_runtime::{
    BufferData, KernelLaunch, KernelOutput, KernelReport, KernelRuntime, LaunchArg, LaunchCode,
};
pub use plugin_store::PluginStore;
pub use run_store::{Claim, LogKey, LogSlice, RunQuery, RunRecord, RunStore};
pub use token_store::{Role, TokenRecord, TokenStore};
pub use worker_registry::{gpu_label, GpuSlot, Slots, WorkerInfo, WorkerRegistry};
pub use workflow_store::{SavedWorkflow, WorkflowStore};
