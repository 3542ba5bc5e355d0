//! Whole-workflow checks that need every step at once: needs, cycles,
//! template and condition references.

use std::collections::HashMap;

use super::model::{ForEach, Step, StepAction, TextPlace, Workflow};
use crate::artifacts::ARTIFACTS_FIELD;
use crate::dag::Dag;
use crate::diagnostic::{Diagnostic, Span, Spanned};
use crate::expr::Condition;
use crate::secrets::{check_secret_name, SECRETS_ROOT};
use crate::spec::values::closest;
use crate::template::{Path, Template};

/// Roots a template or condition may reference.
pub const ROOTS: &[&str] = &["params", "steps", "run", "workflow", "item", "secrets"];

const SECRET_PLACES: &str = "a secret may be used in `env`, `container.env` or a hook's `config`, \
     where it reaches the step's process without showing in `ps`, logs or the run; \
     pass it to a command through an environment variable";

/// Checks a `{{ secrets.NAME }}` reference: a name, and a place where a
/// secret may go.
fn secret_reference(step: &Step, path: &Path, place: TextPlace) -> Result<(), Pending> {
    if place == TextPlace::Action {
        return Err(Pending::new(
            format!(
                "`{path}` in step `{}`: a secret may not be used here",
                step.id
            ),
            "secret outside `env`",
        )
        .note(SECRET_PLACES.into()));
    }
    match (path.0.len(), path.key(1)) {
        (2, Some(name)) => check_secret_name(name)
            .map_err(|e| Pending::new(format!("`{path}` in step `{}`: {e}", step.id), "bad name")),
        _ => Err(Pending::new(
            format!("`{path}`: name one secret, as in `secrets.API_TOKEN`"),
            "not a secret",
        )),
    }
}

pub fn validate(workflow: &Workflow, source: &str) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut first_seen: HashMap<&str, &Step> = HashMap::new();
    for step in &workflow.steps {
        first_seen.entry(step.id.as_str()).or_insert(step);
    }
    for step in &workflow.steps {
        let mut seen = Vec::new();
        for need in &step.needs {
            if need.value == step.id {
                diags.push(
                    Diagnostic::at(
                        need.span.clone(),
                        format!("step `{}` needs itself", step.id),
                    )
                    .with_label("remove this"),
                );
            } else if !first_seen.contains_key(need.value.as_str()) {
                let mut d = Diagnostic::at(
                    need.span.clone(),
                    format!(
                        "step `{}` needs `{}`, which is not a step",
                        step.id, need.value
                    ),
                )
                .with_label("no such step");
                if let Some(near) = closest(
                    &need.value,
                    workflow
                        .steps
                        .iter()
                        .map(|s| s.id.as_str())
                        .filter(|id| *id != step.id),
                ) {
                    d = d.with_note(format!("did you mean `{near}`?"));
                }
                diags.push(d);
            } else if seen.contains(&need.value.as_str()) {
                diags.push(
                    Diagnostic::at(
                        need.span.clone(),
                        format!("step `{}` needs `{}` twice", step.id, need.value),
                    )
                    .with_label("repeated"),
                );
            }
            seen.push(need.value.as_str());
        }
    }

    let dag = Dag::new(workflow.steps.iter().map(|s| {
        (
            s.id.as_str(),
            s.needs.iter().map(|n| n.value.as_str()).collect(),
        )
    }));
    for cycle in dag.cycles() {
        let ids: Vec<&str> = cycle
            .iter()
            .map(|&i| workflow.steps[i].id.as_str())
            .collect();
        let first = &workflow.steps[cycle[0]];
        let shown = if ids.len() > 12 {
            format!(
                "{} -> ... ({} steps) ... -> {} -> {}",
                ids[..6].join(" -> "),
                ids.len(),
                ids[ids.len() - 1],
                ids[0]
            )
        } else {
            format!("{} -> {}", ids.join(" -> "), ids[0])
        };
        let mut d = Diagnostic::at(first.span.clone(), format!("steps form a cycle: {shown}"))
            .with_label("this step waits on itself through the cycle")
            .with_note("`needs` must form a DAG: remove one of these edges");
        for &i in cycle.iter().skip(1).take(5) {
            let s = &workflow.steps[i];
            if let Some(need) = s
                .needs
                .iter()
                .find(|n| cycle.iter().any(|&c| workflow.steps[c].id == n.value))
            {
                d = d.with_related(
                    need.span.clone(),
                    format!("`{}` needs `{}`", s.id, need.value),
                );
            }
        }
        diags.push(d);
    }
    let has_cycles = diags
        .iter()
        .any(|d| d.message.starts_with("steps form a cycle"));

    let refs = RefChecker {
        workflow,
        dag: &dag,
        source,
        check_upstream: !has_cycles,
    };
    for step in &workflow.steps {
        if let (Some(_), Some(first)) = (&step.for_each, step.artifacts.first()) {
            diags.push(
                Diagnostic::at(
                    first.span.clone(),
                    format!(
                        "step `{}` runs once per item (`for-each`) and so cannot declare artifacts: \
                         each instance would leave the same names",
                        step.id
                    ),
                )
                .with_label("artifact of a `for-each` step")
                .with_note("gather the instances' files in a step after it, and declare them there"),
            );
        }
    }
    for (index, step) in workflow.steps.iter().enumerate() {
        for text in &step.texts {
            refs.template(index, step, &text.text, text.place, &mut diags);
        }
        if let Some(ForEach::Template(t)) = &step.for_each {
            match Template::parse(&t.value) {
                Ok(tpl) if tpl.references().count() == 1 && tpl.parts.len() == 1 => refs.template(index, step, t, TextPlace::Action, &mut diags),
                Ok(_) => diags.push(
                    Diagnostic::at(t.span.clone(), "`for-each` must be a list or one reference to a list, such as \"{{ params.shards }}\"")
                        .with_label("not a single reference"),
                ),
                Err(_) => refs.template(index, step, t, TextPlace::Action, &mut diags),
            }
        }
        if let Some(when) = &step.when {
            refs.condition(index, step, when, &mut diags);
        }
    }
    diags
}

