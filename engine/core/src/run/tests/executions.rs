//! Executions of one attempt: a start heard after the attempt ended, and
//! an attempt that at-least-once delivery ran twice.

use serde_json::json;

use super::*;

fn started(job: &Job, worker: &str, execution: u64, at: u64) -> Event {
    Event::TaskStarted {
        task: job.task.clone(),
        attempt: job.attempt,
        worker: worker.into(),
        at,
        execution,
    }
}

#[test]
fn a_start_heard_after_the_attempt_ended_is_shown_and_changes_nothing() {
    let mut s =
        state("[workflow]\nname='t'\n[steps.a]\nrun='x'\n[steps.b]\nneeds=['a']\nrun='y'\n");
    let a = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    apply(&mut s, started(&a, "w", 1, 1));
    let next = apply(&mut s, ok(&a, json!({})));
    assert_eq!(dispatched(&next).len(), 1, "b is dispatched");
    // A late start of the same attempt, from another execution.
    let late = apply(&mut s, started(&a, "w2", 2, 20));
    assert!(late.is_empty(), "nothing is dispatched again: {late:?}");
    let task = s.task(&a.task).unwrap();
    assert_eq!(
        task.status,
        TaskStatus::Succeeded,
        "an ended task never runs again"
    );
    let shown: Vec<(&str, u64)> = task.attempts[0]
        .executions
        .iter()
        .map(|e| (e.worker.as_str(), e.token))
        .collect();
    assert_eq!(
        shown,
        vec![("w", 1), ("w2", 2)],
        "both executions are shown"
    );
    assert_eq!(task.attempts.len(), 1);
}

#[test]
fn two_executions_of_one_attempt_are_both_shown_and_the_first_result_counts() {
    let mut s = state("[workflow]\nname='t'\n[steps.a]\nrun='x'\n");
    let a = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    apply(&mut s, started(&a, "w1", 1, 1));
    apply(&mut s, started(&a, "w2", 2, 5));
    let done = apply(
        &mut s,
        Event::TaskFinished {
            task: a.task.clone(),
            attempt: 1,
            outcome: Outcome::Succeeded {
                outputs: json!({"by": "w2"}),
                artifacts: Default::default(),
            },
            at: 9,
            hooks: Vec::new(),
            worker: "w2".into(),
            execution: 2,
        },
    );
    assert!(matches!(
        done.last(),
        Some(Action::Finished {
            status: RunStatus::Succeeded
        })
    ));
    let late = apply(
        &mut s,
        Event::TaskFinished {
            task: a.task.clone(),
            attempt: 1,
            outcome: Outcome::Succeeded {
                outputs: json!({"by": "w1"}),
                artifacts: Default::default(),
            },
            at: 12,
            hooks: Vec::new(),
            worker: "w1".into(),
            execution: 1,
        },
    );
    assert!(late.is_empty());
    let task = s.task(&a.task).unwrap();
    assert_eq!(
        task.outputs,
        Some(json!({"by": "w2"})),
        "the first result recorded counts"
    );
    let attempt = &task.attempts[0];
    assert_eq!(attempt.worker.as_deref(), Some("w2"));
    assert_eq!(attempt.executions.len(), 2);
    assert!(attempt
        .executions
        .iter()
        .all(|e| e.finished_at.is_some() && e.error.as_deref() == Some("")));
}
