//! Admission: what an admission plugin is asked about a run, what its
//! answer may say, and how a patch it returns changes the run's jobs. The
//! server calls the plugins (`weft-api`); the decision is recorded in the
//! run's first event (`Admitted`), so every replay applies the same
//! patches and every view shows the same decision.
//!
//! A patch may lower a step's `resources` and `timeout` and add to its
//! `env`; it can never raise a limit, so an admission plugin cannot undo
//! what the policy capped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::diagnostic::Diagnostic;
use crate::run::{bounded_text, Job};
use crate::spec::{StepAction, Workflow};

/// Reasons one decision keeps, and the bytes of each.
const MAX_REASONS: usize = 20;
const MAX_REASON_BYTES: usize = 1000;
/// Environment variables one patch may add, and the bytes of each value.
const MAX_PATCH_ENV: usize = 64;
const MAX_PATCH_ENV_BYTES: usize = 4096;

/// What a plugin decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Allow,
    Deny,
    Patch,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Patch => "patch",
        }
    }
}

/// Why, for the submitter; `step` points at the step it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionReason {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// A patch's lower limits for a step's resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
}

/// What a patch changes of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StepPatch {
    pub step: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub resources: ResourcePatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

fn is_default(r: &ResourcePatch) -> bool {
    *r == ResourcePatch::default()
}

/// One plugin's decision on one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AdmissionDecision {
    /// `name@version`.
    pub plugin: String,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<AdmissionReason>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<StepPatch>,
    /// How long the plugin took.
    pub ms: f64,
}

/// The plugin's answer as it writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    decision: Verdict,
    #[serde(default)]
    reasons: Vec<AdmissionReason>,
    #[serde(default)]
    patches: Vec<StepPatch>,
}

/// What a plugin is asked, as JSON text: the workflow as it would run
/// (each step's kind, pool, image, resources, timeout and env; a field at
/// its default is left out), its params, and who submits.
pub fn request(workflow: &Workflow, submitter: Option<&str>, role: &str) -> String {
    let steps: Vec<StepRequest<'_>> = workflow
        .steps
        .iter()
        .map(|s| {
            let container = match &s.action {
                StepAction::Container { spec } => Some(spec),
                _ => None,
            };
            StepRequest {
                id: &s.id,
                kind: s.action.kind(),
                pool: &s.pool,
                image: container.map(|c| c.image.as_str()),
                network: container.is_some_and(|c| c.network),
                resources: s.resources,
                timeout_ms: s.timeout.map(|t| t.as_millis() as u64),
                env: s
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.value.as_str()))
                    .collect(),
                for_each: s.for_each.is_some(),
            }
        })
        .collect();
    let request = Request {
        workflow: WorkflowRequest {
            name: &workflow.name,
            params: workflow.param_defaults(),
            steps,
        },
        submitter: Submitter {
            name: submitter,
            role,
        },
    };
    serde_json::to_string(&request).unwrap_or_default()
}

#[derive(Serialize)]
struct Request<'a> {
    workflow: WorkflowRequest<'a>,
    submitter: Submitter<'a>,
}

#[derive(Serialize)]
struct WorkflowRequest<'a> {
    name: &'a str,
    params: serde_json::Map<String, Json>,
    steps: Vec<StepRequest<'a>>,
}

#[derive(Serialize)]
struct Submitter<'a> {
    name: Option<&'a str>,
    role: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct StepRequest<'a> {
    id: &'a str,
    kind: &'static str,
    pool: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    network: bool,
    resources: crate::spec::Resources,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    for_each: bool,
}

