//! Where a step's reused result came from (`cache`), as the API says it.

use serde::{Deserialize, Serialize};

/// Where a reused cached result was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CachedFromView {
    pub run: String,
    /// The step (with its item's index, `train[2]`, for a `for-each`).
    pub step: String,
}

impl From<&weft_core::cache::CachedFrom> for CachedFromView {
    fn from(c: &weft_core::cache::CachedFrom) -> Self {
        Self {
            run: c.run.clone(),
            step: c.task.to_string(),
        }
    }
}
