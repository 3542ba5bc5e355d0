//! Reports of runs that have ended: an execution that finished after its
//! run was cancelled, or that ran after its attempt had already been
//! settled (a duplicate delivery, a worker that lost its claim). The run
//! does not change, but its event log records the execution, so the run
//! shows everything that ran.

use weft_core::ports::ReportDelivery;
use weft_core::run::Event;

use crate::driver::{report_events, shown};
use crate::service::Service;
use crate::Error;

impl Service {
    /// Appends the event of `delivery`'s report to the ended run `run_id`
    /// (unless the run already shows it), then acks it. A run someone else
    /// holds right now gets the report back later.
    pub(crate) async fn record_late(
        &self,
        run_id: &str,
        delivery: Box<dyn ReportDelivery>,
    ) -> Result<(), Error> {
        let report = delivery.report().clone();
        let shared = self.shared();
        let Some(_starting) = self.starting(run_id) else {
            drop(delivery);
            return Ok(());
        };
        let Some((_, state)) = crate::load_run(shared.store.as_ref(), run_id).await? else {
            // Unknown run: nothing to record it in.
            return delivery.ack().await.map_err(Error::from);
        };
        // What the run does not show yet: the execution this report is
        // about, and earlier ones it tells of (a signal, or a dead letter,
        // is no execution).
        let from_worker = !report.worker.is_empty();
        let events: Vec<_> = report_events(report, shared.clock.now(), &state)
            .into_iter()
            .filter(|e| {
                let execution = from_worker || matches!(e, Event::TaskStarted { .. });
                execution && !shown(&state, e)
            })
            .collect();
        if events.is_empty() {
            return delivery.ack().await.map_err(Error::from);
        }
        let Some(fence) = self.take_lease(run_id).await? else {
            drop(delivery);
            return Ok(());
        };
        // Read after the lease is taken, so the length is the log's.
        let logged = shared.store.events(run_id).await?.len() as u64;
        let appended = shared
            .store
            .append_events(run_id, &fence, logged, &events)
            .await;
        let _ = shared.store.release(run_id, &fence).await;
        match appended {
            Ok(()) => {
                tracing::info!(run = %run_id, "recorded a report that came after the run ended");
                delivery.ack().await.map_err(Error::from)
            }
            // Raced with another writer: the report comes back and is tried again.
            Err(weft_core::Error::Fenced(_) | weft_core::Error::LogMoved { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