/// Reads and checks `plugin`'s answer about `workflow`: steps it names
/// exist, patches only lower limits, reasons are bounded.
pub fn decision(
    plugin: &str,
    answer: Json,
    workflow: &Workflow,
    ms: f64,
) -> Result<AdmissionDecision, String> {
    let answer: Answer = serde_json::from_value(answer).map_err(|e| {
        format!("its answer is not `{{\"decision\": \"allow\" | \"deny\" | \"patch\", \"reasons\"?: [...], \"patches\"?: [...]}}`: {e}")
    })?;
    let known = |step: &str| workflow.step(step).is_some();
    for reason in &answer.reasons {
        if let Some(step) = reason.step.as_deref().filter(|s| !known(s)) {
            return Err(format!(
                "a reason names step `{step}`, which the workflow does not have"
            ));
        }
    }
    if answer.decision != Verdict::Patch && !answer.patches.is_empty() {
        return Err(format!(
            "it decided `{}` and returned patches: only `patch` may",
            answer.decision.as_str()
        ));
    }
    if answer.patches.len() > workflow.steps.len() {
        return Err(format!(
            "it returned {} patches for {} steps: at most one a step",
            answer.patches.len(),
            workflow.steps.len()
        ));
    }
    for patch in &answer.patches {
        let Some(step) = workflow.step(&patch.step) else {
            return Err(format!(
                "a patch names step `{}`, which the workflow does not have",
                patch.step
            ));
        };
        let r = &patch.resources;
        let over = |asked: Option<f64>, had: Option<f64>| match (asked, had) {
            (Some(a), Some(h)) => a > h || a <= 0.0,
            (Some(a), None) => a <= 0.0,
            (None, _) => false,
        };
        if over(r.cpus, step.resources.cpus)
            || over(
                r.memory.map(|m| m as f64),
                step.resources.memory.map(|m| m as f64),
            )
            || r.gpus.is_some_and(|g| g > step.resources.gpus)
            || matches!((patch.timeout_ms, step.timeout), (Some(t), Some(had)) if t as u128 > had.as_millis())
            || patch.timeout_ms == Some(0)
        {
            return Err(format!(
                "its patch of step `{}` raises a limit: a patch may only lower `resources` and `timeout`",
                patch.step
            ));
        }
        if patch.env.len() > MAX_PATCH_ENV
            || patch.env.keys().any(|k| !valid_env_name(k))
            || patch.env.values().any(|v| v.len() > MAX_PATCH_ENV_BYTES)
        {
            return Err(format!(
                "its patch of step `{}` sets a bad `env` (at most {MAX_PATCH_ENV} names of letters, \
                 digits and `_`, each value at most {MAX_PATCH_ENV_BYTES} bytes)",
                patch.step
            ));
        }
    }
    let reasons = answer
        .reasons
        .into_iter()
        .take(MAX_REASONS)
        .map(|r| AdmissionReason {
            message: bounded_text(&r.message, MAX_REASON_BYTES),
            step: r.step,
        })
        .collect();
    Ok(AdmissionDecision {
        plugin: plugin.to_string(),
        verdict: answer.decision,
        reasons,
        patches: answer.patches,
        ms,
    })
}

fn valid_env_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with("WEFT_")
}

impl AdmissionDecision {
    /// A denial's reasons, each at its step's line where it names one.
    pub fn diagnostics(&self, workflow: &Workflow) -> Vec<Diagnostic> {
        let reasons = if self.reasons.is_empty() {
            vec![AdmissionReason {
                message: "denied, without a reason".into(),
                step: None,
            }]
        } else {
            self.reasons.clone()
        };
        reasons
            .into_iter()
            .map(|r| {
                let message = format!("admission plugin {}: {}", self.plugin, r.message);
                match r.step.as_deref().and_then(|s| workflow.step(s)) {
                    Some(step) => Diagnostic::at(step.span.clone(), message)
                        .with_label(format!("step `{}`", step.id)),
                    None => Diagnostic::whole_file(message),
                }
            })
            .collect()
    }
}

