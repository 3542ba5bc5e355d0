//! The workflow file's top level: `[workflow]` (name, timeout, on-exit,
//! on-finish, outputs, concurrency), `[params]`, `[triggers]`, `[defaults]`
//! and the `[steps]` table, each step read by `Parser::step`.

use toml::de::{DeTable, DeValue};

use super::model::*;
use super::parse::{is_name, Parser, SETTING_KEYS};
use super::settings::Settings;
use crate::diagnostic::{Diagnostic, Span};

const TOP_KEYS: &[&str] = &["workflow", "params", "defaults", "steps", "triggers"];
const WORKFLOW_KEYS: &[&str] = &[
    "name",
    "description",
    "timeout",
    "on-exit",
    "on-finish",
    "concurrency",
    "outputs",
];

impl Parser {
    pub(super) fn workflow(&mut self, doc: &DeTable, doc_span: Span) -> Option<Workflow> {
        self.check_keys(doc, TOP_KEYS, "the workflow file");
        let mut name = None;
        let mut description = None;
        let mut timeout = None;
        let mut on_exit = None;
        let mut outputs = None;
        let mut on_finish = Vec::new();
        match doc.get("workflow") {
            Some(v) => {
                if let Some(t) = self.table(v, "`workflow`") {
                    self.check_keys(t, WORKFLOW_KEYS, "`[workflow]`");
                    match t.get("name") {
                        Some(n) => name = self.string(n, "`workflow.name`").map(|s| s.value),
                        None => {
                            self.error(v.span(), "`[workflow]` needs a `name`", "no `name` here")
                        }
                    }
                    if let Some(d) = t.get("description") {
                        description = self.string(d, "`workflow.description`").map(|s| s.value);
                    }
                    if let Some(d) = t.get("timeout") {
                        timeout = self.duration(d, "`workflow.timeout`");
                    }
                    if let Some(d) = t.get("on-finish") {
                        on_finish = self.on_finish(d);
                    }
                    if let Some(d) = t.get("on-exit") {
                        on_exit = self.string(d, "`workflow.on-exit`");
                    }
                    if let Some(d) = t.get("outputs") {
                        outputs = self.string(d, "`workflow.outputs`");
                    }
                }
            }
            None => self.diags.push(
                Diagnostic::at(doc_span.start..doc_span.start, "missing `[workflow]` table")
                    .with_label("add `[workflow]` with a `name`")
                    .with_note(
                        "every workflow file starts with:\n[workflow]\nname = \"my-workflow\"",
                    ),
            ),
        }

        let mut params = Vec::new();
        if let Some(v) = doc.get("params") {
            if let Some(t) = self.table(v, "`params`") {
                for (key, value) in t.iter() {
                    if !is_name(key.get_ref()) {
                        self.error(
                            key.span(),
                            format!(
                                "parameter name `{}` may hold only letters, digits, `_` and `-`",
                                key.get_ref()
                            ),
                            "bad name",
                        );
                    }
                    if let Some(default) =
                        self.json(value, &format!("parameter `{}`", key.get_ref()))
                    {
                        params.push(Param {
                            name: key.get_ref().to_string(),
                            default,
                            span: key.span(),
                        });
                    }
                }
            }
        }

        let concurrency = match doc.get("workflow") {
            Some(w) => match w.get_ref() {
                DeValue::Table(t) => t
                    .get("concurrency")
                    .and_then(|c| self.concurrency(c, &params)),
                _ => None,
            },
            None => None,
        };

        let triggers = match doc.get("triggers") {
            Some(v) => self.triggers(v, &params),
            None => Default::default(),
        };

        let defaults = match doc.get("defaults") {
            Some(v) => match self.table(v, "`defaults`") {
                Some(t) => {
                    self.check_keys(t, SETTING_KEYS, "`[defaults]`");
                    self.settings(t, "defaults")
                }
                None => Settings::default(),
            },
            None => Settings::default(),
        };

        let mut steps = Vec::new();
        match doc.get("steps") {
            Some(v) => {
                if let Some(t) = self.table(v, "`steps`") {
                    if t.is_empty() {
                        self.error(
                            v.span(),
                            "the workflow has no steps",
                            "add `[steps.<id>]` tables",
                        );
                    }
                    for (key, value) in t.iter() {
                        steps.push(self.step(key, value, &defaults));
                    }
                }
            }
            None => self.diags.push(
                Diagnostic::at(doc_span.start..doc_span.start, "the workflow has no steps")
                    .with_label("add `[steps.<id>]` tables"),
            ),
        }
        Some(Workflow {
            name: name.unwrap_or_default(),
            description,
            timeout,
            on_exit,
            on_finish,
            outputs,
            concurrency,
            params,
            steps,
            schedules: triggers.schedules,
            webhooks: triggers.webhooks,
        })
    }
}
