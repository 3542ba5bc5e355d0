//! Letting go of finished runs (retention): a run whole, or only its step
//! logs. The caller names the attempts, from the run's events, so a store
//! needs no index of them.

use async_trait::async_trait;

use super::AttemptId;
use crate::Error;

/// The run removal port.
#[async_trait]
pub trait RunRemoval: Send + Sync {
    /// Removes run `run_id`: its record, its place in the index, its
    /// events and lease, and the step logs and claims of `attempts`. False
    /// if there was no such run.
    ///
    /// # Contract
    /// A run that has not finished is refused with [`Error::Conflict`] and
    /// left as it was.
    async fn remove_run(&self, run_id: &str, attempts: &[AttemptId]) -> Result<bool, Error>;

    /// Removes the step logs of `attempts`; reading them then gives nothing.
    async fn remove_logs(&self, attempts: &[AttemptId]) -> Result<(), Error>;
}
