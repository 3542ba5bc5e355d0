//! Taking runs over: a run whose server is gone (its lease expired) is
//! adopted by another, which replays its event log and drives it on. Every
//! lease period each server looks for such runs; a report of a run no one
//! drives adopts it at once (`router.rs`).

use std::time::Duration;

use tokio::task::JoinHandle;
use weft_core::ports::Fence;
use weft_core::run::{Event, RunState};

use crate::service::{RunHandle, Service};
use crate::Error;

/// What adopting a run came to.
pub(crate) enum Adoption {
    Started(RunHandle),
    /// It is driven, or being started, here already.
    Busy,
    /// It has ended, or is unknown.
    Ended,
}

impl Service {
    pub(crate) async fn take_lease(&self, run_id: &str) -> Result<Option<Fence>, Error> {
        let s = &self.shared;
        Ok(s.store
            .lease(
                run_id,
                &s.options.owner,
                s.clock.now(),
                s.options.lease_ttl_ms,
            )
            .await?)
    }

    /// Takes over an unfinished run from its event log. `None` if it is
    /// finished or unknown; `NotOwner` if another orchestrator holds it.
    pub async fn adopt(&self, run_id: &str) -> Result<Option<RunHandle>, Error> {
        Ok(match self.try_adopt(run_id).await? {
            Adoption::Started(handle) => Some(handle),
            Adoption::Busy | Adoption::Ended => None,
        })
    }

    pub(crate) async fn try_adopt(&self, run_id: &str) -> Result<Adoption, Error> {
        let Some(_starting) = self.starting(run_id) else {
            return Ok(Adoption::Busy);
        };
        let Some(record) = self.shared.store.get_run(run_id).await? else {
            return Ok(Adoption::Ended);
        };
        if record.status.is_terminal() {
            return Ok(Adoption::Ended);
        }
        let Some(fence) = self.take_lease(run_id).await? else {
            return Err(Error::NotOwner(run_id.to_string()));
        };
        // Kept from now: reading and replaying a large run takes a while.
        let lease = crate::lease::LeaseKeeper::start(&self.shared, run_id, fence.clone());
        let workflow = weft_core::spec::load(&record.source)
            .map_err(|_| Error::StoredWorkflow(record.id.clone()))?;
        // Read after the lease is taken: every event before it is in.
        let events = self.shared.store.events(run_id).await?;
        let logged = events.len() as u64;
        let state = RunState::of_record(&record, self.plan_for(&record.source, workflow), events);
        Ok(Adoption::Started(self.start(
            record,
            state,
            logged,
            (fence, lease),
            Vec::new(),
            Box::new(|_: &RunState, _: &Event| {}),
        )))
    }

    /// Every lease period, adopts unfinished runs whose orchestrator is gone
    /// (their lease expired), so no run waits for a report to be noticed.
    pub fn spawn_adopter(&self) -> JoinHandle<Result<(), Error>> {
        let this = self.clone();
        let every = Duration::from_millis(self.shared.options.lease_ttl_ms.max(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = this.resume_unfinished().await {
                    tracing::warn!("adopting unfinished runs: {e}; trying again");
                }
            }
        })
    }

    /// Adopts every unfinished run not held by another orchestrator. Reads
    /// only the index of unfinished runs, never the finished ones.
    pub async fn resume_unfinished(&self) -> Result<usize, Error> {
        let mut adopted = 0;
        for id in self.shared.store.unfinished_runs(usize::MAX).await? {
            match self.adopt(&id).await {
                Ok(Some(_)) => adopted += 1,
                Ok(None) | Err(Error::NotOwner(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(adopted)
    }
}
