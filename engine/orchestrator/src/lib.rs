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
mod read_cache;
mod service;
mod timers;

pub use clock::SystemClock;
pub use driver::Progress;
pub use error::Error;
pub use options::Options;
pub use plugins::resolve_plugins;
pub use read_cache::ReadCache;
pub use service::{AbortFn, NewRun, RunChange, RunHandle, Service};

use weft_core::ports::{RunRecord, RunStore};
use weft_core::run::RunState;

/// Loads a run's record and rebuilds its state from its events (for `show`).
pub async fn load_run(
    store: &dyn RunStore,
    run_id: &str,
) -> Result<Option<(RunRecord, RunState)>, Error> {
    load_run_with(store, run_id, &ReadCache::new()).await
}

/// [`load_run`], with what `cache` kept from earlier reads: the parsed
/// workflow, and an unfinished run's state, to which only the events
/// since are applied.
pub async fn load_run_with(
    store: &dyn RunStore,
    run_id: &str,
    cache: &ReadCache,
) -> Result<Option<(RunRecord, RunState)>, Error> {
    let kept = cache.state(run_id);
    let seen = kept.as_ref().map_or(0, |(seen, _)| *seen);
    let Some((record, events)) = store.run_since(run_id, seen).await? else {
        return Ok(None);
    };
    let mut state = match kept {
        Some((_, state)) => state,
        None => {
            let plan = cache
                .plan(&record.source)
                .ok_or_else(|| Error::StoredWorkflow(record.id.clone()))?;
            RunState::new(record.id.clone(), plan, record.params.clone())
        }
    };
    let seen = seen + events.len() as u64;
    let changed = !events.is_empty();
    for event in events {
        weft_core::run::apply(&mut state, event);
    }
    if changed || seen == 0 {
        cache.keep(run_id, seen, &state);
    }
    state.plugins = record.plugins.clone();
    Ok(Some((record, state)))
}
