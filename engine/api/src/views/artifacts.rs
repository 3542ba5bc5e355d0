//! The view of a step's artifacts: what a run page and `weft artifacts`
//! list, and what a download is named by.

use serde::{Deserialize, Serialize};
use weft_core::run::RunState;

/// A stored artifact of a step: download it from
/// `/api/runs/{id}/artifacts/{step}/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactView {
    pub step: String,
    pub name: String,
    /// Where the step wrote it, as declared.
    #[serde(default)]
    pub path: String,
    /// SHA-256 of its bytes (of the tar stream, for a directory).
    pub digest: String,
    pub size: u64,
    /// A directory, downloaded as a tar.
    #[serde(default)]
    pub dir: bool,
}

impl ArtifactView {
    /// The artifacts of step `i` of `state`.
    pub fn of_step(state: &RunState, i: usize) -> Vec<Self> {
        let spec = &state.plan.workflow.steps[i];
        state.steps[i]
            .artifacts
            .iter()
            .map(|(name, a)| ArtifactView {
                step: spec.id.clone(),
                name: name.clone(),
                path: spec
                    .artifact(name)
                    .map(|d| d.path.clone())
                    .unwrap_or_default(),
                digest: a.digest.to_string(),
                size: a.size,
                dir: a.dir,
            })
            .collect()
    }
}
