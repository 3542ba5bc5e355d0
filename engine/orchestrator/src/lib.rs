//! The orchestrator: creates runs, feeds events (worker reports, timers,
//! cancellation) through `weft_core::run::apply`, records each event in the
//! [`RunStore`](weft_core::ports::RunStore) before acting on it, and carries
//! out the actions (publishing jobs, arming timers, aborting attempts).
//! Depends on `weft-core` only.

mod clock;
mod driver;
mod error;
mod timers;

pub use clock::SystemClock;
pub use driver::{AbortFn, NewRun, Orchestrator, Progress};
pub use error::Error;

use weft_core::ports::{RunRecord, RunStore};
use weft_core::run::{Plan, RunState};

/// Loads a run's record and rebuilds its state from its events (for `show`).
pub async fn load_run(
    store: &dyn RunStore,
    run_id: &str,
) -> Result<Option<(RunRecord, RunState)>, Error> {
    let Some(record) = store.get_run(run_id).await? else {
        return Ok(None);
    };
    let workflow = weft_core::spec::load(&record.source)
        .map_err(|_| Error::StoredWorkflow(record.id.clone()))?;
    let events = store.events(run_id).await?;
    let state = RunState::replay(
        record.id.clone(),
        Plan::new(workflow),
        record.params.clone(),
        events,
    );
    Ok(Some((record, state)))
}
