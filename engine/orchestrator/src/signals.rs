//! Reports a server makes itself, not a worker: a cancel asked of a server
//! that does not drive the run, and a person's decision on an approval
//! step. Each goes straight to the run's driver when it is here, else onto
//! the report queue, which every server reads: whichever drives the run
//! (or adopts it) takes it (`router.rs`).

use weft_core::ports::{ReportDelivery, ReportKind};
use weft_core::run::TaskId;

use crate::service::Service;
use crate::Error;

impl Service {
    /// Asks a run to cancel, as its user did.
    pub async fn cancel(&self, run_id: &str) -> Result<(), Error> {
        self.cancel_because(run_id, "cancelled by user").await
    }

    /// Asks a run to cancel for `reason`: at once if it is driven here;
    /// else through the report queue, to whichever server drives it (or
    /// adopts it). Cancelling an ended run does nothing.
    pub async fn cancel_because(&self, run_id: &str, reason: &str) -> Result<(), Error> {
        if let Some(live) = self.shared.live.lock().expect("live lock").get(run_id) {
            live.cancel.send_if_modified(|r| {
                let first = r.is_none();
                r.get_or_insert_with(|| reason.to_string());
                first
            });
            return Ok(());
        }
        match self.shared.store.get_run(run_id).await? {
            None => Err(Error::NoSuchRun(run_id.to_string())),
            Some(r) if r.status.is_terminal() => Ok(()),
            Some(_) => {
                let reason = weft_core::run::bounded_text(reason, weft_core::run::MAX_TEXT_BYTES);
                self.signal(
                    run_id,
                    TaskId::new("", None),
                    0,
                    ReportKind::Cancel { reason },
                )
                .await
            }
        }
    }

    /// Hands a person's approval or rejection of `task`'s attempt
    /// `attempt` to the run's driver, here or on another server.
    pub async fn decide(
        &self,
        run_id: &str,
        task: TaskId,
        attempt: u32,
        decision: ReportKind,
    ) -> Result<(), Error> {
        self.signal(run_id, task, attempt, decision).await
    }

    /// A report from this server, not a worker: straight to the run's
    /// driver if it is here, else on the report queue for whichever server
    /// drives it (or adopts it).
    pub(crate) async fn signal(
        &self,
        run_id: &str,
        task: TaskId,
        attempt: u32,
        kind: ReportKind,
    ) -> Result<(), Error> {
        let report = weft_core::ports::Report {
            run_id: run_id.to_string(),
            task,
            attempt,
            worker: String::new(),
            at: self.shared.clock.now(),
            execution: 0,
            earlier: Vec::new(),
            kind,
        };
        let local: Box<dyn ReportDelivery> = Box::new(Signal(report.clone()));
        if self.route(run_id, local).is_ok() {
            return Ok(());
        }
        // To the mailbox of whoever holds the run, if the store can tell:
        // any server takes it from the shared queue, but that takes longer.
        let holder = self.shared.store.holder(run_id).await.ok().flatten();
        Ok(self.shared.queue.report(holder.as_deref(), &report).await?)
    }
}

/// A report this server made, handed to a driver here: nothing to ack.
struct Signal(weft_core::ports::Report);

#[async_trait::async_trait]
impl ReportDelivery for Signal {
    fn report(&self) -> &weft_core::ports::Report {
        &self.0
    }

    async fn ack(self: Box<Self>) -> Result<(), weft_core::Error> {
        Ok(())
    }
}
