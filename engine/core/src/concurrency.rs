//! Concurrency keys: at most `limit` runs holding one key at once, across
//! the cluster, the others waiting in line by priority, then by the time
//! they were queued. The rule of who gets a slot lives here, once
//! ([`KeySlots`]); the stores keep a `KeySlots` per key (Redis mirrors it
//! in one script) and the orchestrator asks them before a run starts.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::run::Millis;

/// A run's priority: higher runs go first where slots are scarce.
pub const MAX_PRIORITY: i32 = 1_000;
pub const MIN_PRIORITY: i32 = -1_000;
/// Most runs one key may let through at once.
pub const MAX_LIMIT: u32 = 10_000;
/// Longest rendered key.
pub const MAX_KEY_BYTES: usize = 200;
/// Most runs waiting on one key; past it a run is refused, not queued.
pub const MAX_WAITING_PER_KEY: usize = 10_000;
/// Most holders a waiting answer names.
pub const MAX_HOLDERS_SHOWN: usize = 20;

/// What a run does when its key's slots are all held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConcurrencyPolicy {
    /// Wait in line for a slot (the default).
    #[default]
    Queue,
    /// Do not run: the run ends cancelled, saying which runs held the key.
    Skip,
    /// Cancel the runs holding the key (the oldest first) and take a slot
    /// when they have ended.
    CancelRunning,
}

impl ConcurrencyPolicy {
    pub const ALL: [(&'static str, ConcurrencyPolicy); 3] = [
        ("queue", ConcurrencyPolicy::Queue),
        ("skip", ConcurrencyPolicy::Skip),
        ("cancel-running", ConcurrencyPolicy::CancelRunning),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("queue", |(name, _)| name)
    }
}

/// Where a run stands in its key's line: what it asks the store with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSpot {
    /// The rendered key.
    pub key: String,
    pub limit: u32,
    #[serde(default)]
    pub policy: ConcurrencyPolicy,
    #[serde(default)]
    pub priority: i32,
    /// When it joined the line (its submission).
    pub queued_at: Millis,
}

impl QueueSpot {
    /// Its place in line: lower goes first. Priority first (higher is
    /// lower here), then the time queued; one number, so a store can keep
    /// the line as a sorted set (it fits a double's 53 bits exactly for
    /// times before the year 2109).
    pub fn rank(&self) -> u64 {
        let priority = self.priority.clamp(MIN_PRIORITY, MAX_PRIORITY);
        let band = (MAX_PRIORITY - priority) as u64;
        (band << 42) | (self.queued_at & ((1 << 42) - 1))
    }
}

/// What asking for a slot came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAnswer {
    /// The run holds a slot (now or already).
    Granted,
    /// All slots are held, or runs ahead of it wait for them.
    Waiting {
        /// The runs holding the key's slots (the first
        /// `MAX_HOLDERS_SHOWN`, in name order).
        holders: Vec<String>,
        /// How many runs wait ahead of it.
        ahead: usize,
    },
    /// The line is full (`MAX_WAITING_PER_KEY`): the run is not queued.
    Full,
}

/// One key's slots: who holds them, who waits, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySlots {
    pub holders: BTreeSet<String>,
    /// `(rank, run id)`, first in line first.
    pub waiting: BTreeSet<(u64, String)>,
}

impl KeySlots {
    /// Asks for a slot for `run` with `limit` slots (the asker's limit).
    /// A holder asking again is granted again; a waiter asking again keeps
    /// its place. A run is granted when fewer than `limit` runs hold the
    /// key and fewer than the free slots wait ahead of it.
    pub fn acquire(&mut self, run: &str, limit: u32, rank: u64) -> SlotAnswer {
        if self.holders.contains(run) {
            return SlotAnswer::Granted;
        }
        let spot = (rank, run.to_string());
        if !self.waiting.contains(&spot) {
            // A run asking with another rank (it cannot, but a store kept
            // by hand might) is moved, not kept twice.
            self.waiting.retain(|(_, r)| r != run);
            if self.waiting.len() >= MAX_WAITING_PER_KEY {
                return SlotAnswer::Full;
            }
            self.waiting.insert(spot.clone());
        }
        let free = (limit as usize).saturating_sub(self.holders.len());
        let ahead = self.waiting.range(..&spot).count();
        if ahead < free {
            self.waiting.remove(&spot);
            self.holders.insert(spot.1);
            return SlotAnswer::Granted;
        }
        SlotAnswer::Waiting {
            holders: self
                .holders
                .iter()
                .take(MAX_HOLDERS_SHOWN)
                .cloned()
                .collect(),
            ahead,
        }
    }

    /// Gives up `run`'s slot or its place in line; true if it had either.
    pub fn release(&mut self, run: &str) -> bool {
        let held = self.holders.remove(run);
        let before = self.waiting.len();
        self.waiting.retain(|(_, r)| r != run);
        held || self.waiting.len() != before
    }

