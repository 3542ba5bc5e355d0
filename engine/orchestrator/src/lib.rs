//! The orchestrator: creates runs, feeds events (worker reports, timers,
//! cancellation) through `weft_core::run::apply`, records each event in the
//! [`RunStore`](weft_core::ports::RunStore) before acting on it, and carries
//! out the actions (publishing jobs, arming timers, aborting attempts).
//!
//! One [`Service`] drives many runs: a router hands each report to its run's
//! driver; a driver holds a lease on its run in the store, so two
//! orchestrators never drive the same run, and a run whose orchestrator died
//! is resumed from its event log by the next one. Depends on `weft-core` only.

mod clock;
mod driver;
mod error;
mod options;
mod plugins;
mod service;
mod timers;

pub use clock::SystemClock;
pub use driver::Progress;
pub use error::Error;
pub use options::Options;
pub use plugins::resolve_plugins;
pub use service::{AbortFn, NewRun, RunChange, RunHandle, Service};

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
    let mut state = RunState::replay(
        record.id.clone(),
        Plan::new(workflow),
        record.params.clone(),
        events,
    );
    state.plugins = record.plugins.clone();
    Ok(Some((record, state)))
}