struct RefChecker<'a> {
    workflow: &'a Workflow,
    dag: &'a Dag,
    source: &'a str,
    check_upstream: bool,
}

impl RefChecker<'_> {
    fn template(
        &self,
        index: usize,
        step: &Step,
        text: &Spanned<String>,
        place: TextPlace,
        diags: &mut Vec<Diagnostic>,
    ) {
        match Template::parse(&text.value) {
            // A hook's config is not a template: only secrets are filled in.
            Err(_) if place == TextPlace::HookConfig => {}
            Err(e) => diags.push(
                Diagnostic::at(self.inner(text, e.range), e.message).with_label("bad template"),
            ),
            Ok(tpl) => {
                for (path, range) in tpl.references() {
                    let secret = path.root() == SECRETS_ROOT;
                    if place == TextPlace::HookConfig && !secret {
                        continue;
                    }
                    if secret {
                        if let Err(d) = secret_reference(step, path, place) {
                            diags.push(d.at_span(self.inner(text, range.clone())));
                        }
                        continue;
                    }
                    let segments: Vec<String> = path
                        .0
                        .iter()
                        .map(|s| match s {
                            crate::template::Segment::Key(k) => k.clone(),
                            crate::template::Segment::Index(i) => i.to_string(),
                        })
                        .collect();
                    if let Err(d) = self.reference(index, step, &segments, path) {
                        diags.push(d.at_span(self.inner(text, range.clone())));
                    }
                }
            }
        }
    }

    fn condition(
        &self,
        index: usize,
        step: &Step,
        when: &Spanned<String>,
        diags: &mut Vec<Diagnostic>,
    ) {
        match Condition::compile(&when.value) {
            Err(e) => {
                let span = match e.offset {
                    Some(o) => {
                        let byte = when
                            .value
                            .char_indices()
                            .nth(o)
                            .map_or(when.value.len(), |(b, _)| b);
                        self.inner(when, byte..byte + 1)
                    }
                    None => when.span.clone(),
                };
                diags.push(
                    Diagnostic::at(
                        span,
                        format!(
                            "`when` of step `{}` is not a valid CEL expression: {}",
                            step.id, e.message
                        ),
                    )
                    .with_label("here"),
                );
            }
            Ok(cond) => {
                for r in cond.references() {
                    let path = Path(
                        r.iter()
                            .map(|k| crate::template::Segment::Key(k.clone()))
                            .collect(),
                    );
                    if let Err(d) = self.reference(index, step, &r, &path) {
                        diags.push(d.at_span(when.span.clone()));
                    }
                }
            }
        }
    }

    /// `steps.<id>.artifacts.<name>`: one artifact `<id>` declares, used
    /// by a step that runs a command or a container (where a file can be
    /// put in its reach).
    fn artifact_reference(
        &self,
        step: &Step,
        target: usize,
        seg: &[String],
        path: &Path,
    ) -> Result<(), Pending> {
        let source = &self.workflow.steps[target];
        let Some(name) = seg.get(3).filter(|_| seg.len() == 4) else {
            return Err(Pending::new(
                format!(
                    "`{path}`: name one artifact, as in `steps.{}.artifacts.<name>`",
                    source.id
                ),
                "not an artifact",
            ));
        };
        if source.artifact(name).is_none() {
            let declared: Vec<_> = source
                .artifacts
                .iter()
                .map(|a| a.value.name.as_str())
                .collect();
            return Err(Pending::new(
                format!("`{path}` in step `{}`: step `{}` declares no artifact `{name}`", step.id, source.id),
                "unknown artifact",
            )
            .note(if declared.is_empty() {
                format!("declare it in step `{}`: artifacts = {{ {name} = \"path/in/its/scratch/dir\" }}", source.id)
            } else {
                format!("its artifacts: {}", declared.join(", "))
            }));
        }
        if !matches!(
            step.action,
            StepAction::Run { .. } | StepAction::Container { .. } | StepAction::Cuda { .. }
        ) {
            return Err(Pending::new(
                format!(
                    "`{path}` in step `{}`: artifacts reach `run`, `container` and `cuda` steps, not `{}` steps",
                    step.id,
                    step.action.kind()
                ),
                "not here",
            ));
        }
        Ok(())
    }

    fn reference(
        &self,
        index: usize,
        step: &Step,
        seg: &[String],
        path: &Path,
    ) -> Result<(), Pending> {
        let root = seg[0].as_str();
        match root {
            "params" => match seg.get(1) {
                None => Ok(()),
                Some(name) if self.workflow.param(name).is_some() => Ok(()),
                Some(name) => {
                    let near = closest(name, self.workflow.params.iter().map(|p| p.name.as_str()));
                    Err(Pending::new(
                        format!(
                            "`{path}` in step `{}`: no parameter `{name}` in `[params]`",
                            step.id
                        ),
                        "unknown parameter",
                    )
                    .note(
                        near.map(|n| format!("did you mean `params.{n}`?"))
                            .unwrap_or_else(|| "declare it in `[params]` with a default".into()),
                    ))
                }
            },
            "steps" => {
                let Some(id) = seg.get(1) else {
                    return Err(Pending::new(
                        format!("`{path}`: name a step, as in `steps.<id>.outputs.<key>`"),
                        "incomplete",
                    ));
                };
                let Some(target) = self.dag.index_of(id) else {
                    let near = closest(id, self.workflow.steps.iter().map(|s| s.id.as_str()));
                    return Err(Pending::new(
                        format!("`{path}` in step `{}`: there is no step `{id}`", step.id),
                        "unknown step",
                    )
                    .note(
                        near.map(|n| format!("did you mean `{n}`?"))
                            .unwrap_or_default(),
                    ));
                };
                if self.check_upstream && target != index && !self.dag.is_upstream(target, index) {
                    return Err(Pending::new(
                        format!(
                            "step `{}` reads `{path}`, but `{id}` is not upstream of it",
                            step.id
                        ),
                        "not upstream",
                    )
                    .note(if self.dag.is_upstream(index, target) {
                        // Adding the need would make a cycle.
                        format!(
                            "`{id}` runs after `{}` (it needs it, directly or through another \
                             step), so `{}` cannot read it; move the reading into `{id}` or \
                             a step after it",
                            step.id, step.id
                        )
                    } else {
                        format!(
                            "add `\"{id}\"` to the `needs` of `{}` (directly or through another step)",
                            step.id
                        )
                    }));
                }
                if target == index {
                    return Err(Pending::new(
                        format!("step `{}` reads its own outputs", step.id),
                        "not upstream",
                    ));
                }
                match seg.get(2).map(String::as_str) {
                    None | Some("outputs") | Some("status") => Ok(()),
                    Some(ARTIFACTS_FIELD) => self.artifact_reference(step, target, seg, path),
                    Some(other) => Err(Pending::new(
                        format!(
                            "`{path}`: a step has `outputs`, `status` and `artifacts`, not `{other}`"
                        ),
                        "unknown field",
                    )),
                }
            }
            "run" => match seg.get(1).map(String::as_str) {
                None | Some("id" | "status" | "failed") => Ok(()),
                Some(other) => Err(Pending::new(
                    format!("`{path}`: `run` has `id`, `status` and `failed`, not `{other}`"),
                    "unknown field",
                )),
            },
            "workflow" => match seg.get(1).map(String::as_str) {
                None | Some("name") => Ok(()),
                Some(other) => Err(Pending::new(
                    format!("`{path}`: `workflow` has `name`, not `{other}`"),
                    "unknown field",
                )),
            },
            "item" if step.for_each.is_some() => Ok(()),
            "item" => Err(Pending::new(
                format!("step `{}` uses `item`, but has no `for-each`", step.id),
                "no `for-each` here",
            )),
            SECRETS_ROOT => Err(Pending::new(
                format!(
                    "`{path}` in step `{}`: a secret is not a value a condition or `for-each` may read",
                    step.id
                ),
                "secret here",
            )
            .note(SECRET_PLACES.into())),
            other => Err(
                Pending::new(format!("`{path}`: unknown name `{other}`"), "unknown name").note(
                    format!("references start with one of: {}", ROOTS.join(", ")),
                ),
            ),
        }
    }

    /// Maps a byte range inside a string value to the file, when the value is
    /// written without escapes; otherwise the whole string's span.
    fn inner(&self, text: &Spanned<String>, range: std::ops::Range<usize>) -> Span {
        let raw = self.source.get(text.span.clone()).unwrap_or("");
        let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else {
            1
        };
        match raw.get(quote..raw.len().saturating_sub(quote)) {
            Some(body) if body == text.value => {
                text.span.start + quote + range.start..text.span.start + quote + range.end
            }
            _ => text.span.clone(),
        }
    }
}