/// Applies the patches `decisions` hold for `step` to its job, as built.
pub fn patch_job(job: &mut Job, step: &str, decisions: &[AdmissionDecision]) {
    let patches = decisions
        .iter()
        .flat_map(|d| &d.patches)
        .filter(|p| p.step == step);
    for patch in patches {
        let r = &patch.resources;
        if let Some(cpus) = r.cpus {
            job.resources.cpus = Some(job.resources.cpus.map_or(cpus, |c| c.min(cpus)));
        }
        if let Some(memory) = r.memory {
            job.resources.memory = Some(job.resources.memory.map_or(memory, |m| m.min(memory)));
        }
        if let Some(gpus) = r.gpus {
            job.resources.gpus = job.resources.gpus.min(gpus);
        }
        if let Some(ms) = patch.timeout_ms {
            let t = std::time::Duration::from_millis(ms);
            job.timeout = Some(job.timeout.map_or(t, |had| had.min(t)));
        }
        job.env
            .extend(patch.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SOURCE: &str = "[workflow]\nname = \"w\"\n[steps.train]\nrun = \"x\"\ntimeout = \"1h\"\nresources = { gpus = 4, memory = \"8GiB\" }\n";

    fn workflow() -> Workflow {
        crate::spec::load(SOURCE).unwrap()
    }

    #[test]
    fn an_answer_is_read_and_a_patch_may_only_lower_limits() {
        let w = workflow();
        let d = decision(
            "quota@1.0.0",
            json!({"decision": "patch", "reasons": [{"message": "at most 2 GPUs", "step": "train"}],
                   "patches": [{"step": "train", "resources": {"gpus": 2}, "env": {"TEAM": "a"}}]}),
            &w,
            0.5,
        )
        .unwrap();
        assert_eq!(d.verdict, Verdict::Patch);
        let mut job = crate::run::tests::dispatched(&crate::run::apply(
            &mut crate::run::RunState::new(
                "r",
                crate::run::Plan::new(w.clone()),
                Default::default(),
            ),
            crate::run::Event::Started { at: 0 },
        ))
        .remove(0);
        patch_job(&mut job, "train", &[d]);
        assert_eq!(job.resources.gpus, 2);
        assert_eq!(job.env["TEAM"], "a");
        assert_eq!(job.resources.memory, Some(8 << 30));
        for raise in [
            json!({"step": "train", "resources": {"gpus": 5}}),
            json!({"step": "train", "resources": {"memory": 17179869184u64}}),
            json!({"step": "train", "timeout-ms": 7_200_000}),
            json!({"step": "nope"}),
            json!({"step": "train", "env": {"WEFT_TOKEN": "x"}}),
        ] {
            let answer = json!({"decision": "patch", "patches": [raise.clone()]});
            assert!(decision("q", answer, &w, 0.0).is_err(), "{raise}");
        }
        assert!(decision(
            "q",
            json!({"decision": "allow", "patches": [{"step": "train"}]}),
            &w,
            0.0
        )
        .is_err());
        assert!(decision("q", json!({"decision": "maybe"}), &w, 0.0).is_err());
    }

    #[test]
    fn a_denial_points_at_the_step_it_names() {
        let w = workflow();
        let d = decision(
            "quota@1.0.0",
            json!({"decision": "deny", "reasons": [{"message": "too many GPUs", "step": "train"}, {"message": "x".repeat(5000)}]}),
            &w,
            0.1,
        )
        .unwrap();
        let diags = d.diagnostics(&w);
        assert_eq!(diags.len(), 2);
        assert!(diags[0]
            .message
            .contains("admission plugin quota@1.0.0: too many GPUs"));
        assert!(diags[1].message.len() < 1100);
        let r: Json = serde_json::from_str(&request(&w, Some("ops"), "operator")).unwrap();
        assert_eq!(r["workflow"]["steps"][0]["resources"]["gpus"], 4);
        assert_eq!(r["workflow"]["steps"][0]["timeout-ms"], 3_600_000);
        assert_eq!(r["submitter"]["role"], "operator");
    }
}