    pub fn is_empty(&self) -> bool {
        self.holders.is_empty() && self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn spot(priority: i32, queued_at: Millis) -> u64 {
        QueueSpot {
            key: "k".into(),
            limit: 1,
            policy: ConcurrencyPolicy::Queue,
            priority,
            queued_at,
        }
        .rank()
    }

    #[test]
    fn higher_priority_goes_first_then_the_earlier() {
        assert!(spot(5, 2_000) < spot(0, 1_000));
        assert!(spot(0, 1_000) < spot(0, 2_000));
        assert!(spot(MAX_PRIORITY, u64::MAX) < spot(MIN_PRIORITY, 0));
        // Exact in a double, as a Redis score holds it.
        let worst = spot(MIN_PRIORITY, 4_000_000_000_000);
        assert_eq!(worst as f64 as u64, worst);
    }

    #[test]
    fn a_line_lets_runs_through_in_order_as_slots_free() {
        let mut k = KeySlots::default();
        assert_eq!(k.acquire("a", 1, spot(0, 1)), SlotAnswer::Granted);
        assert_eq!(
            k.acquire("b", 1, spot(0, 2)),
            SlotAnswer::Waiting {
                holders: vec!["a".into()],
                ahead: 0
            }
        );
        assert!(matches!(
            k.acquire("c", 1, spot(9, 3)),
            SlotAnswer::Waiting { ahead: 0, .. }
        ));
        // b asks again: c (higher priority) is ahead of it now.
        assert!(matches!(
            k.acquire("b", 1, spot(0, 2)),
            SlotAnswer::Waiting { ahead: 1, .. }
        ));
        assert!(k.release("a"));
        // b is not first: it waits; c is granted.
        assert!(matches!(
            k.acquire("b", 1, spot(0, 2)),
            SlotAnswer::Waiting { .. }
        ));
        assert_eq!(k.acquire("c", 1, spot(9, 3)), SlotAnswer::Granted);
        assert_eq!(k.acquire("c", 1, spot(9, 3)), SlotAnswer::Granted);
        assert!(k.release("c"));
        assert!(!k.release("c"));
        assert_eq!(k.acquire("b", 1, spot(0, 2)), SlotAnswer::Granted);
        k.release("b");
        assert!(k.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Run `n` asks (again).
        Ask(u8),
        /// Run `n` ends or is cancelled: its slot or place goes.
        Leave(u8),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            prop_oneof![
                3 => (0u8..12).prop_map(Op::Ask),
                1 => (0u8..12).prop_map(Op::Leave),
            ],
            1..200,
        )
    }

    proptest! {
        /// Across any interleaving of runs asking, asking again, and
        /// leaving (ending, cancelled, crashed and taken over), the limit
        /// is never exceeded, no one is granted while a run of higher
        /// rank waits and a slot is free for it, and when everyone who
        /// is left keeps asking, every run gets its turn.
        #[test]
        fn the_limit_holds_and_every_waiting_run_gets_its_turn(
            ops in ops(),
            limit in 1u32..4,
            priorities in proptest::collection::vec(-2i32..3, 12),
        ) {
            let rank = |n: u8| spot(priorities[n as usize], 1_000 + n as u64);
            let name = |n: u8| format!("r{n}");
            let mut k = KeySlots::default();
            let mut gone: BTreeMap<u8, bool> = BTreeMap::new();
            for op in &ops {
                match *op {
                    Op::Ask(n) if !gone.contains_key(&n) => {
                        let held = k.holders.contains(&name(n));
                        let answer = k.acquire(&name(n), limit, rank(n));
                        prop_assert!(k.holders.len() <= limit as usize);
                        if answer == SlotAnswer::Granted && !held {
                            // The runs ranked ahead of it that still wait
                            // each have a slot left for them.
                            let passed = k.waiting.iter().filter(|(r, _)| *r < rank(n)).count();
                            prop_assert!(k.holders.len() + passed <= limit as usize, "{k:?}");
                        }
                    }
                    Op::Ask(_) => {}
                    Op::Leave(n) => {
                        k.release(&name(n));
                        gone.insert(n, true);
                    }
                }
            }
            // Everyone left asks until all have had a slot and left.
            let mut rounds = 0;
            while !k.is_empty() {
                rounds += 1;
                prop_assert!(rounds < 100, "stuck: {k:?}");
                let waiting: Vec<String> = k.waiting.iter().map(|(_, r)| r.clone()).collect();
                for r in waiting {
                    let n: u8 = r[1..].parse().unwrap();
                    k.acquire(&r, limit, rank(n));
                    prop_assert!(k.holders.len() <= limit as usize);
                }
                let first = k.holders.iter().next().cloned();
                if let Some(h) = first {
                    k.release(&h);
                }
            }
        }
    }
}
