//! Policy: what a run's submitter may run, and how big. An administrator
//! writes a [`Policy`] in the server's `[policy]`; at submit it is resolved
//! for the submitter's role into a [`RunPolicy`], recorded with the run (so
//! a replay follows the rules the run was admitted under), checked on the
//! workflow as written ([`RunPolicy::review`], with each refusal's line and
//! column) and again on every job as rendered ([`RunPolicy::admit`]), so a
//! parameter cannot smuggle a refused value past the first check.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diagnostic::Diagnostic;
use crate::ports::Role;
use crate::spec::units::{parse_bytes, parse_duration};
use crate::spec::{ForEach, JobAction, Step, StepAction, Workflow};

/// A kind of step a role may be allowed to run (a join step needs none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Run,
    Container,
    Cuda,
    Wasm,
}

impl StepKind {
    fn of<F: crate::templated::Form>(action: &StepAction<F>) -> Option<StepKind> {
        match action {
            StepAction::Run { .. } => Some(StepKind::Run),
            StepAction::Container { .. } => Some(StepKind::Container),
            StepAction::Cuda { .. } => Some(StepKind::Cuda),
            StepAction::Wasm { .. } => Some(StepKind::Wasm),
            // Run by no worker: nothing for a role's kinds to allow.
            StepAction::Approve { .. } | StepAction::Workflow { .. } | StepAction::Join => None,
        }
    }
}

/// The server's `[policy]`, as its administrator writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Policy {
    /// The images container steps may use: `name` exactly (pin one by
    /// digest with `name@sha256:...`), or a prefix ending in `*`
    /// (`registry.example/team/*`). Empty: any image.
    pub images: Vec<String>,
    /// The host directories container steps may mount, each read-only
    /// unless it ends in `:rw` (`"/data"`, `"/scratch:rw"`); a mount's
    /// source must be one of them or inside one. Empty: no host path.
    /// (A worker checks again with symbolic links resolved, against its
    /// own `allowed-mounts`.)
    pub mounts: Vec<String>,
    /// The most one step may ask for, whoever submits it.
    pub ceilings: Ceilings,
    /// What each role may run; a role not named here gets the defaults of
    /// [`RoleRules`].
    pub roles: BTreeMap<Role, RoleRules>,
}

/// What one role may run. By default: every kind and pool, containers
/// without a network and as nobody.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RoleRules {
    /// The step kinds it may run; absent: all of them.
    pub kinds: Option<Vec<StepKind>>,
    /// The pools its steps may go to; absent: any pool.
    pub pools: Option<Vec<String>>,
    /// Whether its container steps may have a network (`network = true`).
    pub network: bool,
    /// Whether its container steps may choose their user; if not, they
    /// run as `nobody` (65534:65534), never as the image's root.
    pub container_user: bool,
}

/// `[policy.ceilings]`: sizes as `"16GiB"`, durations as `"24h"`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Ceilings {
    pub cpus: Option<f64>,
    pub memory: Option<String>,
    pub gpus: Option<u32>,
    pub timeout: Option<String>,
    /// Most instances of one `for-each` step.
    pub fan_out: Option<u32>,
    /// Most memory a plugin (hook or `wasm` step) may be given.
    pub plugin_memory: Option<String>,
}

/// The rules one run is held to: its submitter's role's, with every size
/// read. Recorded with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RunPolicy {
    pub role: Role,
    pub kinds: Option<Vec<StepKind>>,
    pub pools: Option<Vec<String>>,
    pub images: Vec<String>,
    /// `(directory, writable)` a container may mount.
    pub mounts: Vec<(String, bool)>,
    pub network: bool,
    pub container_user: bool,
    pub max_cpus: Option<f64>,
    pub max_memory: Option<u64>,
    pub max_gpus: Option<u32>,
    pub max_timeout_ms: Option<u64>,
    pub max_fan_out: Option<u32>,
    pub max_plugin_memory: Option<u64>,
}

/// The user a container runs as when its submitter may not choose one.
pub const CONTAINER_NOBODY: &str = "65534:65534";