/// A diagnostic waiting for its span.
struct Pending {
    message: String,
    label: &'static str,
    note: String,
}

impl Pending {
    fn new(message: String, label: &'static str) -> Self {
        Self {
            message,
            label,
            note: String::new(),
        }
    }
    fn note(mut self, note: String) -> Self {
        self.note = note;
        self
    }
    fn at_span(self, span: Span) -> Diagnostic {
        let d = Diagnostic::at(span, self.message).with_label(self.label);
        if self.note.is_empty() {
            d
        } else {
            d.with_note(self.note)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::run::{apply, Event, Plan, RunState};

    const SOURCE: &str = r#"
[workflow]
name = "w"
[defaults]
hooks = { post = [{ plugin = "notify@1", config = { auth = "Bearer {{ secrets.HOOK_KEY }}" } }] }
[steps.a]
run = "deploy"
env = { TOKEN = "{{ secrets.API_TOKEN }}", PLAIN = "x" }
[steps.b.container]
image = "busybox"
command = "sh -c 'echo ok'"
env = { DB = "{{ secrets.DB_PASSWORD }}" }
"#;

    fn errors(source: &str) -> Vec<String> {
        crate::spec::load(source)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn secrets_are_named_where_they_may_go_and_listed_per_step() {
        let workflow = crate::spec::load(SOURCE).unwrap_or_else(|d| panic!("{d:?}"));
        let names =
            |i: usize| -> Vec<String> { workflow.steps[i].secrets.iter().cloned().collect() };
        assert_eq!(names(0), ["API_TOKEN", "HOOK_KEY"]);
        assert_eq!(names(1), ["DB_PASSWORD", "HOOK_KEY"]);
        // A job carries the reference, never a value.
        let mut state = RunState::new("r", Plan::new(workflow), Default::default());
        let jobs = crate::run::tests::dispatched(&apply(&mut state, Event::Started { at: 0 }));
        assert_eq!(jobs[0].env["TOKEN"], "{{ secrets.API_TOKEN }}");
        assert_eq!(jobs[0].secrets.len(), 2);
    }

    #[test]
    fn a_pool_name_no_queue_can_carry_is_refused_where_it_is_written() {
        let long = "p".repeat(crate::spec::POOL_NAME_MAX + 1);
        let fits = "p".repeat(crate::spec::POOL_NAME_MAX);
        for (pool, says) in [
            (long.as_str(), "is 101 characters; at most 100"),
            ("a.b", "may hold only letters"),
        ] {
            let source =
                format!("[workflow]\nname = \"w\"\n[steps.a]\nrun = \"true\"\npool = \"{pool}\"\n");
            let found = errors(&source);
            assert!(found.iter().any(|e| e.contains(says)), "{pool}: {found:?}");
        }
        let source =
            format!("[workflow]\nname = \"w\"\n[steps.a]\nrun = \"true\"\npool = \"{fits}\"\n");
        assert_eq!(errors(&source), Vec::<String>::new());
    }

    #[test]
    fn a_secret_anywhere_else_is_refused_with_its_place() {
        let refused = [
            (
                "run = \"curl -u {{ secrets.T }}\"",
                "a secret may not be used here",
            ),
            (
                "run = [\"curl\", \"{{ secrets.T }}\"]",
                "a secret may not be used here",
            ),
            (
                "container = { image = \"{{ secrets.T }}\" }",
                "a secret may not be used here",
            ),
            (
                "run = \"x\"\nwhen = \"secrets.T == 'a'\"",
                "not a value a condition",
            ),
            (
                "run = \"x\"\nenv = { A = \"{{ secrets.T.x }}\" }",
                "name one secret",
            ),
            (
                "run = \"x\"\nenv = { A = \"{{ secrets.1T }}\" }",
                "is not a secret name",
            ),
        ];
        for (step, want) in refused {
            let source = format!("[workflow]\nname = \"w\"\n[steps.a]\n{step}\n");
            let e = errors(&source);
            assert!(e.iter().any(|m| m.contains(want)), "{step}: {e:?}");
        }
    }
}
