//! The limits a run is held to: recorded with the run, so replaying its
//! events later follows the same limits whatever the server's settings
//! have become.

use serde::{Deserialize, Serialize};

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
