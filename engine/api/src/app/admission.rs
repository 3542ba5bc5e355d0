//! Admission plugins on the server: each one `[[admission]]` lists is asked
//! about every run before it is accepted, in order, in the plugin sandbox
//! (no filesystem, network or environment), under its deadline and memory
//! cap. A denial refuses the run; patches are recorded with it. A plugin
//! that fails, or answers what it may not, refuses the run too: admission
//! fails closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value as Json;
use weft_core::admission::{decision, request, AdmissionDecision};
use weft_core::plugins::{pick, PluginWorld};
use weft_core::ports::PluginStore;
use weft_core::spec::{PluginRef, Workflow};
use weft_wasm_host::{CallContext, Host, Limits};

use crate::Error;

/// One `[[admission]]` entry of the server's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AdmissionOptions {
    /// `name@version-requirement` in the plugin registry.
    pub plugin: String,
    /// Given to the plugin as its context's `config`.
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Json>>,
    /// Deadline of one review, in milliseconds. Default: 1000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Memory of the plugin's instance, in MiB. Default: 64.
    #[serde(default = "default_memory")]
    pub memory_mib: u64,
}

fn default_timeout() -> u64 {
    1000
}

fn default_memory() -> u64 {
    64
}

struct Reviewer {
    reference: PluginRef,
    config: Json,
    limits: Limits,
}

/// The server's admission plugins and what runs them.
pub struct Admission {
    reviewers: Vec<Reviewer>,
    host: Arc<Host>,
    store: Arc<dyn PluginStore>,
}

impl Admission {
    /// Reads `[[admission]]`; errors name the entry.
    pub fn new(
        options: &[AdmissionOptions],
        host: Arc<Host>,
        store: Arc<dyn PluginStore>,
    ) -> Result<Self, String> {
        let reviewers = options
            .iter()
            .map(|o| {
                let reference = PluginRef::parse(&o.plugin)
                    .map_err(|e| format!("[[admission]] plugin: {e}"))?;
                let config = Json::Object(o.config.clone().unwrap_or_default());
                Ok(Reviewer {
                    reference,
                    config,
                    limits: Limits {
                        timeout: Some(Duration::from_millis(o.timeout_ms)),
                        memory_bytes: Some(o.memory_mib << 20),
                    },
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            reviewers,
            host,
            store,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.reviewers.is_empty()
    }

    /// Asks every plugin about `workflow`, submitted by `submitter` with
    /// `role`; stops at the first denial. A plugin that cannot be found,
    /// fails or answers wrongly is a 503 naming it.
    pub async fn review(
        &self,
        workflow: &Workflow,
        submitter: Option<&str>,
        role: &str,
    ) -> Result<Vec<AdmissionDecision>, Error> {
        if self.reviewers.is_empty() {
            return Ok(Vec::new());
        }
        let asked: Arc<str> = request(workflow, submitter, role).into();
        let mut decisions = Vec::new();
        for reviewer in &self.reviewers {
            let (label, plugin) = self.load(&reviewer.reference).await?;
            let failed = |e: String| {
                Error::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("admission plugin {label} failed, so the run is refused: {e}"),
                )
            };
            let ctx = CallContext {
                run_id: String::new(),
                workflow: workflow.name.clone(),
                step: String::new(),
                task: String::new(),
                attempt: 0,
                plugin: label.clone(),
                config: reviewer.config.clone(),
                artifacts: Default::default(),
            };
            let (host, limits, asked) = (self.host.clone(), reviewer.limits, asked.clone());
            // The request is JSON text, made once for every plugin.
            let started = Instant::now();
            let (answer, logs) =
                tokio::task::spawn_blocking(move || host.review(&plugin, &ctx, limits, &asked))
                    .await
                    .map_err(|e| failed(e.to_string()))?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            for line in logs {
                tracing::info!(plugin = %label, "{}: {}", line.level.as_str(), line.message);
            }
            let answer = answer.map_err(|e| failed(e.to_string()))?;
            let decided = decision(&label, answer, workflow, ms).map_err(failed)?;
            let denied = decided.verdict == weft_core::admission::Verdict::Deny;
            decisions.push(decided);
            if denied {
                break;
            }
        }
        Ok(decisions)
    }

    /// The plugin a reference names, compiled (once per content).
    async fn load(
        &self,
        reference: &PluginRef,
    ) -> Result<(String, Arc<weft_wasm_host::Plugin>), Error> {
        let missing = |why: String| {
            Error::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("admission plugin `{reference}` {why}, so the run is refused"),
            )
        };
        let versions = self.store.plugin_versions(&reference.name).await?;
        let found = pick(reference, &versions)
            .ok_or_else(|| missing("is not in the plugin registry".into()))?;
        if found.world != PluginWorld::Admission {
            return Err(missing(format!(
                "is a {} plugin, not an admission plugin",
                found.world.as_str()
            )));
        }
        let label = format!("{}@{}", found.name, found.version);
        if let Some(p) = self.host.loaded(&found.sha256) {
            return Ok((label, p));
        }
        let wasm = self
            .store
            .wasm(&found.sha256)
            .await?
            .ok_or_else(|| missing("has no stored bytes".into()))?;
        let host = self.host.clone();
        let plugin = tokio::task::spawn_blocking(move || host.load(&wasm))
            .await
            .map_err(|e| missing(e.to_string()))?
            .map_err(|e| missing(e.to_string()))?;
        Ok((label, plugin))
    }
}
