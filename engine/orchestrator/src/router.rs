//! Routing reports to the drivers of their runs. A worker sends a job's
//! reports to the mailbox of the server that published it; a report of an
//! older job, a signal, or a dead server's report (its mailbox hands it on)
//! comes through the queue every server reads. So a report may reach a
//! server that does not drive its run: it adopts the run if nobody holds
//! it, records the report if the run has ended, and otherwise forwards it
//! to the holder's mailbox.

use std::time::Duration;

use tokio::task::JoinHandle;
use weft_core::ports::ReportDelivery;

use crate::adoption::Adoption;
use crate::service::Service;
use crate::Error;

impl Service {
    /// Routes reports to the drivers until the queue closes; a report of a
    /// run not driven here adopts the run if it is unfinished and unleased.
    pub fn spawn_router(&self) -> JoinHandle<Result<(), Error>> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let delivery = match this.shared.queue.next_report().await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!("report router: {e}; trying again");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                let run_id = delivery.report().run_id.clone();
                let Err(delivery) = this.route(&run_id, delivery) else {
                    continue;
                };
                // One at a time, on purpose: while this router waits to
                // return a report, the run's owner takes the ones behind it.
                if let Err(e) = this.deliver_elsewhere(&run_id, delivery).await {
                    tracing::warn!("a report of run {run_id}: {e}; it goes back to the queue");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        })
    }

    /// A report of a run not driven here: adopts the run if it is
    /// unfinished and unleased; records the report if the run has ended;
    /// forwards it if another orchestrator drives the run.
    pub(crate) async fn deliver_elsewhere(
        &self,
        run_id: &str,
        delivery: Box<dyn ReportDelivery>,
    ) -> Result<(), Error> {
        match self.try_adopt(run_id).await {
            Ok(Adoption::Started(_)) => {
                let _ = self.route(run_id, delivery);
            }
            // Being started here right now: in a moment it is live, and
            // takes this report.
            Ok(Adoption::Busy) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Err(delivery) = self.route(run_id, delivery) {
                    drop(delivery);
                }
            }
            Ok(Adoption::Ended) => self.record_late(run_id, delivery).await?,
            Err(Error::NotOwner(_)) => self.forward(run_id, delivery).await?,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// A report of a run another server drives: sent to that server's
    /// mailbox, then acked. Where the store cannot tell who that is, one
    /// from this server's mailbox goes to the shared queue, which the
    /// owner reads too; one from the shared queue goes back to it after a
    /// pause, for the owner to take.
    async fn forward(&self, run_id: &str, delivery: Box<dyn ReportDelivery>) -> Result<(), Error> {
        let mine = self.shared.reply_to.get();
        let holder = self
            .shared
            .store
            .holder(run_id)
            .await?
            .filter(|h| Some(h) != mine);
        if holder.is_none() && !delivery.came_by_mailbox() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(delivery);
            return Ok(());
        }
        if holder.is_some() && !delivery.came_by_mailbox() {
            // A holder without a mailbox (a server of an earlier version)
            // gets it back through the shared queue: not in a busy loop.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::debug!(run = run_id, to = ?holder, "forwarding a report of a run driven elsewhere");
        // Sent before the ack: a crash between leaves two copies, which
        // the driver takes as one (it records an attempt's report once).
        self.shared
            .queue
            .report(holder.as_deref(), delivery.report())
            .await?;
        delivery.ack().await?;
        Ok(())
    }

    /// Hands a report to its run's driver here, or gives it back.
    pub(crate) fn route(
        &self,
        run_id: &str,
        delivery: Box<dyn ReportDelivery>,
    ) -> Result<(), Box<dyn ReportDelivery>> {
        let live = self.shared.live.lock().expect("live lock");
        match live.get(run_id) {
            Some(l) => l.inbox.send(delivery),
            None => Err(delivery),
        }
    }
}
