//! `[workflow] on-finish`: saved workflows a finished run starts, each
//! perhaps only when a condition on the run holds.

use super::parse::{is_name, Parser, Value};
use crate::diagnostic::{Diagnostic, Span, Spanned};
use crate::expr::Condition;

const ENTRY_KEYS: &[&str] = &["workflow", "when"];
/// Most follow-ups one workflow may name.
pub const MAX_ON_FINISH: usize = 8;
/// The parameters a follow-up run gets, when its workflow declares them.
pub const FOLLOW_UP_PARAMS: [&str; 3] = ["parent_run", "parent_status", "parent_workflow"];

/// One `on-finish` entry.
#[derive(Debug, Clone)]
pub struct OnFinish {
    /// The saved workflow to start (its latest version).
    pub workflow: Spanned<String>,
    /// A CEL condition over `run` (`id`, `status`, `failed`, `workflow`);
    /// always when absent.
    pub when: Option<Spanned<String>>,
    pub span: Span,
}

impl OnFinish {
    /// Whether the entry applies to a run of `workflow` that ended `status`.
    pub fn applies(&self, run_id: &str, workflow: &str, status: &str) -> Result<bool, String> {
        let Some(when) = &self.when else {
            return Ok(true);
        };
        let mut vars = serde_json::Map::new();
        vars.insert(
            "run".into(),
            serde_json::json!({"id": run_id, "status": status, "failed": status == "failed", "workflow": workflow}),
        );
        Condition::compile(&when.value)
            .map_err(|e| e.message)
            .and_then(|c| c.evaluate(&vars))
    }
}

impl Parser {
    pub(super) fn on_finish(&mut self, v: &Value) -> Vec<OnFinish> {
        let Some(items) = self.bounded_list(
            v,
            "`workflow.on-finish`",
            "`{ workflow, when }` tables",
            MAX_ON_FINISH,
        ) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.on_finish_entry(item))
            .collect()
    }

    fn on_finish_entry(&mut self, v: &Value) -> Option<OnFinish> {
        let t = self.table(v, "each `on-finish` entry")?;
        self.check_keys(t, ENTRY_KEYS, "an `on-finish` entry");
        let Some(workflow) = t.get("workflow") else {
            self.error(
                v.span(),
                "an `on-finish` entry needs `workflow`",
                "no `workflow` here",
            );
            return None;
        };
        let workflow = self.string(workflow, "`workflow`")?;
        if !is_name(&workflow.value) {
            self.error(
                workflow.span.clone(),
                format!("`{}` is not a workflow name", workflow.value),
                "bad name",
            );
            return None;
        }
        let when = match t.get("when") {
            Some(w) => {
                let when = self.string(w, "`when`")?;
                let sample = OnFinish {
                    workflow: workflow.clone(),
                    when: Some(when.clone()),
                    span: v.span(),
                };
                if let Err(e) = sample.applies("r", "w", "failed") {
                    self.diags.push(
                        Diagnostic::at(when.span.clone(), format!("`when`: {e}"))
                            .with_label("not a condition on the run")
                            .with_note("it may read `run.id`, `run.status`, `run.failed` and `run.workflow`, as in \"run.status == 'failed'\""),
                    );
                    return None;
                }
                Some(when)
            }
            None => None,
        };
        Some(OnFinish {
            workflow,
            when,
            span: v.span(),
        })
    }
}

#[cfg(test)]
mod tests {
    fn load(on_finish: &str) -> Result<crate::spec::Workflow, Vec<String>> {
        crate::spec::load(&format!(
            "[workflow]\nname = \"w\"\non-finish = {on_finish}\n[steps.a]\nrun = \"true\"\n"
        ))
        .map_err(|d| d.iter().map(|d| d.message.clone()).collect())
    }

    #[test]
    fn follow_ups_are_read_and_their_conditions_checked() {
        let w = load("[{ workflow = \"report\" }, { workflow = \"page\", when = \"run.status == 'failed'\" }]").unwrap();
        assert_eq!(w.on_finish.len(), 2);
        assert!(w.on_finish[0].applies("r", "w", "succeeded").unwrap());
        assert!(!w.on_finish[1].applies("r", "w", "succeeded").unwrap());
        assert!(w.on_finish[1].applies("r", "w", "failed").unwrap());
        let bad = load("[{ workflow = \"page\", when = \"params.x == 1\" }]").unwrap_err();
        assert!(bad[0].starts_with("`when`:"), "{bad:?}");
        let unnamed = load("[{ when = \"true\" }]").unwrap_err();
        assert_eq!(unnamed, ["an `on-finish` entry needs `workflow`"]);
        let odd = load("[{ workflow = \"a b\" }]").unwrap_err();
        assert_eq!(odd, ["`a b` is not a workflow name"]);
    }
}
