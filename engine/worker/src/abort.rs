//! Stopping attempts on request (cancel, deadline) wherever they run in this worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use weft_core::run::TaskId;

type Key = (String, TaskId, u32);

/// Shared between the worker and whoever asks for aborts (the orchestrator
/// in embedded mode). An abort for an attempt not running here is remembered
/// briefly, in case its job is still in the queue.
#[derive(Clone, Default)]
pub struct Aborts {
    inner: Arc<Mutex<HashMap<Key, watch::Sender<bool>>>>,
}

impl Aborts {
    /// Stops `attempt` of `task` in run `run_id`.
    pub fn abort(&self, run_id: &str, task: &TaskId, attempt: u32) {
        let mut map = self.inner.lock().expect("aborts lock");
        let key = (run_id.to_string(), task.clone(), attempt);
        map.entry(key)
            .or_insert_with(|| watch::channel(false).0)
            .send_replace(true);
    }

    /// A receiver that turns true when the attempt is aborted.
    pub(crate) fn watch(&self, run_id: &str, task: &TaskId, attempt: u32) -> watch::Receiver<bool> {
        let mut map = self.inner.lock().expect("aborts lock");
        map.entry((run_id.to_string(), task.clone(), attempt))
            .or_insert_with(|| watch::channel(false).0)
            .subscribe()
    }

    pub(crate) fn forget(&self, run_id: &str, task: &TaskId, attempt: u32) {
        self.inner.lock().expect("aborts lock").remove(&(
            run_id.to_string(),
            task.clone(),
            attempt,
        ));
    }
}
