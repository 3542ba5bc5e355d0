//! What `POST /api/runs` takes: a workflow's text, its params and the
//! run's choices about the cache.

use serde::{Deserialize, Serialize};

/// `POST /api/runs` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubmitRequest {
    /// The workflow file's text.
    pub workflow: String,
    /// Its name, for display and diagnostics. Default: `workflow.toml`.
    #[serde(default)]
    pub file: Option<String>,
    /// Parameter overrides, as `--param` would give them.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
    /// No step reuses a cached result (`--no-cache`); results are still saved.
    #[serde(default)]
    pub no_cache: bool,
    /// These steps run even when a result is cached (`--refresh STEP`).
    #[serde(default)]
    pub refresh: Vec<String>,
    /// From -1000 to 1000, higher first (`--priority`): its place among
    /// runs waiting for a concurrency key's slots, and its jobs' band in
    /// their pools' queues (above 0, 0, below 0; the higher band's jobs
    /// start first when a pool is full). Default 0.
    #[serde(default)]
    #[schema(minimum = -1000, maximum = 1000)]
    pub priority: i32,
}

impl SubmitRequest {
    /// What the run chooses about the cache.
    pub fn cache_choice(&self) -> weft_core::cache::RunCacheChoice {
        weft_core::cache::RunCacheChoice {
            no_cache: self.no_cache,
            refresh: self.refresh.iter().cloned().collect(),
        }
    }
}

/// `POST /api/runs/{id}/steps/{step}/decision` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// `true` approves, `false` rejects (the step fails).
    pub approve: bool,
    /// The step's declared inputs, by name (needed to approve): its outputs.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// Why, in a few words (at most 1,000 bytes); shown with a rejection.
    #[serde(default)]
    pub comment: Option<String>,
}
