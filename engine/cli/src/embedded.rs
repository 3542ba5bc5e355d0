//! Embedded mode: an in-process queue and worker over the redb store.

use std::path::Path;
use std::sync::Arc;

use weft_core::ports::{Clock, JobQueue, RunStore};
use weft_orchestrator::{Service, SystemClock};
use weft_queue_local::LocalJobQueue;
use weft_store_embedded::EmbeddedRunStore;
use weft_worker::{Options as WorkerOptions, Worker};

pub fn open_store(data_dir: &Path) -> anyhow::Result<Arc<dyn RunStore>> {
    let store = EmbeddedRunStore::open(data_dir)
        .map_err(|e| anyhow::anyhow!("opening the store in {}: {e}", data_dir.display()))?;
    Ok(Arc::new(store))
}

/// An orchestrator and a worker sharing one local queue.
pub fn engine(store: Arc<dyn RunStore>, worker_options: WorkerOptions) -> (Service, Worker) {
    let queue: Arc<dyn JobQueue> = Arc::new(LocalJobQueue::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let worker = Worker::new(queue.clone(), store.clone(), clock.clone(), worker_options);
    let aborts = worker.aborts();
    let abort = Arc::new(
        move |run: &str, task: &weft_core::run::TaskId, attempt: u32| {
            aborts.abort(run, task, attempt)
        },
    );
    (
        Service::new(
            queue,
            store,
            clock,
            abort,
            weft_orchestrator::Options::default(),
        ),
        worker,
    )
}
