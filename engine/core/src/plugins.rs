//! Plugins as the engine sees them: what a registry stores about one, how a
//! workflow's reference picks a version, what a job carries to call one, and
//! the checks `weft check` makes against a registry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::diagnostic::{Diagnostic, Spanned};
use crate::run::Millis;
use crate::spec::{HookRef, PluginRef, StepAction, Workflow};

/// Which of weft's WIT worlds a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginWorld {
    /// `hook-plugin`: pre and post hooks around a step.
    Hook,
    /// `step-plugin`: a whole step.
    Step,
    /// `admission-plugin`: asked by the server before it accepts a run.
    Admission,
}

impl PluginWorld {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginWorld::Hook => "hook",
            PluginWorld::Step => "step",
            PluginWorld::Admission => "admission",
        }
    }
}

/// One version of a plugin in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRecord {
    pub name: String,
    /// A semantic version, `X.Y.Z`.
    pub version: String,
    /// Lowercase hex SHA-256 of the component: the key of its bytes.
    pub sha256: String,
    pub size: u64,
    pub world: PluginWorld,
    /// Exported functions, as `interface#function`.
    pub exports: Vec<String>,
    /// Imported interfaces.
    #[serde(default)]
    pub imports: Vec<String>,
    pub uploaded_at: Millis,
}

/// The exact plugin a run uses for a reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedPlugin {
    pub name: String,
    /// `local` for a plugin read from a path.
    pub version: String,
    pub sha256: String,
}

impl std::fmt::Display for ResolvedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// What a job carries to call one plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginCall {
    /// The reference as the workflow wrote it.
    pub reference: String,
    /// What the run resolved it to; `None` where nothing resolved it.
    #[serde(default)]
    pub resolved: Option<ResolvedPlugin>,
    /// The `config` table given to the plugin, `{}` if none.
    #[serde(default)]
    pub config: Json,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub memory: Option<u64>,
}

impl PluginCall {
    /// `name@version` once resolved, else the reference.
    pub fn label(&self) -> String {
        self.resolved
            .as_ref()
            .map_or_else(|| self.reference.clone(), |r| r.to_string())
    }
}

/// Whether `text` is an exact version (`1.2.3`), which pins it.
fn exact(text: &str) -> Option<semver::Version> {
    semver::Version::parse(text.trim_start_matches('=')).ok()
}

/// The order every plugin store lists in: by name, then oldest upload first.
pub fn by_upload(mut records: Vec<PluginRecord>) -> Vec<PluginRecord> {
    records.sort_by(|a, b| {
        (a.name.as_str(), a.uploaded_at, a.version.as_str()).cmp(&(
            b.name.as_str(),
            b.uploaded_at,
            b.version.as_str(),
        ))
    });
    records
}

/// The version of `versions` a reference picks: an exact version picks
/// itself; a range (`^1.2`, `~0.3`, `1`, `>=1, <2`) or no version picks the
/// highest that matches (pre-releases only when asked for exactly).
pub fn pick<'a>(reference: &PluginRef, versions: &'a [PluginRecord]) -> Option<&'a PluginRecord> {
    let parsed = |r: &'a PluginRecord| semver::Version::parse(&r.version).ok().map(|v| (v, r));
    let candidates = versions
        .iter()
        .filter(|r| r.name == reference.name)
        .filter_map(parsed);
    match reference.version.as_deref() {
        Some(text) if exact(text).is_some() => {
            let want = exact(text)?;
            candidates
                .filter(|(v, _)| *v == want)
                .map(|(_, r)| r)
                .next()
        }
        Some(text) => {
            let req = semver::VersionReq::parse(text).ok()?;
            candidates
                .filter(|(v, _)| req.matches(v))
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, r)| r)
        }
        None => candidates
            .filter(|(v, _)| v.pre.is_empty())
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, r)| r),
    }
}

/// Whether `text` is a version a plugin may be pushed as.
pub fn valid_version(text: &str) -> Result<(), String> {
    semver::Version::parse(text)
        .map(|_| ())
        .map_err(|e| format!("`{text}` is not a version like 1.2.3: {e}"))
}

/// Every plugin reference of a workflow, with the world it needs.
pub fn references(workflow: &Workflow) -> Vec<(Spanned<PluginRef>, PluginWorld)> {
    let mut out = Vec::new();
    for step in &workflow.steps {
        for h in step.hooks.pre.iter().chain(&step.hooks.post) {
            out.push((
                Spanned::new(h.value.plugin.clone(), h.span.clone()),
                PluginWorld::Hook,
            ));
        }
        if let StepAction::Wasm { spec } = &step.action {
            out.push((
                Spanned::new(spec.plugin.clone(), step.span.clone()),
                PluginWorld::Step,
            ));
        }
    }
    out
}

/// Whether a reference is a local file rather than a registry name.
pub fn is_local(reference: &PluginRef) -> bool {
    reference.name.ends_with(".wasm")
}

