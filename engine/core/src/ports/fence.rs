//! Fencing: the rules by which a store hands out a run's lease and an
//! attempt's claim, each with a token that grows every time it changes
//! hands, and refuses writes from a holder that has been replaced.
//!
//! The rules are pure functions over the stored record, so every store
//! applies the same ones: the in-memory and embedded stores call them; the
//! Redis store runs them in Lua; the contract tests hold all of them to it.
//!
//! - A **lease** lets one orchestrator drive a run. Its token changes when
//!   another owner takes it (after it expired); the same owner renewing,
//!   even late, keeps it, since no one else can have written meanwhile.
//!   Every event append carries the driver's [`Fence`], and the store
//!   refuses it unless the lease was last taken by that fence.
//! - A **claim** lets one execution run an attempt. Every fresh claim that
//!   succeeds is a new execution with a new token (a worker restarted
//!   under the same name is a new execution too); only the holder's own
//!   token renews it. The first execution to finish wins: its report is
//!   kept, a later finish is refused, and an execution still running sees
//!   the claim done at its next renewal and stops. (Two executions exist
//!   only when one lost its claim, starved or cut off from the store, and
//!   another took it over.) A redelivered copy of the job finds the
//!   report and re-sends it instead of running the step again.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::Report;
use crate::run::Millis;

/// Who may write a run's events: the lease's owner, with the token it got.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fence {
    pub owner: String,
    pub token: u64,
}

impl Fence {
    /// What a write under this fence fails with once another owner holds
    /// run `run_id`'s lease.
    pub fn lost(&self, run_id: &str) -> crate::Error {
        crate::Error::Fenced(format!(
            "run {run_id}: {} no longer holds the lease",
            self.owner
        ))
    }
}

/// A run's lease as stored. Kept after release (expired), so its token
/// keeps growing across holders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub owner: String,
    pub token: u64,
    pub expires_at: Millis,
}

impl LeaseRecord {
    /// Takes or renews the lease for `owner` at `now`: the record to store,
    /// or `None` while another owner holds an unexpired one.
    pub fn take(
        current: Option<&LeaseRecord>,
        owner: &str,
        now: Millis,
        ttl_ms: u64,
    ) -> Option<LeaseRecord> {
        let token = match current {
            None => 1,
            Some(c) if c.owner == owner => c.token,
            Some(c) if c.expires_at > now => return None,
            Some(c) => c.token + 1,
        };
        Some(LeaseRecord {
            owner: owner.to_string(),
            token,
            expires_at: now.saturating_add(ttl_ms),
        })
    }

    pub fn fence(&self) -> Fence {
        Fence {
            owner: self.owner.clone(),
            token: self.token,
        }
    }

    /// Whether the holder of `fence` may still write: nobody has taken the
    /// lease since it did (whether or not it has expired).
    pub fn admits(current: Option<&LeaseRecord>, fence: &Fence) -> bool {
        current.is_some_and(|c| c.owner == fence.owner && c.token == fence.token)
    }

    /// The record after `fence` gives the lease up: expired, token kept.
    pub fn release(current: Option<&LeaseRecord>, fence: &Fence) -> Option<LeaseRecord> {
        current
            .filter(|c| Self::admits(Some(c), fence))
            .map(|c| LeaseRecord {
                expires_at: 0,
                ..c.clone()
            })
    }
}

/// How many of an attempt's executions its claim remembers: the newest.
/// Each needs a delivery of the job (bounded by the queue's delivery
/// limit) and a lapsed claim, so an attempt rarely has more than a few.
pub const CLAIM_HISTORY: usize = 16;

/// One execution of an attempt, as its claim remembers it: what the server
/// records when no report of it arrives (its worker died before sending
/// one), so every execution that began is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedExecution {
    /// The execution's token.
    pub token: u64,
    /// The worker's name (not the claimant: see [`worker_of`]).
    pub worker: String,
}

/// Names each copy of a job a worker takes apart, as the claimant of
/// its attempt: `<worker>@<start>#<copy>`, `<start>` being when this worker
/// began (by its clock: the simulation's replays stay the same). A claim
/// asked again after a lost answer then gets its own execution back, while
/// a second copy of the same job here (redelivered while the first runs),
/// or this worker restarted, is another claimant that waits its turn.
pub struct Claimants {
    prefix: String,
    copies: AtomicU64,
}

