//! The start gate: a shell step prepares while its claim is asked, and
//! starts only once the claim is held.
//!
//! The claim records, durably, that an execution begins, so a step's own
//! code may not run before it is answered. Its preparation may: making the
//! scratch directory, writing `inputs.json`, finding the program. Those
//! touch only what this execution made, and overlap the claim's round trip
//! (a Redis script, or an fsync in the embedded store) instead of
//! following it. The worker opens the gate with the attempt's abort signal
//! once the claim is held (`worker.rs::execute`), or shuts it, and the
//! executor waits at it before it starts anything (`shell.rs::run`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{oneshot, watch};
use weft_core::run::{FailureKind, Outcome};

/// What an execution whose gate was shut ends with: nothing ran, and the
/// worker reports nothing of it.
pub(crate) fn not_started() -> Outcome {
    Outcome::Failed {
        reason: "not started: its claim was not held".into(),
        exit_code: None,
        retryable: false,
        kind: FailureKind::Cancelled,
    }
}

/// The executor's side: passed down with the attempt, it holds what
/// stops the attempt.
pub(crate) struct StartGate {
    /// The claim's answer, until it is heard: the attempt's abort signal,
    /// or nothing (the gate shut).
    opens: Option<oneshot::Receiver<watch::Receiver<bool>>>,
    /// What stops the attempt: its own once the gate has opened; while it
    /// is closed, one that never fires (its sender is `quiet`).
    abort: watch::Receiver<bool>,
    quiet: Option<watch::Sender<bool>>,
    refused: Refused,
}

/// Whether a gate was shut: whoever prepared for the step (its scratch
/// directory's owner) then leaves alone what another execution may use.
#[derive(Clone, Default)]
pub(crate) struct Refused(Arc<AtomicBool>);

impl Refused {
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The worker's side: opens or (dropped) shuts the gate.
pub(crate) struct GateKey(oneshot::Sender<watch::Receiver<bool>>);

impl StartGate {
    /// A closed gate and its key.
    pub fn closed() -> (GateKey, Self) {
        let (key, opens) = oneshot::channel();
        let (quiet, abort) = watch::channel(false);
        let gate = Self {
            opens: Some(opens),
            abort,
            quiet: Some(quiet),
            refused: Refused::default(),
        };
        (GateKey(key), gate)
    }

    /// Whether there is anything to wait for.
    pub fn is_closed(&self) -> bool {
        self.opens.is_some()
    }

    /// Tells, once the gate is passed, whether it was shut.
    pub fn refused(&self) -> Refused {
        self.refused.clone()
    }

    /// What stops the attempt (the field of that name).
    pub fn abort(&self) -> watch::Receiver<bool> {
        self.abort.clone()
    }

    /// Waits here while the gate is closed: false if it was shut (nothing
    /// may start); else it is open, and its abort signal the attempt's.
    pub async fn pass(&mut self) -> bool {
        let Some(opens) = self.opens.take() else {
            return true;
        };
        match opens.await {
            Ok(abort) => {
                self.abort = abort;
                self.quiet = None;
                true
            }
            Err(_) => {
                self.refused.0.store(true, Ordering::SeqCst);
                false
            }
        }
    }
}

impl GateKey {
    /// Lets the step start, stopped by `abort`. An executor that already
    /// ended (its preparation failed) is not waiting: nothing to tell.
    pub fn open(self, abort: watch::Receiver<bool>) {
        let _ = self.0.send(abort);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_gate_opens_with_the_attempts_abort_signal_and_once_shut_says_so() {
        let (key, mut gate) = StartGate::closed();
        assert!(gate.is_closed());
        let waiting = gate.abort();
        let (abort_tx, abort_rx) = watch::channel(false);
        key.open(abort_rx);
        assert!(gate.pass().await, "an opened gate lets the step start");
        assert!(!gate.is_closed());
        abort_tx.send(true).unwrap();
        assert!(*gate.abort().borrow(), "the abort signal is the one given");
        assert!(!*waiting.borrow(), "the one before never fires");
        assert!(gate.pass().await, "an open gate holds nothing up");

        let (key, mut gate) = StartGate::closed();
        let refused = gate.refused();
        drop(key);
        assert!(!refused.happened(), "not until the executor has heard");
        assert!(!gate.pass().await);
        assert!(refused.happened());
    }
}
