//! Reads a workflow file into the model, collecting every problem it finds
//! (with spans) instead of stopping at the first.

use std::time::Duration;

use serde_json::Value as Json;
use toml::de::{DeTable, DeValue};
use toml::Spanned as TSpanned;

use super::model::*;
use super::settings::Settings;
use super::units::parse_duration;
pub use super::values::is_name;
use super::values::{closest, step_texts, to_json, too_deep, type_name};
use crate::diagnostic::{Diagnostic, Span, Spanned};

/// Largest workflow file accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 32 << 20;
/// Deepest nesting of arrays and inline tables accepted.
pub const MAX_NESTING: usize = 64;

pub(super) const SETTING_KEYS: &[&str] = &[
    "timeout",
    "retries",
    "env",
    "resources",
    "hooks",
    "pool",
    "cache",
];
const ACTION_KEYS: &[&str] = &["run", "container", "cuda", "wasm", "approve", "workflow"];
const STEP_ONLY_KEYS: &[&str] = &[
    "needs",
    "when",
    "for-each",
    "description",
    "name",
    "artifacts",
    "continue-on-error",
    "max-parallel",
];
pub(super) const RETRY_KEYS: &[&str] = &["limit", "backoff", "delay", "max-delay", "jitter"];
pub(super) const RESOURCE_KEYS: &[&str] = &["cpus", "memory", "gpus"];
pub(super) const HOOK_KEYS: &[&str] = &["pre", "post"];
pub(super) const HOOK_ENTRY_KEYS: &[&str] = &["plugin", "config", "timeout", "memory"];

/// Every key a step table accepts.
pub fn step_keys() -> Vec<&'static str> {
    [ACTION_KEYS, STEP_ONLY_KEYS, SETTING_KEYS].concat()
}

/// Parses `source`; returns the workflow if it could be built, and every problem found.
pub fn parse(source: &str) -> (Option<Workflow>, Vec<Diagnostic>) {
    let mut p = Parser { diags: Vec::new() };
    if source.len() > MAX_SOURCE_BYTES {
        p.diags.push(Diagnostic::whole_file(format!(
            "workflow file is {} bytes; the limit is {} bytes",
            source.len(),
            MAX_SOURCE_BYTES
        )));
        return (None, p.diags);
    }
    if let Some(at) = too_deep(source) {
        p.diags.push(
            Diagnostic::at(
                at..at + 1,
                format!("arrays and tables nest more than {MAX_NESTING} deep"),
            )
            .with_label("too deep"),
        );
        return (None, p.diags);
    }
    let (doc, errors) = DeTable::parse_recoverable(source);
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        p.diags
            .push(Diagnostic::at(span, toml_message(e.message())).with_label("here"));
    }
    if !errors.is_empty() {
        return (None, p.diags);
    }
    let workflow = p.workflow(doc.get_ref(), doc.span());
    (workflow, p.diags)
}

fn toml_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    format!("invalid TOML: {first}")
}

pub(super) type Value<'a> = TSpanned<DeValue<'a>>;

pub(super) struct Parser {
    pub(super) diags: Vec<Diagnostic>,
}

impl Parser {
    pub(super) fn error(
        &mut self,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) {
        self.diags
            .push(Diagnostic::at(span, message).with_label(label));
    }

    pub(super) fn wrong_type(&mut self, v: &Value, what: &str, expected: &str) {
        self.error(
            v.span(),
            format!("{what} must be {expected}, not {}", type_name(v.get_ref())),
            format!("expected {expected}"),
        );
    }

    pub(super) fn check_keys(&mut self, table: &DeTable, allowed: &[&str], what: &str) {
        for key in table.keys() {
            if !allowed.contains(&key.get_ref().as_ref()) {
                let mut d = Diagnostic::at(
                    key.span(),
                    format!("unknown key `{}` in {what}", key.get_ref()),
                )
                .with_label("unknown key");
                if let Some(near) = closest(key.get_ref(), allowed.iter().copied()) {
                    d = d.with_note(format!("did you mean `{near}`?"));
                } else {
                    d = d.with_note(format!("{what} accepts: {}", allowed.join(", ")));
                }
                self.diags.push(d);
            }
        }
    }

