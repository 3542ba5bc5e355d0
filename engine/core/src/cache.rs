//! Caching across runs: what a step's cache key is made of, what an entry
//! keeps, and what a run chooses (`--no-cache`, `--refresh STEP`).
//!
//! The key is a SHA-256 of the job as a worker would get it, rendered: the
//! action, env (secrets as their names, with the time each was last set),
//! inputs (params, upstream outputs, item; not the run's id), the digests
//! of the input artifacts, the plugins by hash with their config, what the
//! step declares it leaves, and the step's own `key` text. The workflow's
//! name and the step's id are part of it too: one workflow's step never
//! reuses another's result, whoever wrote it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest as _, Sha256};

use crate::artifacts::{Artifacts, Digest};
use crate::diagnostic::Spanned;
use crate::run::{Job, Millis, TaskId};

/// How long an entry is used when the step does not say.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 86_400);
/// The longest `ttl` a step may ask for.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 86_400);
/// Most bytes of a step's rendered `key` text.
pub const MAX_KEY_TEXT_BYTES: usize = 1024;

/// A step's `cache`, as written (`cache = true`, or a table).
#[derive(Debug, Clone, PartialEq)]
pub struct CachePolicy {
    /// Text added to the key (templated): a date, a version, to split it.
    pub key: Option<Spanned<String>>,
    /// How long an entry is used.
    pub ttl: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            key: None,
            ttl: DEFAULT_TTL,
        }
    }
}

/// What one run chose about the cache. Results are saved either way, so
/// the next run finds the fresh one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RunCacheChoice {
    /// `--no-cache`: no step of the run reuses an earlier result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cache: bool,
    /// `--refresh STEP`: these steps run even if a result is cached.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub refresh: BTreeSet<String>,
}

impl RunCacheChoice {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Refuses a `refresh` step `workflow` does not have, naming it.
    pub fn check(&self, workflow: &crate::spec::Workflow) -> Result<(), String> {
        match self.refresh.iter().find(|s| workflow.step(s).is_none()) {
            Some(unknown) => Err(format!(
                "`refresh`: workflow `{}` has no step `{unknown}`",
                workflow.name
            )),
            None => Ok(()),
        }
    }

    /// Whether step `step` may reuse a cached result in this run.
    pub fn may_reuse(&self, step: &str) -> bool {
        !self.no_cache && !self.refresh.contains(step)
    }
}

/// Where a reused result was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedFrom {
    pub run: String,
    pub task: TaskId,
}

impl std::fmt::Display for CachedFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cached from run {}, step {}", self.run, self.task)
    }
}

/// A result kept for later runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CacheEntry {
    pub from: CachedFrom,
    pub outputs: Json,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: Artifacts,
    pub saved_at: Millis,
    pub expires_at: Millis,
}

impl CacheEntry {
    pub fn is_live(&self, now: Millis) -> bool {
        now < self.expires_at
    }
}

/// A cacheable attempt about to be dispatched: the driver looks its key
/// up and feeds `TaskCached` on a hit, or hands `job` to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheProbe {
    pub job: Job,
    /// The step's rendered `key` text.
    pub extra: Option<String>,
}

/// A cacheable attempt that succeeded: the driver saves its result.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSave {
    pub job: Job,
    pub extra: Option<String>,
    pub ttl: Duration,
    pub outputs: Json,
    pub artifacts: Artifacts,
}

/// When each secret a job names was last set: a secret set again is a new
/// key, though its value is never part of it.
pub type SecretVersions = BTreeMap<String, Millis>;

/// The cache key of `job`.
pub fn cache_key(job: &Job, extra: Option<&str>, secrets: &SecretVersions) -> Digest {
    let mut inputs = job.inputs.clone();
    if let Json::Object(map) = &mut inputs {
        // The run's id differs every run; a step that uses it renders it
        // into its action, which is in the key.
        map.remove("run");
    }
    let plugin = |c: &crate::plugins::PluginCall| {
        serde_json::json!({
            "reference": c.reference,
            "sha256": c.resolved.as_ref().map(|r| r.sha256.as_str()),
            "config": c.config,
        })
    };
    let mut parts = serde_json::json!({
        "v": 1,
        "workflow": job.workflow,
        "step": job.task.step,
        "action": job.action,
        "env": job.env,
        "secrets": job
            .secrets
            .iter()
            .map(|n| (n.clone(), secrets.get(n).copied().unwrap_or(0)))
            .collect::<BTreeMap<_, _>>(),
        "inputs": inputs,
        "artifacts": job
            .artifacts
            .iter()
            .map(|a| (format!("{}.{}", a.step, a.name), a.artifact.digest.to_string()))
            .collect::<BTreeMap<_, _>>(),
        "pre": job.pre_hooks.iter().map(plugin).collect::<Vec<_>>(),
        "post": job.post_hooks.iter().map(plugin).collect::<Vec<_>>(),
        "plugin": job.step_plugin.as_ref().map(plugin),
        "produces": job.produces,
        "extra": extra,
    });
    if let Some(params) = &job.shared_params {
        // Shared params are not in `inputs`; their digest stands for them.
        parts["params"] = Json::String(params.to_string());
    }
    let mut hasher = Sha256::new();
    write_canonical(&parts, &mut hasher);
    Digest::from_bytes(&hasher.finalize().into())
}

/// JSON with object keys sorted at every level, whatever the map type
/// keeps: the same value always hashes the same.
fn write_canonical(value: &Json, hasher: &mut Sha256) {
    match value {
        Json::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for k in keys {
                hasher.update(Json::String(k.clone()).to_string().as_bytes());
                hasher.update(b":");
                write_canonical(&map[k], hasher);
                hasher.update(b",");
            }
            hasher.update(b"}");
        }
        Json::Array(items) => {
            hasher.update(b"[");
            for item in items {
                write_canonical(item, hasher);
                hasher.update(b",");
            }
            hasher.update(b"]");
        }
        other => hasher.update(other.to_string().as_bytes()),
    }
}
