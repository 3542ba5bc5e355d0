//! Saved workflow definitions, by name, with every version kept.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::run::Millis;
use crate::Error;

/// One version of a saved workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedWorkflow {
    pub name: String,
    /// 1 for the first save, then one more per save.
    pub version: u32,
    pub source: String,
    pub saved_at: Millis,
}

/// The workflow store port.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Saves `source` as the next version of `name`; returns that version.
    ///
    /// # Contract
    /// Versions of a name are 1, 2, 3, ... with no gaps, even when two
    /// saves race.
    async fn save_workflow(&self, name: &str, source: &str, now: Millis) -> Result<u32, Error>;

    /// A version of `name`, the latest when `version` is `None`.
    async fn workflow(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<SavedWorkflow>, Error>;

    /// The latest version of every saved workflow, by name.
    async fn workflows(&self) -> Result<Vec<SavedWorkflow>, Error>;

    /// The latest version number of every saved workflow, by name,
    /// without their texts: what the scheduler reads every few seconds to
    /// find new versions. Stores where texts cost more to read override it.
    async fn latest_versions(&self) -> Result<Vec<(String, u32)>, Error> {
        Ok(self
            .workflows()
            .await?
            .into_iter()
            .map(|w| (w.name, w.version))
            .collect())
    }
}
