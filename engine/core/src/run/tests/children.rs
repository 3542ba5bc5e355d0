//! Sub-workflow steps: a child run instead of a job, the same child for a
//! driver taking over, its end as the attempt's end, a depth limit.

use serde_json::json;

use super::state;
use crate::run::*;
use crate::spec::sub_workflow::{ParentRef, MAX_DEPTH};

const PARENT: &str = r#"
[workflow]
name = "parent"
[params]
day = "mon"
[steps.etl]
workflow = { name = "etl", version = 2, params = { day = "{{ params.day }}", n = 3 } }
[steps.report]
needs = ["etl"]
run = "echo {{ steps.etl.outputs.rows }}"
"#;

fn started(actions: &[Action]) -> Vec<ChildStart> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartChild(s) => Some((**s).clone()),
            _ => None,
        })
        .collect()
}

fn finished(outcome: Outcome) -> Event {
    Event::TaskFinished {
        task: TaskId::new("etl", None),
        attempt: 1,
        outcome,
        at: 50,
        hooks: Vec::new(),
        worker: String::new(),
        execution: 0,
    }
}

#[test]
fn a_sub_workflow_step_starts_one_child_and_ends_with_it() {
    let mut s = state(PARENT);
    let actions = apply(&mut s, Event::Started { at: 7 });
    assert!(
        super::dispatched(&actions).is_empty(),
        "no job for a worker"
    );
    let start = started(&actions).remove(0);
    assert_eq!(start.workflow.name, "etl");
    assert_eq!(start.workflow.version, Some(2));
    assert_eq!(start.workflow.params["day"], "mon");
    assert_eq!(start.workflow.params["n"], "3");
    assert_eq!(start.parent.depth, 1);
    assert_eq!(start.parent.run, "run-1");
    let task = s.task(&TaskId::new("etl", None)).unwrap();
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(
        task.attempts[0].worker,
        Some(format!("run {}", start.run_id))
    );
    // A driver taking over asks for the same child.
    let again = started(&resume(&mut s, false));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].run_id, start.run_id);
    // The child's end is the attempt's; its outputs flow on.
    let next = apply(
        &mut s,
        finished(Outcome::Succeeded {
            outputs: json!({"rows": 9}),
            artifacts: Default::default(),
        }),
    );
    let jobs = super::dispatched(&next);
    assert_eq!(jobs[0].task.step, "report");
    let task = s.task(&TaskId::new("etl", None)).unwrap();
    assert_eq!(
        task.attempts[0].worker,
        Some(format!("run {}", start.run_id))
    );
}

#[test]
fn a_child_reports_its_outputs_and_runs_nest_only_so_deep() {
    // A child's outputs: its `outputs` step's.
    let mut child = state("[workflow]\nname = \"etl\"\noutputs = \"b\"\n[steps.a]\nrun = \"a\"\n[steps.b]\nneeds = [\"a\"]\nrun = \"b\"\n");
    let parent = ParentRef {
        run: "p".into(),
        task: TaskId::new("etl", None),
        attempt: 1,
        depth: MAX_DEPTH,
    };
    apply(
        &mut child,
        Event::ChildOf {
            parent: parent.clone(),
            at: 0,
        },
    );
    assert_eq!(child.parent.as_ref(), Some(&parent));
    let a = super::dispatched(&apply(&mut child, Event::Started { at: 1 })).remove(0);
    let b = super::dispatched(&apply(&mut child, super::ok(&a, json!({"x": 1})))).remove(0);
    apply(&mut child, super::ok(&b, json!({"rows": 3})));
    assert_eq!(child.status, RunStatus::Succeeded);
    assert_eq!(
        child.child_outcome(),
        Outcome::Succeeded {
            outputs: json!({"rows": 3}),
            artifacts: Default::default()
        }
    );
    // A child at the limit that has a sub-workflow step fails it at once.
    let mut deep = state(PARENT);
    apply(&mut deep, Event::ChildOf { parent, at: 0 });
    let actions = apply(&mut deep, Event::Started { at: 1 });
    assert!(started(&actions).is_empty());
    let task = deep.task(&TaskId::new("etl", None)).unwrap();
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.attempts[0]
        .error
        .as_deref()
        .unwrap()
        .contains("nest more than 8 deep"));
}

#[test]
fn a_workflow_that_runs_itself_or_names_no_outputs_step_is_refused() {
    let errors = crate::spec::load(
        "[workflow]\nname = \"w\"\noutputs = \"nope\"\n[steps.again]\nworkflow = { name = \"w\" }\ncache = true\n",
    )
    .unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages.contains(&"`outputs` names `nope`, which is not a step"),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("step `again` runs workflow `w`, which is this workflow")),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"a sub-workflow step has no `cache`"),
        "{messages:?}"
    );
}

#[test]
fn a_runs_priority_goes_with_its_jobs_and_its_children() {
    let mut s = state(PARENT);
    s.priority = -7;
    let start = started(&apply(&mut s, Event::Started { at: 7 })).remove(0);
    assert_eq!(start.priority, -7, "the child keeps its parent's priority");
    let next = apply(
        &mut s,
        finished(Outcome::Succeeded {
            outputs: json!({"rows": 9}),
            artifacts: Default::default(),
        }),
    );
    let job = &super::dispatched(&next)[0];
    assert_eq!(job.priority, -7);
    assert_eq!(job.band(), crate::ports::PriorityBand::Low);
}
