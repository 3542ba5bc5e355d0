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
    inner: Arc<Mutex<HashMap<Key, Entry>>>,
}

/// One attempt's abort signal, and how many of its executions here watch
/// it: a job delivered again can run a second execution beside the first.
struct Entry {
    signal: watch::Sender<bool>,
    watching: usize,
}

impl Entry {
    fn new() -> Self {
        Self {
            signal: watch::channel(false).0,
            watching: 0,
        }
    }
}

impl Aborts {
    /// Stops `attempt` of `task` in run `run_id`: every execution of it here.
    pub fn abort(&self, run_id: &str, task: &TaskId, attempt: u32) {
        let mut map = self.inner.lock().expect("aborts lock");
        let key = (run_id.to_string(), task.clone(), attempt);
        map.entry(key)
            .or_insert_with(Entry::new)
            .signal
            .send_replace(true);
    }

    /// A receiver that turns true when the attempt is aborted; each one
    /// taken is given back with [`Aborts::forget`].
    pub(crate) fn watch(&self, run_id: &str, task: &TaskId, attempt: u32) -> watch::Receiver<bool> {
        let mut map = self.inner.lock().expect("aborts lock");
        let entry = map
            .entry((run_id.to_string(), task.clone(), attempt))
            .or_insert_with(Entry::new);
        entry.watching += 1;
        entry.signal.subscribe()
    }

    /// One execution of the attempt is done watching; the attempt is
    /// forgotten once none is, so another execution of it still here hears
    /// a later abort.
    pub(crate) fn forget(&self, run_id: &str, task: &TaskId, attempt: u32) {
        let mut map = self.inner.lock().expect("aborts lock");
        let key = (run_id.to_string(), task.clone(), attempt);
        if let Some(entry) = map.get_mut(&key) {
            entry.watching = entry.watching.saturating_sub(1);
            if entry.watching == 0 {
                map.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_is_forgotten_once_none_of_its_executions_here_watches_it() {
        let aborts = Aborts::default();
        let task = TaskId::new("t", None);
        let first = aborts.watch("r", &task, 1);
        let second = aborts.watch("r", &task, 1);
        aborts.forget("r", &task, 1);
        aborts.abort("r", &task, 1);
        assert!(*second.borrow(), "the execution still here hears it");
        assert!(*first.borrow());
        aborts.forget("r", &task, 1);
        assert!(aborts.inner.lock().unwrap().is_empty(), "forgotten");

        // An abort before any execution watches is remembered for it.
        aborts.abort("r", &task, 2);
        assert!(*aborts.watch("r", &task, 2).borrow());
        aborts.forget("r", &task, 2);
        assert!(aborts.inner.lock().unwrap().is_empty());
    }
}