/// `weft check` against a registry: unknown plugins, versions that match
/// nothing, and plugins of the wrong world. `registry` holds every version
/// of every plugin the workflow names; local paths are not checked here.
pub fn check(workflow: &Workflow, registry: &[PluginRecord]) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut seen = BTreeMap::new();
    for (r, need) in references(workflow) {
        if is_local(&r.value)
            || seen
                .insert((r.value.to_string(), r.span.start), ())
                .is_some()
        {
            continue;
        }
        let versions: Vec<&PluginRecord> =
            registry.iter().filter(|p| p.name == r.value.name).collect();
        if versions.is_empty() {
            diags.push(
                Diagnostic::at(r.span, format!("unknown plugin `{}`", r.value.name))
                    .with_label("no such plugin in the registry")
                    .with_note(
                        "push it with `weft plugin push FILE.wasm --name NAME --version X.Y.Z`",
                    ),
            );
            continue;
        }
        match pick(&r.value, registry) {
            None => {
                let have: Vec<&str> = versions.iter().map(|p| p.version.as_str()).collect();
                diags.push(
                    Diagnostic::at(
                        r.span,
                        format!("no version of `{}` matches `{}`", r.value.name, r.value),
                    )
                    .with_label("no matching version")
                    .with_note(format!("the registry has {}", have.join(", "))),
                );
            }
            Some(p) if p.world != need => diags.push(
                Diagnostic::at(
                    r.span,
                    format!(
                        "`{}@{}` is a {} plugin; this needs a {} plugin",
                        p.name,
                        p.version,
                        p.world.as_str(),
                        need.as_str()
                    ),
                )
                .with_label(format!("not a {} plugin", need.as_str())),
            ),
            Some(_) => {}
        }
    }
    diags
}

/// A job's call of a hook, with what the run resolved.
pub fn hook_call(hook: &HookRef, resolved: &BTreeMap<String, ResolvedPlugin>) -> PluginCall {
    let reference = hook.plugin.to_string();
    PluginCall {
        resolved: resolved.get(&reference).cloned(),
        reference,
        config: hook.config.clone(),
        timeout_ms: hook.timeout.map(|d| d.as_millis() as u64),
        memory: hook.memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, version: &str) -> PluginRecord {
        PluginRecord {
            name: name.into(),
            version: version.into(),
            sha256: format!("{name}{version}"),
            size: 1,
            world: PluginWorld::Hook,
            exports: vec![],
            imports: vec![],
            uploaded_at: 0,
        }
    }

    #[test]
    fn hooks_take_references_or_tables_and_check_finds_what_is_missing() {
        let src = r#"
[workflow]
name = "w"
[defaults]
hooks = { post = ["redact@^1"] }
[steps.a]
run = "true"
hooks = { pre = [{ plugin = "validate@1.0.0", config = { schema = { type = "object" } }, timeout = "2s", memory = "16MiB" }] }
[steps.b]
wasm = { plugin = "stats", input = { text = "x" } }
"#;
        let wf = crate::spec::load(src).unwrap();
        let a = wf.step("a").unwrap();
        assert_eq!(a.hooks.post[0].value.plugin.name, "redact");
        let pre = &a.hooks.pre[0].value;
        assert_eq!(pre.plugin.version.as_deref(), Some("1.0.0"));
        assert_eq!(pre.config["schema"]["type"], "object");
        assert_eq!(pre.timeout, Some(std::time::Duration::from_secs(2)));
        assert_eq!(pre.memory, Some(16 << 20));
        let mut stats = rec("stats", "0.1.0");
        stats.world = PluginWorld::Hook;
        let registry = [rec("redact", "2.0.0"), stats, rec("validate", "1.0.0")];
        let messages: Vec<String> = check(&wf, &registry)
            .into_iter()
            .map(|d| d.message)
            .collect();
        assert_eq!(
            messages,
            [
                "no version of `redact` matches `redact@^1`".to_string(),
                "`stats@0.1.0` is a hook plugin; this needs a step plugin".to_string(),
            ]
        );
        let bad = "[workflow]\nname = \"w\"\n[steps.a]\nrun = \"true\"\nhooks = { pre = [{ config = {} }, 3] }\n";
        let diags = crate::spec::load(bad).unwrap_err();
        assert!(
            diags.iter().any(|d| d.message.contains("needs a `plugin`")),
            "{diags:?}"
        );
    }

    #[test]
    fn references_pick_exact_versions_and_the_highest_in_a_range() {
        let all = [
            rec("a", "1.0.0"),
            rec("a", "1.2.0"),
            rec("a", "1.10.1"),
            rec("a", "2.0.0"),
            rec("a", "3.0.0-rc.1"),
            rec("b", "9.0.0"),
        ];
        let pick_v =
            |r: &str| pick(&PluginRef::parse(r).unwrap(), &all).map(|p| p.version.as_str());
        assert_eq!(pick_v("a@1.2.0"), Some("1.2.0"));
        assert_eq!(pick_v("a@=1.0.0"), Some("1.0.0"));
        assert_eq!(pick_v("a@^1"), Some("1.10.1"));
        assert_eq!(pick_v("a@1"), Some("1.10.1"));
        assert_eq!(pick_v("a@~1.2"), Some("1.2.0"));
        assert_eq!(pick_v("a"), Some("2.0.0"));
        assert_eq!(pick_v("a@1.3.0"), None);
        assert_eq!(pick_v("a@^4"), None);
        assert_eq!(pick_v("c"), None);
        assert!(valid_version("1.2.3").is_ok());
        assert!(valid_version("1.2").is_err());
    }
}
