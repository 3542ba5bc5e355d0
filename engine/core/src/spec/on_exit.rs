//! `[workflow] on-exit`: which step may be the one that runs last.

use super::model::Workflow;
use crate::diagnostic::Diagnostic;
use crate::spec::values::closest;

/// The on-exit step must be a step of the workflow that needs nothing and
/// that nothing needs: it runs after everything else, whatever happened,
/// so an edge either way would contradict that.
pub(super) fn check(workflow: &Workflow) -> Vec<Diagnostic> {
    let Some(exit) = &workflow.on_exit else {
        return Vec::new();
    };
    let Some(step) = workflow.step(&exit.value) else {
        let mut d = Diagnostic::at(
            exit.span.clone(),
            format!("`on-exit` names `{}`, which is not a step", exit.value),
        )
        .with_label("no such step");
        if let Some(near) = closest(&exit.value, workflow.steps.iter().map(|s| s.id.as_str())) {
            d = d.with_note(format!("did you mean `{near}`?"));
        }
        return vec![d];
    };
    let mut diags = Vec::new();
    if let Some(need) = step.needs.first() {
        diags.push(
            Diagnostic::at(
                need.span.clone(),
                format!(
                    "step `{}` is the run's `on-exit` step and so needs no step: it runs after all of them",
                    step.id
                ),
            )
            .with_label("remove this")
            .with_related(exit.span.clone(), "named as `on-exit` here"),
        );
    }
    for other in &workflow.steps {
        if let Some(need) = other.needs.iter().find(|n| n.value == step.id) {
            diags.push(
                Diagnostic::at(
                    need.span.clone(),
                    format!(
                        "step `{}` needs `{}`, the run's `on-exit` step, which runs after every other step",
                        other.id, step.id
                    ),
                )
                .with_label("an `on-exit` step cannot be needed")
                .with_related(exit.span.clone(), "named as `on-exit` here"),
            );
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    fn errors(source: &str) -> Vec<String> {
        match crate::spec::load(source) {
            Ok(_) => Vec::new(),
            Err(diags) => diags.iter().map(|d| d.message.clone()).collect(),
        }
    }

    #[test]
    fn an_on_exit_step_is_a_step_with_no_edges() {
        let ok = "[workflow]\nname = \"w\"\non-exit = \"clean\"\n[steps.a]\nrun = \"true\"\n[steps.clean]\nrun = \"true\"\n";
        assert!(errors(ok).is_empty(), "{:?}", errors(ok));
        let unknown = ok.replace("on-exit = \"clean\"", "on-exit = \"claen\"");
        assert_eq!(
            errors(&unknown),
            ["`on-exit` names `claen`, which is not a step"]
        );
        let needs = ok.replace("[steps.clean]\n", "[steps.clean]\nneeds = [\"a\"]\n");
        assert!(
            errors(&needs)[0].contains("needs no step"),
            "{:?}",
            errors(&needs)
        );
        let needed = ok.replace("[steps.a]\n", "[steps.a]\nneeds = [\"clean\"]\n");
        assert_eq!(
            errors(&needed),
            ["step `a` needs `clean`, the run's `on-exit` step, which runs after every other step"]
        );
    }
}