    pub(super) fn table<'v, 'a>(
        &mut self,
        v: &'v Value<'a>,
        what: &str,
    ) -> Option<&'v DeTable<'a>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(v, what, "a table");
                None
            }
        }
    }

    /// `v` as a list of at most `max` items: `what` names it and `items`
    /// what it holds, in the messages. `None` (with the error) otherwise.
    pub(super) fn bounded_list<'v, 'a>(
        &mut self,
        v: &'v Value<'a>,
        what: &str,
        items: &str,
        max: usize,
    ) -> Option<&'v [Value<'a>]> {
        let DeValue::Array(list) = v.get_ref() else {
            self.wrong_type(v, what, &format!("a list of {items}"));
            return None;
        };
        if list.len() > max {
            self.error(
                v.span(),
                format!("{} {items} in {what}: at most {max}", list.len()),
                "too many",
            );
            return None;
        }
        Some(list)
    }

    pub(super) fn string(&mut self, v: &Value, what: &str) -> Option<Spanned<String>> {
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(s.to_string(), v.span())),
            _ => {
                self.wrong_type(v, what, "a string");
                None
            }
        }
    }

    pub(super) fn strings(&mut self, v: &Value, what: &str) -> Option<Vec<Spanned<String>>> {
        match v.get_ref() {
            DeValue::Array(items) => {
                let out: Vec<_> = items
                    .iter()
                    .filter_map(|i| self.string(i, &format!("each of {what}")))
                    .collect();
                (out.len() == items.len()).then_some(out)
            }
            _ => {
                self.wrong_type(v, what, "a list of strings");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, v: &Value, what: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(v, what, "true or false");
                None
            }
        }
    }

    pub(super) fn integer(&mut self, v: &Value, what: &str, max: i64) -> Option<i64> {
        self.integer_in(v, what, 0, max)
    }

    pub(super) fn integer_in(&mut self, v: &Value, what: &str, min: i64, max: i64) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) if (min..=max).contains(&n) => Some(n),
                    _ => {
                        self.error(
                            v.span(),
                            format!("{what} must be between {min} and {max}"),
                            "out of range",
                        );
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(v, what, "an integer");
                None
            }
        }
    }

    pub(super) fn duration(&mut self, v: &Value, what: &str) -> Option<Duration> {
        let s = self.string(v, what)?;
        match parse_duration(&s.value) {
            Ok(d) => Some(d),
            Err(e) => {
                self.diags.push(
                    Diagnostic::at(s.span, format!("{what}: bad duration `{}`: {e}", s.value))
                        .with_label("not a duration")
                        .with_note("durations look like `30s`, `10m`, `1h30m`, `250ms`"),
                );
                None
            }
        }
    }

    pub(super) fn json(&mut self, v: &Value, what: &str) -> Option<Json> {
        match to_json(v) {
            Ok(j) => Some(j),
            Err((span, msg)) => {
                self.error(span, format!("{what}: {msg}"), "cannot be used");
                None
            }
        }
    }

    pub(super) fn step(
        &mut self,
        key: &TSpanned<std::borrow::Cow<'_, str>>,
        value: &Value,
        defaults: &Settings,
    ) -> Step {
        let id = key.get_ref().to_string();
        if !is_name(&id) {
            self.error(
                key.span(),
                format!("step id `{id}` may hold only letters, digits, `_` and `-`"),
                "bad step id",
            );
        }
        // A step that is wrong is still kept (its error is recorded, so the
        // file fails): its other keys are checked too, and the steps that
        // need it or read its outputs are not told it does not exist.
        let empty = DeTable::new();
        let t = self.table(value, &format!("step `{id}`")).unwrap_or(&empty);
        self.check_keys(t, &step_keys(), &format!("step `{id}`"));

        let actions: Vec<(&str, &Value)> = ACTION_KEYS
            .iter()
            .filter_map(|k| t.get(*k).map(|v| (*k, v)))
            .collect();
        if actions.len() > 1 {
            let names: Vec<_> = actions.iter().map(|(k, _)| format!("`{k}`")).collect();
            let second = t
                .keys()
                .find(|k| k.get_ref() == actions[1].0)
                .map(|k| k.span())
                .unwrap_or(key.span());
            let first = t
                .keys()
                .find(|k| k.get_ref() == actions[0].0)
                .map(|k| k.span())
                .unwrap_or(key.span());
            self.diags.push(
                Diagnostic::at(
                    second,
                    format!(
                        "step `{id}` has {} actions ({}); a step does exactly one",
                        actions.len(),
                        names.join(", ")
                    ),
                )
                .with_label("second action")
                .with_related(first, "first action")
                .with_note("split it into two steps joined by `needs`"),
            );
        }
        let errors_before = self.diags.len();
        let action = match actions.first() {
            None => Some(StepAction::Join),
            Some(("run", v)) => match v.get_ref() {
                DeValue::String(_) => self.string(v, "`run`").map(|s| StepAction::Run {
                    command: Command::Shell(s.value),
                }),
                DeValue::Array(a) if !a.is_empty() => {
                    self.strings(v, "`run`").map(|s| StepAction::Run {
                        command: Command::Argv(s.into_iter().map(|s| s.value).collect()),
                    })
                }
                DeValue::Array(_) => {
                    self.error(
                        v.span(),
                        "`run` is an empty list",
                        "give a program and its arguments",
                    );
                    None
                }
                _ => {
                    self.wrong_type(v, "`run`", "a shell command string or an argv list");
                    None
                }
            },
            Some(("container", v)) => self.container(v).map(|spec| StepAction::Container { spec }),
            Some(("cuda", v)) => self.cuda(v).map(|spec| StepAction::Cuda { spec }),
            Some(("approve", v)) => self.approval(v).map(|spec| StepAction::Approve { spec }),
            Some(("workflow", v)) => self
                .sub_workflow(v)
                .map(|spec| StepAction::Workflow { spec }),
            Some((_, v)) => self.wasm(v).map(|spec| StepAction::Wasm { spec }),
        };
        let action = action.unwrap_or_else(|| {
            // The placeholder must never let a wrong file through.
            if self.diags.len() == errors_before {
                self.error(
                    key.span(),
                    format!("step `{id}` has no valid action"),
                    "here",
                );
            }
            StepAction::Join
        });

        let (needs, needs_any) = match t.get("needs") {
            Some(v) => self.needs(v),
            None => Default::default(),
        };
        let max_parallel = t
            .get("max-parallel")
            .and_then(|v| self.integer(v, "`max-parallel`", 100_000))
            .map(|n| n.max(1) as u32);
        if let (Some(v), None) = (t.get("max-parallel"), t.get("for-each")) {
            self.error(
                v.span(),
                "`max-parallel` limits the instances of a `for-each` step, and this step has no `for-each`",
                "no `for-each`",
            );
        }
        let continue_on_error = t
            .get("continue-on-error")
            .and_then(|v| self.boolean(v, "`continue-on-error`"))
            .unwrap_or(false);
        let when = t.get("when").and_then(|v| self.string(v, "`when`"));
        let for_each = match t.get("for-each") {
            Some(v) => match v.get_ref() {
                DeValue::String(_) => self.string(v, "`for-each`").map(ForEach::Template),
                DeValue::Array(items) => items
                    .iter()
                    .map(|i| self.json(i, "a `for-each` item"))
                    .collect::<Option<Vec<_>>>()
                    .map(ForEach::Items),
                _ => {
                    self.wrong_type(
                        v,
                        "`for-each`",
                        "a list or a template such as \"{{ params.items }}\"",
                    );
                    None
                }
            },
            None => None,
        };
        self.refuse_for_action(t, &action);
        if let Some(v) = t.get("description") {
            self.string(v, "`description`");
        }
        let name = t
            .get("name")
            .and_then(|v| self.string(v, "`name`"))
            .map(|s| s.value);
        let mut artifacts = t
            .get("artifacts")
            .map(|v| self.artifacts(v, &id))
            .unwrap_or_default();
        // A kernel's output buffers are its artifacts, one per buffer (a
        // `for-each` kernel's instances would clash: theirs stay outputs).
        if let (StepAction::Cuda { spec }, None) = (&action, &for_each) {
            let implicit: Vec<_> = crate::artifacts::kernel_artifacts(spec)
                .into_iter()
                .filter(|a| !artifacts.iter().any(|d| d.value.name == a.name))
                .map(|a| Spanned::new(a, key.span()))
                .collect();
            artifacts.extend(implicit);
        }
        let settings = self.settings(t, &id).over(defaults);
        let texts = step_texts(actions.first(), &settings);
        let secrets = crate::secrets::names_in(
            texts
                .iter()
                .filter(|t| t.place != TextPlace::Action)
                .map(|t| t.text.value.as_str()),
        );
        // A kernel needs a GPU to run on, whether or not the step says so.
        let resources = match &action {
            StepAction::Cuda { .. } if settings.resources.gpus == 0 => Resources {
                gpus: 1,
                ..settings.resources
            },
            _ => settings.resources,
        };
        Step {
            id,
            name,
            span: key.span(),
            action,
            needs,
            needs_any,
            continue_on_error,
            max_parallel,
            when,
            for_each,
            timeout: settings.timeout,
            retries: settings.retry_policy(),
            env: settings.env.clone(),
            resources,
            hooks: Hooks {
                pre: settings.pre.clone(),
                post: settings.post.clone(),
            },
            pool: settings
                .pool
                .clone()
                .unwrap_or_else(|| DEFAULT_POOL.to_string()),
            texts,
            secrets,
            artifacts,
            cache: settings.cache.clone().flatten(),
        }
    }
}