impl Policy {
    /// The rules for `role`; an unreadable size or duration is named.
    pub fn for_role(&self, role: Role) -> Result<RunPolicy, String> {
        let rules = self.roles.get(&role).cloned().unwrap_or_default();
        let c = &self.ceilings;
        let bytes = |v: &Option<String>, what: &str| {
            v.as_deref()
                .map(|t| parse_bytes(t).map_err(|e| format!("`policy.ceilings.{what}`: {e}")))
                .transpose()
        };
        let timeout = c
            .timeout
            .as_deref()
            .map(|t| {
                parse_duration(t)
                    .map(|d| d.as_millis() as u64)
                    .map_err(|e| format!("`policy.ceilings.timeout`: {e}"))
            })
            .transpose()?;
        Ok(RunPolicy {
            role,
            kinds: rules.kinds,
            pools: rules.pools,
            images: self.images.clone(),
            mounts: self
                .mounts
                .iter()
                .map(|m| match m.strip_suffix(":rw") {
                    Some(dir) => (dir.to_string(), true),
                    None => (m.strip_suffix(":ro").unwrap_or(m).to_string(), false),
                })
                .map(|(dir, rw)| match dir.starts_with('/') {
                    true => Ok((crate::spec::lexically_normal(&dir), rw)),
                    false => Err(format!("`policy.mounts`: `{dir}` is not an absolute path")),
                })
                .collect::<Result<_, _>>()?,
            network: rules.network,
            container_user: rules.container_user,
            max_cpus: c.cpus,
            max_memory: bytes(&c.memory, "memory")?,
            max_gpus: c.gpus,
            max_timeout_ms: timeout,
            max_fan_out: c.fan_out,
            max_plugin_memory: bytes(&c.plugin_memory, "plugin-memory")?,
        })
    }

    /// Checks every role's rules read: what a server does when it starts.
    pub fn validate(&self) -> Result<(), String> {
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            self.for_role(role)?;
        }
        Ok(())
    }
}

/// Whether `image` is one `patterns` allows.
fn image_allowed(patterns: &[String], image: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => image.starts_with(prefix),
            None => image == p,
        })
}

fn templated(text: &str) -> bool {
    text.contains("{{")
}

