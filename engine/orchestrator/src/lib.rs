//! The orchestrator: creates runs, feeds events (worker reports, timers,
//! cancellation) through `weft_core::run::apply`, records each event in the
//! [`RunStore`](weft_core::ports::RunStore) before acting on it, and carries
//! out the actions (publishing jobs, arming timers, aborting attempts).
//!
//! One [`Service`] drives many runs: a router hands each report to its run's
//! driver; a driver holds a lease on its run in the store, so two
//! orchestrators never drive the same run, and a run whose orchestrator died
//! is resumed from its event log by the next one. Depends on `weft-core` only.

mod aborts;
mod adoption;
mod caching;
mod children;
mod clock;
mod dead_letters;
mod driver;
mod error;
mod gate;
mod inbox;
mod late;
mod lease;
mod options;
mod plugins;
mod read_cache;
mod router;
mod service;
mod signals;
mod timers;
mod window;

pub use aborts::abort_through_claims;
pub use children::ChildRuns;
pub use clock::SystemClock;
pub use driver::Progress;
pub use error::Error;
pub use options::Options;
pub use plugins::resolve_plugins;
pub use read_cache::ReadCache;
pub use service::{AbortFn, NewRun, RunChange, RunHandle, RunIds, Service, StepCaching, Submitter};

use std::sync::Arc;

use weft_core::ports::{RunRecord, RunStore};
use weft_core::run::RunState;

/// Loads a run's record and rebuilds its state from its events (for `show`).
pub async fn load_run(
    store: &dyn RunStore,
    run_id: &str,
) -> Result<Option<(RunRecord, RunState)>, Error> {
    let found = load_run_with(store, run_id, &ReadCache::new()).await?;
    // The cache is gone: the state is this caller's alone, not copied.
    Ok(found.map(|(record, state)| (record, Arc::unwrap_or_clone(state))))
}

/// [`load_run`], with what `cache` kept from earlier reads: the parsed
/// workflow, and an unfinished run's state, to which only the events
/// since are applied.
pub async fn load_run_with(
    store: &dyn RunStore,
    run_id: &str,
    cache: &ReadCache,
) -> Result<Option<(RunRecord, Arc<RunState>)>, Error> {
    if let Some(seen) = cache.seen(run_id) {
        let Some((record, events)) = store.run_since(run_id, seen).await? else {
            return Ok(None);
        };
        if let Some(state) = cache.advance(run_id, seen, events, &record.plugins) {
            return Ok(Some((record, state)));
        }
    }
    // Not kept (or kept from elsewhere meanwhile): from the first event.
    let Some((record, events)) = store.run_since(run_id, 0).await? else {
        return Ok(None);
    };
    let plan = cache
        .plan(&record.source)
        .ok_or_else(|| Error::StoredWorkflow(record.id.clone()))?;
    let seen = events.len() as u64;
    let state = Arc::new(RunState::of_record(&record, plan, events));
    cache.keep(run_id, seen, state.clone());
    Ok(Some((record, state)))
}
