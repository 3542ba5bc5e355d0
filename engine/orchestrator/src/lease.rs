//! Keeping a run's lease, from its own task, from the moment it is taken
//! until the driver is done. A driver busy for a long time (replaying a
//! 20,000-step run it takes over, applying a large batch, on a machine
//! starved of CPU) would otherwise renew late, lose the run to another
//! server, which replays it just as slowly and loses it back: the run
//! handed to and fro, never moving. Its own task keeps renewing while the
//! driver works; the driver hears only when the lease is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use weft_core::ports::Fence;

use crate::service::Shared;

pub(crate) struct LeaseKeeper {
    /// Ends (with `()`) when another owner holds the lease.
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Renews `run_id`'s lease under `fence` every third of its time to
    /// live, sooner again when the store fails, until another owner holds
    /// it (then `lost` resolves) or the keeper is stopped or dropped.
    pub fn start(shared: &Arc<Shared>, run_id: &str, fence: Fence) -> Self {
        let (shared, run_id) = (shared.clone(), run_id.to_string());
        let task = tokio::spawn(async move {
            let ttl = shared.options.lease_ttl_ms;
            let every = Duration::from_millis((ttl / 3).max(50));
            let again = Duration::from_millis((ttl / 10).clamp(50, 1_000));
            let mut wait = every;
            loop {
                tokio::time::sleep(wait).await;
                let renewed = shared
                    .store
                    .lease(&run_id, &shared.options.owner, shared.clock.now(), ttl)
                    .await;
                wait = match renewed {
                    Ok(Some(f)) if f == fence => every,
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(run = %run_id, "renewing the lease: {e}; trying again");
                        again
                    }
                };
            }
        });
        Self { task }
    }

    /// Resolves once another owner holds the lease; never otherwise
    /// (a stopped keeper is no lost lease). Not to be awaited again once
    /// it has resolved.
    pub async fn lost(&mut self) {
        if (&mut self.task).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Stops renewing, and waits until it has (before the lease is
    /// released, so a renewal does not land behind the release).
    pub async fn stop(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
