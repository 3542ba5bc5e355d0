//! Why a queued step waits: no live worker serves its pool, or none has the
//! GPUs it asks for. Run views say so instead of looking stuck.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_core::ports::{WorkerInfo, WorkerRegistry};

use crate::Error;

/// How long a read of the live workers serves the waiting reasons. A busy
/// run has queued steps in nearly every view; without this, each view of it
/// would also read every worker from the store.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The live workers as last read, for the waiting reasons.
#[derive(Default)]
pub struct LiveWorkers {
    last: Mutex<Option<(Instant, Arc<Vec<WorkerInfo>>)>>,
}

impl LiveWorkers {
    /// The live workers, read from `registry` at most once per [`FRESH_FOR`].
    pub(crate) async fn get(
        &self,
        registry: &dyn WorkerRegistry,
    ) -> Result<Arc<Vec<WorkerInfo>>, Error> {
        if let Some((at, workers)) = &*self.last.lock().expect("workers lock") {
            if at.elapsed() < FRESH_FOR {
                return Ok(workers.clone());
            }
        }
        let workers = Arc::new(registry.workers(crate::routes::now()).await?);
        *self.last.lock().expect("workers lock") = Some((Instant::now(), workers.clone()));
        Ok(workers)
    }
}

/// Steps with a task waiting in a queue.
pub(crate) fn queued_steps(state: &weft_core::run::RunState) -> Vec<usize> {
    (0..state.steps.len())
        .filter(|&i| {
            state.steps[i]
                .tasks
                .iter()
                .any(|t| t.status == weft_core::run::TaskStatus::Queued)
        })
        .collect()
}

/// Says why a queued step may wait for ever: no live worker serves its
/// pool, or none has the GPUs it asks for. A worker that joins later takes
/// it; until then the run shows the reason instead of looking stuck.
pub(crate) fn waiting_reason(
    spec: &weft_core::spec::Step,
    workers: &[WorkerInfo],
) -> Option<String> {
    let pool = &spec.pool;
    let serving: Vec<&WorkerInfo> = workers.iter().filter(|w| w.pools.contains(pool)).collect();
    let gpus = spec.resources.gpus as usize;
    let most = serving
        .iter()
        .map(|w| w.slots.gpus.len())
        .max()
        .unwrap_or(0);
    if serving.is_empty() {
        Some(format!("waiting: no live worker serves pool `{pool}`"))
    } else if gpus > most {
        Some(format!(
            "waiting: the step needs {gpus} GPU(s), and no live worker of pool `{pool}` has more than {most}"
        ))
    } else {
        None
    }
}