impl Claimants {
    /// The claimants of `worker`, which began at `started` (ms).
    pub fn new(worker: &str, started: u64) -> Self {
        Self {
            prefix: format!("{worker}@{started}"),
            copies: AtomicU64::new(0),
        }
    }

    /// The claimant for the next copy of a job.
    pub fn next(&self) -> String {
        let copy = self.copies.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}#{copy}", self.prefix)
    }
}

/// The worker a claimant belongs to (see [`Claimants`]); a claimant
/// without `@` is the worker's name itself. The Redis store's claim script
/// cuts it the same way (`store-redis/src/scripts.rs`).
pub fn worker_of(claimant: &str) -> &str {
    claimant
        .rsplit_once('@')
        .map_or(claimant, |(worker, _)| worker)
}

/// An attempt's claim as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub state: ClaimState,
    /// The execution that holds (or held) it.
    pub token: u64,
    pub expires_at: Millis,
    /// The newest executions the claim was given to, oldest first (at most
    /// [`CLAIM_HISTORY`]): a claim records an execution's start, durably,
    /// before its step runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<ClaimedExecution>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum ClaimState {
    Held {
        worker: String,
    },
    /// The attempt finished; `report` is how (absent when it was recorded
    /// before reports were kept).
    Done {
        #[serde(default)]
        report: Option<Box<Report>>,
    },
    Aborted,
}

/// What a claim call found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Claim {
    /// The caller holds it, as execution `token` of the attempt. On a fresh
    /// claim `earlier` are the executions before it that the claim
    /// remembers (oldest first), for the caller to report: their workers
    /// may have died before they could; a renewal leaves it empty.
    Held {
        token: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        earlier: Vec<ClaimedExecution>,
    },
    /// Another execution holds it and has renewed it in time.
    HeldBy(String),
    /// The attempt finished, with the report its execution recorded.
    Done(Option<Box<Report>>),
    /// The orchestrator asked for the attempt to stop.
    Aborted,
    /// `began` executions began (the newest token given) and none
    /// finished, more than the job's delivery limit: the claim is given to
    /// no one else, and the caller dead-letters the job unrun. That is the
    /// poison rule for a queue that does not count deliveries itself (a
    /// classic queue), and the same rule as the server's for one that does.
    Exhausted { began: u64 },
}

/// What a claim rule decided: the answer, and the record to store if it changed.
pub type ClaimDecision = (Claim, Option<ClaimRecord>);

impl ClaimRecord {
    fn settled(&self) -> Option<Claim> {
        match &self.state {
            ClaimState::Done { report } => Some(Claim::Done(report.clone())),
            ClaimState::Aborted => Some(Claim::Aborted),
            ClaimState::Held { .. } => None,
        }
    }

    /// Held by claimant `worker` as execution `token`, remembered in the
    /// history after `history` (a new execution is added; the same one
    /// renewed is not).
    fn held(
        history: &[ClaimedExecution],
        worker: &str,
        token: u64,
        now: Millis,
        ttl_ms: u64,
    ) -> ClaimDecision {
        let mut history = history.to_vec();
        if history.last().is_none_or(|e| e.token != token) {
            history.push(ClaimedExecution {
                token,
                worker: worker_of(worker).to_string(),
            });
        }
        if history.len() > CLAIM_HISTORY {
            history.drain(..history.len() - CLAIM_HISTORY);
        }
        let earlier = history
            .iter()
            .filter(|e| e.token != token)
            .cloned()
            .collect();
        (
            Claim::Held { token, earlier },
            Some(ClaimRecord {
                state: ClaimState::Held {
                    worker: worker.to_string(),
                },
                token,
                expires_at: now.saturating_add(ttl_ms),
                history,
            }),
        )
    }

    /// A renewal's answer: its holder was told of the earlier executions
    /// when it claimed, so the stores need not read them again each time.
    fn renewed((claim, record): ClaimDecision) -> ClaimDecision {
        match claim {
            Claim::Held { token, .. } => (
                Claim::Held {
                    token,
                    earlier: Vec::new(),
                },
                record,
            ),
            other => (other, record),
        }
    }

