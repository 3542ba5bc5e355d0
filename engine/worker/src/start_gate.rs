//! An attempt's start, recorded before its step runs. The worker publishes
//! the `Started` report and, while the broker confirms it, prepares the
//! step (its params, secrets, scratch directory and inputs file); nothing
//! that acts (a process, a container, a kernel, a plugin hook) begins
//! before the confirm. The confirmed start is what records an execution
//! whose worker then dies before it can report the end (simulation seed
//! 1400, chaos: a start sent beside the running step was lost with the
//! broker down), so it may overlap only what has no effect.

use tokio::sync::watch;

/// Told once whether the start was recorded.
pub(crate) struct StartRecorded(watch::Sender<Option<bool>>);

/// Waits for the start to be recorded.
#[derive(Clone)]
pub(crate) struct StartGate(watch::Receiver<Option<bool>>);

/// How an attempt is told to go and to stop: its start recorded (nothing
/// acts before), and its abort (`true`: stop).
#[derive(Clone)]
pub(crate) struct Go {
    pub(crate) start: StartGate,
    pub(crate) abort: watch::Receiver<bool>,
}

/// A gate and the way to open (or shut) it.
pub(crate) fn start_gate() -> (StartRecorded, StartGate) {
    let (tx, rx) = watch::channel(None);
    (StartRecorded(tx), StartGate(rx))
}

impl StartRecorded {
    /// Whether the start was recorded. Dropped untold, it was not.
    pub(crate) fn tell(self, recorded: bool) {
        let _ = self.0.send(Some(recorded));
    }
}

impl StartGate {
    /// True once the start is recorded; false if it could not be (the
    /// step must then not run).
    pub(crate) async fn recorded(&self) -> bool {
        let mut rx = self.0.clone();
        let told = match rx.wait_for(Option::is_some).await {
            Ok(told) => told.unwrap_or(false),
            Err(_) => false,
        };
        told
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gate_opens_when_told_and_stays_shut_when_its_teller_is_dropped() {
        let (recorded, gate) = start_gate();
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.recorded().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "waits until told");
        recorded.tell(true);
        assert!(waiting.await.unwrap());
        assert!(gate.recorded().await, "and stays open");

        let (recorded, gate) = start_gate();
        drop(recorded);
        assert!(!gate.recorded().await);
        let (recorded, gate) = start_gate();
        recorded.tell(false);
        assert!(!gate.recorded().await);
    }
}
