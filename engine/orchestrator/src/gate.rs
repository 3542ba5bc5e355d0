//! A run with a concurrency key waits here, before `Started`, until the
//! cluster gives it one of the key's slots. It holds no worker slot while
//! it waits: only its driver (a task and its run state) and its place in
//! the store's line. Its key's policy decides what happens when all slots
//! are held: wait (`queue`), end cancelled (`skip`), or cancel the holders
//! and wait for their slots (`cancel-running`).

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;
use weft_core::concurrency::{ConcurrencyPolicy, QueueSpot, SlotAnswer};
use weft_core::run::Event;

use crate::driver::Driver;

/// How soon a waiting run asks again when nobody here frees a slot (a
/// run ending on another server frees one without telling this one): at
/// first, then twice as long after each ask that finds the key full, up
/// to `[orchestrator] slot-poll-ms` (2 s): a thousand runs waiting on
/// other servers cost the store 500 asks a second, not thousands, and hear
/// of a freed slot within 2 s.
const POLL: Duration = Duration::from_millis(500);
/// Every this many asks, the holders are looked up: a holder whose run has
/// ended without giving its slot back (its server died at the very end)
/// is released.
const STALE_CHECK_EVERY: u32 = 10;

/// A waiting run's side of the line.
pub(crate) struct Gate {
    pub spot: QueueSpot,
    /// When to ask next.
    pub next: Instant,
    asks: u32,
    /// How long until the next ask, when nothing here frees a slot.
    interval: Duration,
    /// How many runs waited ahead of it at the last ask (an estimate,
    /// lowered as slots free here): a freed slot wakes it only when it
    /// might be next.
    ahead: usize,
    /// Whether why it waits is recorded (`Waiting`): once, at its first
    /// ask. Not again as the line moves: a thousand waiters each recording
    /// every step of the line would write a million events.
    told: bool,
    /// Holders already asked to cancel (`cancel-running`).
    cancelled: BTreeSet<String>,
}

impl Gate {
    /// A run here gave a slot of some key back: ask at once if this run
    /// may be next, else wait for the next poll (one release lets one run
    /// through, not the thousand that wait).
    pub fn slot_freed(&mut self) {
        self.ahead = self.ahead.saturating_sub(1);
        if self.ahead < self.spot.limit as usize {
            self.next = Instant::now();
        }
    }

    pub fn new(spot: QueueSpot) -> Self {
        Self {
            spot,
            next: Instant::now(),
            asks: 0,
            interval: POLL,
            ahead: 0,
            told: false,
            cancelled: BTreeSet::new(),
        }
    }
}

/// What one ask came to.
pub(crate) enum GateStep {
    /// Granted: start the run with these events (`Started`).
    Open(Vec<Event>),
    /// Still waiting; record these events (a new reason, or the cancel of
    /// a skipped run).
    Wait(Vec<Event>),
}