    /// A fresh claim by claimant `worker` (one copy of a job on one
    /// worker): a new execution if the attempt is free (never claimed, or
    /// its holder stopped renewing). The same claimant asking again gets
    /// its execution back, renewed: its earlier answer was lost (the store
    /// applied the claim, then the connection dropped), and nothing ran
    /// under that token but the caller. With a `delivery_limit`, a new
    /// execution is refused (`Exhausted`) once more than that many began
    /// and none finished.
    pub fn claim(
        current: Option<&ClaimRecord>,
        worker: &str,
        now: Millis,
        ttl_ms: u64,
        delivery_limit: Option<u32>,
    ) -> ClaimDecision {
        let Some(c) = current else {
            return Self::held(&[], worker, 1, now, ttl_ms);
        };
        if let Some(settled) = c.settled() {
            return (settled, None);
        }
        match &c.state {
            ClaimState::Held { worker: holder } if holder == worker => {
                Self::held(&c.history, worker, c.token, now, ttl_ms)
            }
            ClaimState::Held { worker: holder } if c.expires_at > now => {
                (Claim::HeldBy(holder.clone()), None)
            }
            // Tokens count up from 1, one per execution: the newest is how
            // many began, whatever the history still remembers.
            _ if delivery_limit.is_some_and(|limit| c.token > u64::from(limit)) => {
                (Claim::Exhausted { began: c.token }, None)
            }
            _ => Self::held(&c.history, worker, c.token + 1, now, ttl_ms),
        }
    }

    /// The holder of execution `token` renews its claim; anyone else learns
    /// who has it, or that the attempt finished or was aborted.
    pub fn renew(
        current: Option<&ClaimRecord>,
        worker: &str,
        token: u64,
        now: Millis,
        ttl_ms: u64,
    ) -> ClaimDecision {
        let Some(c) = current else {
            // The record is gone (a store that lost it): nobody else took
            // it, since taking it writes one.
            return Self::renewed(Self::held(&[], worker, token, now, ttl_ms));
        };
        if let Some(settled) = c.settled() {
            return (settled, None);
        }
        match &c.state {
            ClaimState::Held { worker: holder } if *holder == worker && c.token == token => {
                Self::renewed(Self::held(&c.history, worker, token, now, ttl_ms))
            }
            ClaimState::Held { worker: holder } => (Claim::HeldBy(holder.clone()), None),
            _ => unreachable!("settled states returned above"),
        }
    }

    /// Execution `token` of `worker` records how the attempt ended: `Ok`
    /// with the record to store (`None`: nothing to change), or `Err` with
    /// the claim as it stands when another execution finished first.
    pub fn finish(
        current: Option<&ClaimRecord>,
        _worker: &str,
        token: u64,
        report: &Report,
    ) -> Result<Option<ClaimRecord>, Claim> {
        let done = ClaimRecord {
            state: ClaimState::Done {
                report: Some(Box::new(report.clone())),
            },
            token,
            expires_at: Millis::MAX,
            history: current.map(|c| c.history.clone()).unwrap_or_default(),
        };
        match current.map(|c| (&c.state, c.token)) {
            // Held by this execution, or by a newer one that took over
            // while this one was cut off: the first to finish wins.
            None | Some((ClaimState::Held { .. }, _)) => Ok(Some(done)),
            // Recorded by an earlier try whose reply was lost.
            Some((ClaimState::Done { .. }, t)) if t == token => Ok(None),
            Some((ClaimState::Done { report }, _)) => Err(Claim::Done(report.clone())),
            // Cancelled meanwhile: it stays aborted; the late report is
            // still sent and recorded, and changes nothing.
            Some((ClaimState::Aborted, _)) => Ok(None),
        }
    }

    /// Aborts the attempt unless it finished.
    pub fn abort(current: Option<&ClaimRecord>) -> Option<ClaimRecord> {
        match current {
            Some(c) if matches!(c.state, ClaimState::Done { .. } | ClaimState::Aborted) => None,
            _ => Some(ClaimRecord {
                state: ClaimState::Aborted,
                token: current.map_or(0, |c| c.token),
                expires_at: Millis::MAX,
                history: current.map(|c| c.history.clone()).unwrap_or_default(),
            }),
        }
    }