impl RunPolicy {
    fn role(&self) -> &'static str {
        self.role.as_str()
    }

    /// Why the kind, pool and sizes of `step` are refused, if they are
    /// (the checks that need no rendered value).
    fn step_refusals(&self, step: &Step) -> Vec<String> {
        let mut out = Vec::new();
        if let (Some(kind), Some(kinds)) = (StepKind::of(&step.action), &self.kinds) {
            if !kinds.contains(&kind) {
                out.push(format!(
                    "policy: the {} role may not run `{}` steps",
                    self.role(),
                    step.action.kind()
                ));
            }
        }
        if let Some(pools) = &self.pools {
            if !pools.contains(&step.pool) {
                out.push(format!(
                    "policy: the {} role may not use pool `{}` (it may use: {})",
                    self.role(),
                    step.pool,
                    pools.join(", ")
                ));
            }
        }
        let r = &step.resources;
        if let (Some(cpus), Some(max)) = (r.cpus, self.max_cpus) {
            if cpus > max {
                out.push(format!("policy: {cpus} CPUs is over the ceiling of {max}"));
            }
        }
        if let (Some(memory), Some(max)) = (r.memory, self.max_memory) {
            if memory > max {
                out.push(format!(
                    "policy: {} MiB of memory is over the ceiling of {} MiB",
                    memory >> 20,
                    max >> 20
                ));
            }
        }
        if let Some(max) = self.max_gpus {
            if r.gpus > max {
                out.push(format!(
                    "policy: {} GPU(s) is over the ceiling of {max}",
                    r.gpus
                ));
            }
        }
        if let (Some(timeout), Some(max)) = (step.timeout, self.max_timeout_ms) {
            if timeout.as_millis() as u64 > max {
                out.push(format!(
                    "policy: a timeout of {} is over the ceiling of {}",
                    crate::spec::units::format_duration(timeout),
                    crate::spec::units::format_duration(std::time::Duration::from_millis(max))
                ));
            }
        }
        if let (Some(ForEach::Items(items)), Some(max)) = (&step.for_each, self.max_fan_out) {
            if items.len() as u64 > u64::from(max) {
                out.push(format!(
                    "policy: {} `for-each` items is over the ceiling of {max}",
                    items.len()
                ));
            }
        }
        if let Some(max) = self.max_plugin_memory {
            let hooks = step.hooks.pre.iter().chain(&step.hooks.post);
            let wasm = match &step.action {
                StepAction::Wasm { spec } => spec.memory,
                _ => None,
            };
            if hooks
                .filter_map(|h| h.value.memory)
                .chain(wasm)
                .any(|m| m > max)
            {
                out.push(format!(
                    "policy: a plugin's memory is over the ceiling of {} MiB",
                    max >> 20
                ));
            }
        }
        out
    }

    /// The refusals of a workflow as written, each at its step: what the
    /// API answers a submit with (403), before anything runs. Values still
    /// templates are checked when rendered, by [`RunPolicy::admit`].
    pub fn review(&self, workflow: &Workflow) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for step in &workflow.steps {
            let mut refusals = self.step_refusals(step);
            if let StepAction::Container { spec } = &step.action {
                if !templated(&spec.image) && !image_allowed(&self.images, &spec.image) {
                    refusals.push(format!(
                        "policy: image `{}` is not one this server allows ({})",
                        spec.image,
                        self.images.join(", ")
                    ));
                }
                refusals.extend(self.container_refusals(spec.network, spec.user.is_some()));
                refusals.extend(
                    spec.mounts
                        .iter()
                        .filter(|m| !templated(&m.source))
                        .filter_map(|m| self.mount_refusal(&m.source, m.read_only)),
                );
            }
            out.extend(refusals.into_iter().map(|message| {
                Diagnostic::at(step.span.clone(), message)
                    .with_label(format!("step `{}`", step.id))
                    .with_note("the server's `[policy]` refuses it; an administrator sets it")
            }));
        }
        out
    }

    /// Why mounting host path `source` (read-only or not) is refused, if
    /// it is: it must be one of the policy's directories or inside one.
    fn mount_refusal(&self, source: &str, read_only: bool) -> Option<String> {
        let path = crate::spec::lexically_normal(source);
        let inside =
            |dir: &str| path == dir || path.starts_with(&format!("{}/", dir.trim_end_matches('/')));
        match self.mounts.iter().find(|(dir, _)| inside(dir)) {
            Some((_, writable)) if *writable || read_only => None,
            Some((dir, _)) => Some(format!(
                "policy: `{source}` may be mounted read-only only (`{dir}` is read-only): add `:ro`"
            )),
            None if self.mounts.is_empty() => Some(format!(
                "policy: mounting host path `{source}` is refused: this server allows container steps no host paths"
            )),
            None => Some(format!(
                "policy: mounting host path `{source}` is refused: this server allows only {}",
                self.mounts
                    .iter()
                    .map(|(d, _)| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn container_refusals(&self, network: bool, user: bool) -> Vec<String> {
        let mut out = Vec::new();
        if network && !self.network {
            out.push(format!(
                "policy: the {} role's containers may not have a network",
                self.role()
            ));
        }
        if user && !self.container_user {
            out.push(format!(
                "policy: the {} role's containers may not choose their user; they run as nobody",
                self.role()
            ));
        }
        out
    }

    /// Admits a step's job as rendered (templates filled in), or says
    /// which rule refuses it. A container whose submitter may not choose
    /// its user is set to run as [`CONTAINER_NOBODY`].
    pub fn admit(&self, step: &Step, action: &mut JobAction) -> Result<(), String> {
        let mut refusals = self.step_refusals(step);
        if let StepAction::Container { spec } = action {
            if !image_allowed(&self.images, &spec.image) {
                refusals.push(format!(
                    "policy: image `{}` is not one this server allows ({})",
                    crate::run::bounded_text(&spec.image, 200),
                    self.images.join(", ")
                ));
            }
            refusals.extend(self.container_refusals(spec.network, spec.user.is_some()));
            refusals.extend(
                spec.mounts
                    .iter()
                    .filter_map(|m| self.mount_refusal(&m.source, m.read_only)),
            );
            if !self.container_user {
                spec.user = Some(CONTAINER_NOBODY.to_string());
            }
        }
        match refusals.is_empty() {
            true => Ok(()),
            false => Err(refusals.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml_text: &str) -> Policy {
        toml::from_str(toml_text).unwrap()
    }

    const POLICY: &str = r#"
images = ["weft-test/*", "python:3.12@sha256:abc"]
mounts = ["/data", "/scratch:rw"]
[ceilings]
cpus = 4
memory = "1GiB"
gpus = 1
timeout = "1h"
fan-out = 3
plugin-memory = "64MiB"
[roles.operator]
kinds = ["container", "wasm"]
pools = ["default"]
[roles.admin]
network = true
container-user = true
"#;

    fn review(role: Role, workflow: &str) -> Vec<String> {
        let workflow = crate::spec::load(workflow).unwrap_or_else(|d| panic!("{d:?}"));
        policy(POLICY)
            .for_role(role)
            .unwrap()
            .review(&workflow)
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn a_workflow_is_reviewed_against_its_submitters_rules() {
        let ok = "[workflow]\nname = \"w\"\n[steps.c.container]\nimage = \"weft-test/busybox:1\"\nmounts = [\"/data/set:/d:ro\", \"/scratch/a:/s\"]\n";
        assert!(
            review(Role::Operator, ok).is_empty(),
            "{:?}",
            review(Role::Operator, ok)
        );
        for (workflow, says) in [
            ("[steps.s]\nrun = \"id\"", "may not run `run` steps"),
            ("[steps.c]\npool = \"gpu\"\ncontainer = { image = \"weft-test/x\" }", "may not use pool `gpu`"),
            ("[steps.c.container]\nimage = \"python:3.12\"", "image `python:3.12` is not one"),
            ("[steps.c.container]\nimage = \"weft-test/x\"\nnetwork = true", "may not have a network"),
            ("[steps.c.container]\nimage = \"weft-test/x\"\nuser = \"0\"", "may not choose their user"),
            ("[steps.c]\nresources = { cpus = 8 }\ncontainer = { image = \"weft-test/x\" }", "8 CPUs is over"),
            ("[steps.c]\nresources = { memory = \"2GiB\" }\ncontainer = { image = \"weft-test/x\" }", "2048 MiB of memory is over"),
            ("[steps.c]\ntimeout = \"2h\"\ncontainer = { image = \"weft-test/x\" }", "timeout of 2h00m is over the ceiling of 1h00m"),
            ("[steps.c]\nfor-each = [1, 2, 3, 4]\ncontainer = { image = \"weft-test/x\" }", "4 `for-each` items"),
            ("[steps.w.wasm]\nplugin = \"p@1\"\nmemory = \"128MiB\"", "plugin's memory is over"),
            ("[steps.c.container]\nimage = \"weft-test/x\"\nmounts = [\"/etc:/x:ro\"]", "host path `/etc` is refused: this server allows only /data, /scratch"),
            ("[steps.c.container]\nimage = \"weft-test/x\"\nmounts = [\"/data/../etc:/x:ro\"]", "`/data/../etc` is refused"),
            ("[steps.c.container]\nimage = \"weft-test/x\"\nmounts = [\"/database:/x:ro\"]", "`/database` is refused"),
            ("[steps.c.container]\nimage = \"weft-test/x\"\nmounts = [\"/data/set:/x\"]", "read-only only"),
        ] {
            let refused = review(Role::Operator, &format!("[workflow]\nname = \"w\"\n{workflow}\n"));
            assert!(refused.iter().any(|m| m.contains(says)), "{workflow}: {refused:?}");
        }
        // An admin may run shell steps, with a network and its own user.
        let admin = "[workflow]\nname = \"w\"\n[steps.s]\nrun = \"id\"\n[steps.c.container]\nimage = \"weft-test/x\"\nnetwork = true\nuser = \"0\"\n";
        assert!(review(Role::Admin, admin).is_empty());
        // A templated image waits for dispatch.
        let templated = "[workflow]\nname = \"w\"\n[params]\ni = \"x\"\n[steps.c.container]\nimage = \"{{ params.i }}\"\n";
        assert!(review(Role::Operator, templated).is_empty());
    }

    #[test]
    fn a_rendered_job_is_admitted_or_refused_and_containers_run_as_nobody() {
        let workflow = crate::spec::load(
            "[workflow]\nname = \"w\"\n[steps.c.container]\nimage = \"{{ params.i }}\"\n[params]\ni = \"x\"\n",
        )
        .unwrap();
        let step = &workflow.steps[0];
        let rules = policy(POLICY).for_role(Role::Operator).unwrap();
        let job = |image: &str| -> JobAction {
            let mut spec = match &step.action {
                StepAction::Container { spec } => spec.clone(),
                other => panic!("{other:?}"),
            };
            spec.image = image.into();
            StepAction::Container { spec }
        };
        let mut ok = job("weft-test/busybox:1");
        rules.admit(step, &mut ok).unwrap();
        assert!(
            matches!(&ok, StepAction::Container { spec } if spec.user.as_deref() == Some(CONTAINER_NOBODY))
        );
        let e = rules.admit(step, &mut job("evil/miner")).unwrap_err();
        assert!(e.contains("image `evil/miner` is not one"), "{e}");
        // A pinned image is that digest only.
        let e = rules.admit(step, &mut job("python:3.12")).unwrap_err();
        assert!(e.contains("not one"), "{e}");
        assert!(rules
            .admit(step, &mut job("python:3.12@sha256:abc"))
            .is_ok());
    }

    #[test]
    fn a_run_under_a_policy_fails_a_refused_rendered_job_and_replays_the_same() {
        use crate::run::{apply, Action, Event, FailureKind, Plan, RunState, RunStatus};
        let workflow = crate::spec::load(
            "[workflow]\nname = \"w\"\n[params]\ni = \"evil/miner\"\n[steps.c.container]\nimage = \"{{ params.i }}\"\n",
        )
        .unwrap();
        let rules = policy(POLICY).for_role(Role::Operator).unwrap();
        let record = crate::ports::RunRecord {
            cache: Default::default(),
            id: "r".into(),
            workflow: "w".into(),
            file: "w.toml".into(),
            source: String::new(),
            params: workflow.param_defaults(),
            status: RunStatus::Running,
            created_at: 0,
            finished_at: None,
            summary: None,
            plugins: Default::default(),
            submitted_by: None,
            limits: Default::default(),
            policy: Some(rules),
            priority: 0,
        };
        let plan = Plan::new(workflow);
        let mut s = RunState::of_record(&record, plan.clone(), []);
        let actions = apply(&mut s, Event::Started { at: 0 });
        assert!(!actions.iter().any(|a| matches!(a, Action::Dispatch(_))));
        assert_eq!(s.status, RunStatus::Failed);
        let attempt = &s.steps[0].tasks[0].attempts[0];
        assert_eq!(attempt.error_kind, FailureKind::Policy);
        assert!(attempt
            .error
            .as_deref()
            .unwrap()
            .contains("image `evil/miner`"));
        // Replayed from its record, the run is the same.
        let again = RunState::of_record(&record, plan, [Event::Started { at: 0 }]);
        assert_eq!(again.status, RunStatus::Failed);
    }

    #[test]
    fn bad_sizes_are_named_when_the_policy_is_read() {
        let e = policy("[ceilings]\nmemory = \"lots\"")
            .validate()
            .unwrap_err();
        assert!(e.contains("policy.ceilings.memory"), "{e}");
        assert!(toml::from_str::<Policy>("[roles.operator]\nkinds = [\"docker\"]").is_err());
        assert!(toml::from_str::<Policy>("colour = 1").is_err());
    }
}
