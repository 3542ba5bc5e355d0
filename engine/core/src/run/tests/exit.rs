//! The `[workflow] on-exit` step: last, once, whatever happened.

use proptest::prelude::*;
use serde_json::json;

use super::{dispatched, fail, ok, state};
use crate::run::*;

const WORKFLOW: &str = r#"
[workflow]
name = "exit"
on-exit = "tidy"
[steps.a]
run = "a"
[steps.b]
needs = ["a"]
run = "b"
[steps.tidy]
run = "tidy {{ run.status }} {{ run.failed }}"
"#;

fn command(job: &Job) -> String {
    serde_json::to_string(&job.action).unwrap()
}

#[test]
fn the_on_exit_step_runs_last_and_sees_how_the_run_went() {
    // Success: tidy after b, told so; the run succeeds.
    let mut s = state(WORKFLOW);
    let a = dispatched(&apply(&mut s, Event::Started { at: 0 }));
    assert_eq!(a.len(), 1, "tidy waits: {a:?}");
    let b = dispatched(&apply(&mut s, ok(&a[0], json!({})))).remove(0);
    let tidy = dispatched(&apply(&mut s, ok(&b, json!({})))).remove(0);
    assert_eq!(tidy.task.step, "tidy");
    assert!(command(&tidy).contains("tidy succeeded false"), "{tidy:?}");
    assert_eq!(s.status, RunStatus::Running, "not over before tidy");
    let end = apply(&mut s, ok(&tidy, json!({})));
    assert!(end.contains(&Action::Finished {
        status: RunStatus::Succeeded
    }));

    // A failure: b is skipped, tidy runs, the run fails for a.
    let mut s = state(WORKFLOW);
    let a = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let mut failing = fail(&a);
    if let Event::TaskFinished {
        outcome: Outcome::Failed { retryable, .. },
        ..
    } = &mut failing
    {
        *retryable = false;
    }
    let tidy = dispatched(&apply(&mut s, failing)).remove(0);
    assert!(command(&tidy).contains("tidy failed true"), "{tidy:?}");
    apply(&mut s, ok(&tidy, json!({})));
    assert_eq!(s.status, RunStatus::Failed);
    assert!(s.failure_summary().unwrap().starts_with("a:"));

    // A failing on-exit step fails a run that had succeeded.
    let mut s = state(WORKFLOW);
    let a = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let b = dispatched(&apply(&mut s, ok(&a, json!({})))).remove(0);
    let tidy = dispatched(&apply(&mut s, ok(&b, json!({})))).remove(0);
    let mut failing = fail(&tidy);
    if let Event::TaskFinished {
        outcome: Outcome::Failed { retryable, .. },
        ..
    } = &mut failing
    {
        *retryable = false;
    }
    apply(&mut s, failing);
    assert_eq!(s.status, RunStatus::Failed);
    assert!(s.failure_summary().unwrap().starts_with("tidy:"));
}

#[test]
fn a_cancel_or_a_timeout_stops_the_steps_then_runs_the_on_exit_step() {
    let mut s = state(WORKFLOW);
    let a = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let actions = apply(
        &mut s,
        Event::CancelRequested {
            reason: "by hand".into(),
            at: 5,
        },
    );
    assert!(actions.contains(&Action::Abort {
        task: a.task.clone(),
        attempt: 1
    }));
    let tidy = dispatched(&actions).remove(0);
    assert!(command(&tidy).contains("tidy cancelled false"), "{tidy:?}");
    assert_eq!(s.steps[1].status, StepStatus::Cancelled);
    assert!(!actions.iter().any(|a| matches!(a, Action::Finished { .. })));
    // a's late result changes nothing; tidy's end ends the run, cancelled.
    assert!(dispatched(&apply(&mut s, ok(&a, json!({})))).is_empty());
    let end = apply(&mut s, ok(&tidy, json!({})));
    assert!(end.contains(&Action::Finished {
        status: RunStatus::Cancelled
    }));
    assert_eq!(s.steps[2].status, StepStatus::Succeeded);

    // Cancelled again while tidy runs: tidy stops too.
    let mut s = state(WORKFLOW);
    apply(&mut s, Event::Started { at: 0 });
    let cancel = |at| Event::CancelRequested {
        reason: "by hand".into(),
        at,
    };
    let tidy = dispatched(&apply(&mut s, cancel(5))).remove(0);
    let actions = apply(&mut s, cancel(6));
    assert!(actions.contains(&Action::Abort {
        task: tidy.task.clone(),
        attempt: 1
    }));
    assert_eq!(s.status, RunStatus::Cancelled);

    // The run's timeout: tidy runs, and the run fails.
    let timed = WORKFLOW.replace("on-exit", "timeout = \"1m\"\non-exit");
    let mut s = state(&timed);
    apply(&mut s, Event::Started { at: 0 });
    let tidy = dispatched(&apply(&mut s, Event::RunTimedOut { at: 60_000 })).remove(0);
    assert!(command(&tidy).contains("tidy failed true"), "{tidy:?}");
    apply(&mut s, ok(&tidy, json!({})));
    assert_eq!(s.status, RunStatus::Failed);
    assert!(s.failure_summary().unwrap().contains("timed out"));

    // A run cancelled before it started has nothing to tidy.
    let mut s = state(WORKFLOW);
    let actions = apply(&mut s, cancel(1));
    assert!(dispatched(&actions).is_empty());
    assert_eq!(s.status, RunStatus::Cancelled);
}