    /// The executions the claim remembers, oldest first.
    pub fn executions(current: Option<&ClaimRecord>) -> Vec<ClaimedExecution> {
        current.map(|c| c.history.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ReportKind;
    use crate::run::{Outcome, TaskId};

    fn report(token: u64) -> Report {
        Report {
            run_id: "r".into(),
            task: TaskId::new("a", None),
            attempt: 1,
            worker: "w1".into(),
            at: 5,
            execution: token,
            earlier: Vec::new(),
            kind: ReportKind::Finished {
                outcome: Outcome::Succeeded {
                    outputs: serde_json::json!({}),
                    artifacts: Default::default(),
                },
                hooks: Vec::new(),
                unreported_start_ms: None,
            },
        }
    }

    fn held(token: u64, earlier: &[(u64, &str)]) -> Claim {
        Claim::Held {
            token,
            earlier: earlier
                .iter()
                .map(|&(token, worker)| ClaimedExecution {
                    token,
                    worker: worker.into(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_claim_remembers_its_newest_executions_through_its_end() {
        let mut record = None;
        for n in 1..=(CLAIM_HISTORY as u64 + 3) {
            let (claim, next) =
                ClaimRecord::claim(record.as_ref(), &format!("w{n}@7#1"), n * 1000, 100, None);
            let Claim::Held { token, earlier } = claim else {
                panic!("free after its holder lapsed: {claim:?}")
            };
            assert_eq!(token, n);
            assert_eq!(earlier.len(), (n as usize - 1).min(CLAIM_HISTORY - 1));
            assert_eq!(
                earlier.last().map(|e| e.worker.clone()),
                (n > 1).then(|| format!("w{}", n - 1)),
                "named by worker, not by claimant"
            );
            record = next;
        }
        let kept = ClaimRecord::executions(record.as_ref());
        assert_eq!(kept.len(), CLAIM_HISTORY, "bounded");
        assert_eq!(kept.last().unwrap().token, CLAIM_HISTORY as u64 + 3);
        let aborted = ClaimRecord::abort(record.as_ref()).unwrap();
        assert_eq!(
            ClaimRecord::executions(Some(&aborted)),
            kept,
            "kept when aborted"
        );
        let done = ClaimRecord::finish(record.as_ref(), "w", 19, &report(19))
            .unwrap()
            .unwrap();
        assert_eq!(ClaimRecord::executions(Some(&done)), kept, "kept when done");
        assert_eq!(worker_of("gpu@box@12#3"), "gpu@box");
        let claimants = Claimants::new("gpu@box", 12);
        assert_eq!(claimants.next(), "gpu@box@12#1");
        assert_eq!(worker_of(&claimants.next()), "gpu@box", "as it names them");
        assert_eq!(worker_of("w1"), "w1");
    }

    #[test]
    fn a_lease_changes_token_only_when_it_changes_hands() {
        let a = LeaseRecord::take(None, "a", 0, 100).unwrap();
        assert_eq!(a.token, 1);
        assert_eq!(LeaseRecord::take(Some(&a), "b", 50, 100), None);
        let late = LeaseRecord::take(Some(&a), "a", 500, 100).unwrap();
        assert_eq!(late.token, 1, "the owner renewing late keeps its token");
        let b = LeaseRecord::take(Some(&a), "b", 101, 100).unwrap();
        assert_eq!(b.token, 2);
        assert!(
            !LeaseRecord::admits(Some(&b), &a.fence()),
            "a is fenced off"
        );
        assert!(LeaseRecord::admits(Some(&b), &b.fence()));
        let released = LeaseRecord::release(Some(&b), &b.fence()).unwrap();
        assert_eq!(
            LeaseRecord::take(Some(&released), "c", 102, 100)
                .unwrap()
                .token,
            3
        );
        assert_eq!(LeaseRecord::release(Some(&b), &a.fence()), None);
    }

    #[test]
    fn every_fresh_claim_is_a_new_execution_and_only_its_holder_finishes_it() {
        // Claimants: copies of the job, on worker w1.
        let (c1, r1) = ClaimRecord::claim(None, "w1/a", 0, 100, None);
        assert_eq!(c1, held(1, &[]));
        let r1 = r1.unwrap();
        assert_eq!(
            ClaimRecord::claim(Some(&r1), "w1/b", 50, 100, None).0,
            Claim::HeldBy("w1/a".into()),
            "a second copy on the same worker waits for the first"
        );
        let (again, again_record) = ClaimRecord::claim(Some(&r1), "w1/a", 60, 100, None);
        assert_eq!(
            again,
            held(1, &[]),
            "the same claimant asking again (its answer lost) gets its execution back"
        );
        assert_eq!(again_record.unwrap().expires_at, 160, "renewed");
        let (renewed, _) = ClaimRecord::renew(Some(&r1), "w1/a", 1, 150, 100);
        assert_eq!(renewed, held(1, &[]), "its holder renews late");
        let (c2, r2) = ClaimRecord::claim(Some(&r1), "w1/c", 150, 100, None);
        assert_eq!(
            c2,
            held(2, &[(1, "w1/a")]),
            "a restarted worker is a new execution, told of the one before"
        );
        let r2 = r2.unwrap();
        assert_eq!(
            ClaimRecord::renew(Some(&r2), "w1/a", 1, 160, 100).0,
            Claim::HeldBy("w1/c".into()),
            "the old execution has lost it"
        );
        let done = ClaimRecord::finish(Some(&r2), "w1", 1, &report(1))
            .unwrap()
            .expect("the first execution to finish wins, even one that lost the claim");
        assert_eq!(
            ClaimRecord::renew(Some(&done), "w1", 2, 170, 100).0,
            Claim::Done(Some(Box::new(report(1)))),
            "the newer execution learns at its next renewal, and stops"
        );
        assert_eq!(
            ClaimRecord::finish(Some(&done), "w1", 2, &report(2)),
            Err(Claim::Done(Some(Box::new(report(1))))),
            "a second finish is refused"
        );
        assert_eq!(
            ClaimRecord::finish(Some(&done), "w1", 1, &report(1)),
            Ok(None),
            "finishing again after a lost reply is fine"
        );
        assert_eq!(
            ClaimRecord::claim(Some(&done), "w2", 10_000, 100, None).0,
            Claim::Done(Some(Box::new(report(1)))),
            "a redelivered copy gets the report, never the step"
        );
        assert_eq!(
            ClaimRecord::abort(Some(&done)),
            None,
            "finished stays finished"
        );
    }

    #[test]
    fn past_the_delivery_limit_a_claim_is_given_to_no_new_execution() {
        // Limit 1: two executions may begin; a third copy is refused.
        let (_, r1) = ClaimRecord::claim(None, "w1@1#1", 0, 100, Some(1));
        let (c2, r2) = ClaimRecord::claim(r1.as_ref(), "w2@1#1", 200, 100, Some(1));
        assert_eq!(c2, held(2, &[(1, "w1")]), "one began: a second may");
        let r2 = r2.unwrap();
        assert_eq!(
            ClaimRecord::claim(Some(&r2), "w2@1#1", 250, 100, Some(1)).0,
            held(2, &[(1, "w1")]),
            "its own claimant asking again is no new execution"
        );
        assert_eq!(
            ClaimRecord::claim(Some(&r2), "w3@1#1", 400, 100, Some(1)),
            (Claim::Exhausted { began: 2 }, None),
            "two began and none finished: refused, and nothing changes"
        );
        assert_eq!(
            ClaimRecord::claim(Some(&r2), "w3@1#1", 400, 100, None).0,
            held(3, &[(1, "w1"), (2, "w2")]),
            "without a limit the claim is free"
        );
        let done = ClaimRecord::finish(Some(&r2), "w2", 2, &report(2))
            .unwrap()
            .unwrap();
        assert_eq!(
            ClaimRecord::claim(Some(&done), "w3@1#1", 400, 100, Some(1)).0,
            Claim::Done(Some(Box::new(report(2)))),
            "a finished attempt is told as finished, whatever its count"
        );
    }

    #[test]
    fn an_aborted_claim_stays_aborted() {
        let aborted = ClaimRecord::abort(None).unwrap();
        assert_eq!(
            ClaimRecord::claim(Some(&aborted), "w1", 0, 100, None).0,
            Claim::Aborted
        );
        assert_eq!(
            ClaimRecord::renew(Some(&aborted), "w1", 0, 0, 100).0,
            Claim::Aborted
        );
        assert_eq!(
            ClaimRecord::finish(Some(&aborted), "w1", 0, &report(0)),
            Ok(None)
        );
    }
}
