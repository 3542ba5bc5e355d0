//! Test helpers and the port contract tests. Every adapter of a port runs
//! the same contract through a macro, so the embedded adapters and the
//! networked ones are held to one standard:
//!
//! ```ignore
//! weft_testkit::job_queue_contract!(async { LocalJobQueue::new() });
//! weft_testkit::run_store_contract!(async { EmbeddedRunStore::open(dir).unwrap() });
//! ```

pub mod artifact_store;
pub mod audit_log;
pub mod change_bus;
pub mod clock;
pub mod concurrency_slots;
pub mod deliveries;
pub mod job_queue;
pub mod kernels;
mod locked_script;
mod memory_store;
pub mod plugin_store;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod run_removal;
pub mod run_store;
pub mod secret_store;
pub mod step_cache;
pub mod token_store;
pub mod worker_registry;
pub mod workflow_store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use clock::ManualClock;
pub use memory_store::{MemoryRunStore, MemoryState};

/// A name no other test (in this or another process) uses: for queue
/// names, key prefixes and run ids on shared services.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether a scratch directory prepared aside (`.<task>@<attempt>.<pid>.<n>`,
/// for a task whose name starts with `task`) is in one of the runs'
/// directories under a worker's `work_dir`: a job prepared ahead of its
/// start.
pub fn prepared_aside(work_dir: &std::path::Path, task: &str) -> bool {
    let entries = |dir: &std::path::Path| std::fs::read_dir(dir).into_iter().flatten().flatten();
    let prefix = format!(".{task}");
    entries(work_dir)
        .flat_map(|run| entries(&run.path()))
        .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
}

/// A running run's record, for store tests: workflow `contract`, created
/// at `created_at`; change what a test needs.
pub fn run_record(id: &str, created_at: u64) -> weft_core::ports::RunRecord {
    weft_core::ports::RunRecord {
        id: id.into(),
        workflow: "contract".into(),
        file: "contract.toml".into(),
        source: "[workflow]\nname = \"contract\"\n".into(),
        params: serde_json::Map::new(),
        status: weft_core::run::RunStatus::Running,
        created_at,
        finished_at: None,
        summary: None,
        plugins: Default::default(),
        submitted_by: None,
        limits: Default::default(),
        policy: None,
        cache: Default::default(),
        priority: 0,
    }
}

/// A minimal job for queue tests.
pub fn job(run_id: &str, step: &str, pool: &str) -> weft_core::run::Job {
    weft_core::run::Job {
        run_id: run_id.into(),
        workflow: "contract".into(),
        task: weft_core::run::TaskId::new(step, None),
        attempt: 1,
        action: weft_core::spec::StepAction::Run {
            command: weft_core::spec::Command::Shell(format!("echo {step}")),
        },
        env: Default::default(),
        secrets: Default::default(),
        inputs: serde_json::json!({"params": {}}),
        shared_params: None,
        timeout: None,
        pool: pool.into(),
        priority: 0,
        resources: Default::default(),
        pre_hooks: vec![],
        post_hooks: vec![],
        step_plugin: None,
        artifacts: Vec::new(),
        produces: Vec::new(),
        reply_to: None,
        requeued: 0,
    }
}
