//! The limits a run is held to: recorded with the run, so replaying its
//! events later follows the same limits whatever the server's settings
//! have become; and the machine holding a success to the artifact limit.

use serde::{Deserialize, Serialize};

use super::event::{FailureKind, Outcome};

/// How big a run may grow as it runs (a `for-each` whose list is only known
/// then). How big a workflow may be is checked when it is submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RunLimits {
    /// Most tasks one step may have (the items of its `for-each`).
    pub max_tasks_per_step: u32,
    /// Most tasks all the run's steps may have together.
    pub max_tasks_per_run: u32,
    /// Most bytes of artifacts (each distinct digest once) the run's steps
    /// may leave together.
    pub max_artifact_bytes_per_run: u64,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            max_tasks_per_step: 10_000,
            max_tasks_per_run: 100_000,
            max_artifact_bytes_per_run: 100 << 30,
        }
    }
}

impl RunLimits {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl super::machine::Machine<'_> {
    /// A success whose artifacts would take the run past
    /// `max_artifact_bytes_per_run` (each distinct digest counted once) is
    /// a failure naming the limit: the files are stored, but no step sees
    /// them and the run does not grow past it.
    pub(super) fn within_artifact_limit(&self, outcome: Outcome) -> Outcome {
        let Outcome::Succeeded { artifacts, .. } = &outcome else {
            return outcome;
        };
        if artifacts.is_empty() {
            return outcome;
        }
        let limit = self.state.limits.max_artifact_bytes_per_run;
        let mut seen = std::collections::BTreeSet::new();
        let total: u64 = self
            .state
            .steps
            .iter()
            // A step's (its one task's, or reused from an earlier run).
            .flat_map(|s| s.artifacts.values())
            .chain(artifacts.values())
            .filter(|a| seen.insert(a.digest.clone()))
            .map(|a| a.size)
            .sum();
        if total <= limit {
            return outcome;
        }
        Outcome::Failed {
            reason: format!(
                "the run's artifacts would reach {} MiB; a run may leave at most {} MiB \
                 (`[orchestrator] max-artifact-bytes-per-run`)",
                total >> 20,
                limit >> 20
            ),
            exit_code: None,
            retryable: false,
            kind: FailureKind::Policy,
        }
    }
}