#[test]
fn a_retried_run_runs_its_on_exit_step_again() {
    let mut s = state(WORKFLOW);
    let a = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let b = dispatched(&apply(&mut s, ok(&a, json!({})))).remove(0);
    let tidy = dispatched(&apply(&mut s, ok(&b, json!({})))).remove(0);
    apply(&mut s, ok(&tidy, json!({})));
    let reused = reuse_events(&s, Some("b"), 1).unwrap();
    assert_eq!(reused.len(), 1, "only a is reused: {reused:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Random DAGs, outcomes, delivery orders and perhaps a cancel or a
    /// timeout at a random moment: the on-exit step is dispatched exactly
    /// once, only when every other step has ended, and the run finishes
    /// exactly once, after it.
    #[test]
    fn the_on_exit_step_runs_exactly_once_after_everything_else(
        n in 1usize..8,
        edges in proptest::collection::vec((0usize..8, 0usize..8), 0..16),
        failures in proptest::collection::vec(any::<bool>(), 64),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 64),
        stop_at in proptest::option::of(0usize..20),
        timeout in any::<bool>(),
    ) {
        let mut toml = String::from("[workflow]\nname = 'p'\non-exit = 'exit'\n");
        for i in 0..n {
            let mut needs: Vec<String> = edges.iter().filter(|(a, b)| *b == i && a < b).map(|(a, _)| format!("'s{a}'")).collect();
            needs.sort();
            needs.dedup();
            toml += &format!("[steps.s{i}]\nrun = 'x'\nneeds = [{}]\n", needs.join(","));
        }
        toml += "[steps.exit]\nrun = 'exit'\n";
        let mut s = state(&toml);
        let exit = s.step_index("exit").unwrap();
        let mut pending: Vec<Event> = Vec::new();
        let (mut exits, mut finished, mut step) = (0, 0, 0);
        let mut actions = apply(&mut s, Event::Started { at: 0 });
        loop {
            for a in actions {
                match a {
                    Action::Dispatch(job) => {
                        if job.task.step == "exit" {
                            exits += 1;
                            for (i, other) in s.steps.iter().enumerate() {
                                prop_assert!(i == exit || other.status.is_terminal(), "exit before s{i} ended");
                            }
                        }
                        prop_assert_eq!(finished, 0, "dispatched after the end");
                        let failed = failures[step % failures.len()];
                        pending.push(if failed { fail(&job) } else { ok(&job, json!({})) });
                    }
                    Action::ScheduleRetry { task, attempt, .. } => pending.push(Event::RetryDue { task, attempt, at: 0 }),
                    Action::Finished { .. } => finished += 1,
                    _ => {}
                }
            }
            if pending.is_empty() {
                break;
            }
            let event = if stop_at == Some(step) {
                if timeout { Event::RunTimedOut { at: 1 } } else { Event::CancelRequested { reason: "r".into(), at: 1 } }
            } else {
                let i = picks[step % picks.len()].index(pending.len());
                pending.swap_remove(i)
            };
            step += 1;
            actions = apply(&mut s, event);
        }
        prop_assert_eq!(exits, 1, "the exit step runs once");
        prop_assert_eq!(finished, 1, "the run finishes once");
        prop_assert!(s.status.is_terminal());
    }
}