impl Driver {
    /// Asks the store for a slot once, and does what the answer and the
    /// key's policy say.
    pub(crate) async fn ask_for_slot(&self, gate: &mut Gate) -> GateStep {
        let shared = &self.shared;
        let Some(slots) = shared.slots.as_ref() else {
            // Refused at submit; a run taken over by a server without a
            // key store cannot be held to its key.
            let reason = "this server keeps no concurrency keys, so the run cannot be held to its `[workflow] concurrency`".to_string();
            return GateStep::Wait(vec![Event::CancelRequested {
                reason,
                at: shared.clock.now(),
            }]);
        };
        gate.asks += 1;
        let run_id = &self.record.id;
        let answer = match slots.acquire_slot(run_id, &gate.spot).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(run = %run_id, "asking for a slot of concurrency key {}: {e}; trying again", gate.spot.key);
                gate.next = Instant::now() + self.max_poll();
                return GateStep::Wait(Vec::new());
            }
        };
        let now = shared.clock.now();
        let (holders, ahead) = match answer {
            SlotAnswer::Granted => return GateStep::Open(vec![Event::Started { at: now }]),
            SlotAnswer::Full => {
                let reason = format!(
                    "not run: {} runs already wait for concurrency key `{}`, as many as may",
                    weft_core::concurrency::MAX_WAITING_PER_KEY,
                    gate.spot.key
                );
                return GateStep::Wait(vec![Event::CancelRequested { reason, at: now }]);
            }
            SlotAnswer::Waiting { holders, ahead } => (holders, ahead),
        };
        gate.next = Instant::now() + gate.interval;
        gate.interval = (gate.interval * 2).min(self.max_poll());
        gate.ahead = ahead;
        if gate.asks % STALE_CHECK_EVERY == 1 {
            self.release_ended_holders(&gate.spot.key, &holders).await;
        }
        let held_by = if holders.is_empty() {
            "runs ahead of it take the free slots".to_string()
        } else {
            format!("held by {}", holders.join(", "))
        };
        let mut events = Vec::new();
        match gate.spot.policy {
            ConcurrencyPolicy::Skip => {
                let _ = slots.release_slot(&gate.spot.key, run_id).await;
                let reason = format!(
                    "skipped: concurrency key `{}` has all its {} slot(s) {held_by} (`policy = \"skip\"`)",
                    gate.spot.key, gate.spot.limit
                );
                events.push(Event::CancelRequested { reason, at: now });
                return GateStep::Wait(events);
            }
            ConcurrencyPolicy::CancelRunning => {
                let fresh: Vec<&String> = holders
                    .iter()
                    .filter(|h| !gate.cancelled.contains(*h))
                    .collect();
                for holder in fresh {
                    let reason = format!(
                        "cancelled: run {run_id} of concurrency key `{}` replaces it (`policy = \"cancel-running\"`)",
                        gate.spot.key
                    );
                    let service = self.service();
                    match service.cancel_because(holder, &reason).await {
                        Ok(()) => {
                            gate.cancelled.insert(holder.clone());
                        }
                        Err(e) => {
                            tracing::warn!(run = %run_id, "cancelling run {holder}, which holds concurrency key {}: {e}", gate.spot.key)
                        }
                    }
                }
            }
            ConcurrencyPolicy::Queue => {}
        }
        if !gate.told {
            gate.told = true;
            let reason = format!(
                "waiting for a slot of concurrency key `{}` (limit {}): {held_by}{}",
                gate.spot.key,
                gate.spot.limit,
                match ahead {
                    0 => String::new(),
                    n => format!("; {n} run(s) ahead in line"),
                }
            );
            events.push(Event::Waiting { reason, at: now });
        }
        GateStep::Wait(events)
    }

    fn max_poll(&self) -> Duration {
        Duration::from_millis(self.shared.options.slot_poll_ms.max(100))
    }

    /// Releases the holders of `key` whose runs have ended or are gone.
    async fn release_ended_holders(&self, key: &str, holders: &[String]) {
        let shared = &self.shared;
        let Some(slots) = shared.slots.as_ref() else {
            return;
        };
        for holder in holders {
            let ended = match shared.store.get_run(holder).await {
                Ok(None) => true,
                Ok(Some(r)) => r.status.is_terminal(),
                Err(_) => false,
            };
            if ended {
                tracing::info!(run = %self.record.id, "run {holder} ended holding a slot of concurrency key {key}: released");
                let _ = slots.release_slot(key, holder).await;
            }
        }
    }

    /// Gives the run's slot (or place in line) back once it has ended,
    /// and wakes the runs waiting here.
    pub(crate) async fn release_slot(&self) {
        let (Some(spot), Some(slots)) = (&self.state.queue, self.shared.slots.as_ref()) else {
            return;
        };
        for tries in 1..=5u32 {
            match slots.release_slot(&spot.key, &self.record.id).await {
                Ok(()) => break,
                // Left for the next waiter's check of ended holders.
                Err(e) => {
                    tracing::warn!(run = %self.record.id, "giving back a slot of concurrency key {}: {e}", spot.key);
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                }
            }
        }
        self.shared.slot_freed.notify_waiters();
    }
}
