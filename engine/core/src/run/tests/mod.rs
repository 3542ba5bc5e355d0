//! Scheduling rules as unit tests, and property tests over random DAGs.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value as Json};

use super::*;
use crate::spec::{self, Command, StepAction};

fn state(toml: &str) -> RunState {
    let workflow = spec::load(toml).unwrap_or_else(|d| panic!("{d:?}"));
    let params = workflow.param_defaults();
    RunState::new("run-1", Plan::new(workflow), params)
}

pub(crate) fn dispatched(actions: &[Action]) -> Vec<Job> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dispatch(j) => Some((**j).clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn ok(job: &Job, outputs: Json) -> Event {
    Event::TaskFinished {
        task: job.task.clone(),
        attempt: job.attempt,
        outcome: Outcome::Succeeded {
            outputs,
            artifacts: Default::default(),
        },
        at: 10,
        hooks: Vec::new(),
        worker: "w".into(),
        execution: 1,
    }
}

pub(crate) fn fail(job: &Job) -> Event {
    Event::TaskFinished {
        task: job.task.clone(),
        attempt: job.attempt,
        outcome: Outcome::Failed {
            reason: "exit 1".into(),
            exit_code: Some(1),
            retryable: true,
            kind: FailureKind::ExitCode,
        },
        at: 10,
        hooks: Vec::new(),
        worker: "w".into(),
        execution: 1,
    }
}

#[test]
fn ready_steps_dispatch_in_dependency_order_and_outputs_flow() {
    let mut s = state(
        r#"
[workflow]
name = "d"
[steps.a]
run = "a"
[steps.b]
needs = ["a"]
run = "echo {{ steps.a.outputs.n }}"
"#,
    );
    let jobs = dispatched(&apply(&mut s, Event::Started { at: 0 }));
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].task.step, "a");
    let jobs = dispatched(&apply(&mut s, ok(&jobs[0], json!({"n": 7}))));
    assert_eq!(
        jobs[0].action,
        StepAction::Run {
            command: Command::Shell("echo 7".into())
        }
    );
    assert_eq!(jobs[0].inputs["steps"]["a"]["outputs"]["n"], 7);
    let actions = apply(&mut s, ok(&jobs[0], json!({})));
    assert_eq!(
        actions,
        vec![Action::Finished {
            status: RunStatus::Succeeded
        }]
    );
}

#[test]
fn failed_step_skips_its_dependents_and_fails_the_run() {
    let mut s = state("[workflow]\nname='f'\n[steps.a]\nrun='x'\n[steps.b]\nneeds=['a']\nrun='y'\n[steps.c]\nneeds=['b']\n");
    let jobs = dispatched(&apply(&mut s, Event::Started { at: 0 }));
    let actions = apply(&mut s, fail(&jobs[0]));
    assert_eq!(
        actions,
        vec![Action::Finished {
            status: RunStatus::Failed
        }]
    );
    assert_eq!(s.steps[1].status, StepStatus::Skipped);
    assert_eq!(s.steps[2].skip, Some(SkipReason::Upstream("b".into())));
    assert!(s.failure_summary().unwrap().contains("exit 1"));
}

#[test]
fn retries_wait_their_backoff_then_succeed() {
    let mut s = state("[workflow]\nname='r'\n[steps.a]\nrun='x'\nretries={limit=2, delay='1s', backoff='exponential'}\n");
    let job = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let actions = apply(&mut s, fail(&job));
    assert_eq!(
        actions,
        vec![Action::ScheduleRetry {
            task: job.task.clone(),
            attempt: 2,
            delay: Duration::from_secs(1)
        }]
    );
    let job = dispatched(&apply(
        &mut s,
        Event::RetryDue {
            task: job.task.clone(),
            attempt: 2,
            at: 1000,
        },
    ))
    .remove(0);
    assert_eq!(job.attempt, 2);
    let actions = apply(&mut s, fail(&job));
    assert_eq!(
        actions,
        vec![Action::ScheduleRetry {
            task: job.task.clone(),
            attempt: 3,
            delay: Duration::from_secs(2)
        }]
    );
    let job = dispatched(&apply(
        &mut s,
        Event::RetryDue {
            task: job.task.clone(),
            attempt: 3,
            at: 3000,
        },
    ))
    .remove(0);
    assert_eq!(
        apply(&mut s, ok(&job, json!({}))),
        vec![Action::Finished {
            status: RunStatus::Succeeded
        }]
    );
    assert_eq!(s.steps[0].tasks[0].attempts.len(), 3);
}

#[test]
fn a_deadline_aborts_the_attempt_and_a_late_result_is_ignored() {
    let mut s = state("[workflow]\nname='t'\n[steps.a]\nrun='sleep 100'\ntimeout='1s'\n");
    let actions = apply(&mut s, Event::Started { at: 0 });
    assert!(actions.iter().any(
        |a| matches!(a, Action::ArmDeadline { after, .. } if *after == Duration::from_secs(1))
    ));
    let job = dispatched(&actions).remove(0);
    let actions = apply(
        &mut s,
        Event::DeadlinePassed {
            task: job.task.clone(),
            attempt: 1,
            at: 1000,
        },
    );
    assert_eq!(
        actions[0],
        Action::Abort {
            task: job.task.clone(),
            attempt: 1
        }
    );
    assert_eq!(
        actions[1],
        Action::Finished {
            status: RunStatus::Failed
        }
    );
    assert!(s
        .failure_summary()
        .unwrap()
        .contains("timed out after 1.0s"));
    assert_eq!(
        s.steps[0].tasks[0].attempts[0].error_kind,
        FailureKind::Timeout
    );
    assert!(apply(&mut s, ok(&job, json!({}))).is_empty());
}

#[test]
fn when_false_skips_the_step() {
    let mut s = state("[workflow]\nname='w'\n[params]\nmin=0.9\n[steps.eval]\nrun='x'\n[steps.deploy]\nneeds=['eval']\nwhen='steps.eval.outputs.acc >= params.min'\nrun='y'\n");
    let job = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let actions = apply(&mut s, ok(&job, json!({"acc": 0.5})));
    assert_eq!(
        actions,
        vec![Action::Finished {
            status: RunStatus::Succeeded
        }]
    );
    assert!(matches!(s.steps[1].skip, Some(SkipReason::Condition(_))));
}

#[test]
fn for_each_fans_out_and_dependents_wait_for_every_instance() {
    let mut s = state("[workflow]\nname='f'\n[params]\nshards=['a','b','c']\n[steps.p]\nfor-each='{{ params.shards }}'\nrun='echo {{ item }}'\n[steps.j]\nneeds=['p']\nrun='echo {{ steps.p.outputs[2].n }}'\n");
    let jobs = dispatched(&apply(&mut s, Event::Started { at: 0 }));
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[1].task, TaskId::new("p", Some(1)));
    assert_eq!(
        jobs[1].action,
        StepAction::Run {
            command: Command::Shell("echo b".into())
        }
    );
    assert!(dispatched(&apply(&mut s, ok(&jobs[0], json!({"n": 0})))).is_empty());
    assert!(dispatched(&apply(&mut s, ok(&jobs[2], json!({"n": 2})))).is_empty());
    let next = dispatched(&apply(&mut s, ok(&jobs[1], json!({"n": 1}))));
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].action,
        StepAction::Run {
            command: Command::Shell("echo 2".into())
        }
    );
}

#[test]
fn cancel_aborts_running_tasks_and_finishes_the_run() {
    let mut s =
        state("[workflow]\nname='c'\n[steps.a]\nrun='x'\n[steps.b]\nneeds=['a']\nrun='y'\n");
    let job = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let actions = apply(
        &mut s,
        Event::CancelRequested {
            reason: "user".into(),
            at: 5,
        },
    );
    assert_eq!(
        actions,
        vec![
            Action::Abort {
                task: job.task.clone(),
                attempt: 1
            },
            Action::Finished {
                status: RunStatus::Cancelled
            }
        ]
    );
    assert_eq!(s.steps[1].status, StepStatus::Cancelled);
    assert_eq!(
        s.steps[0].tasks[0].attempts[0].error_kind,
        FailureKind::Cancelled
    );
    assert!(apply(&mut s, ok(&job, json!({}))).is_empty());
}

#[test]
fn join_steps_complete_without_a_worker() {
    let mut s = state(
        "[workflow]\nname='j'\n[steps.a]\n[steps.b]\nneeds=['a']\n[steps.c]\nneeds=['a','b']\n",
    );
    assert_eq!(
        apply(&mut s, Event::Started { at: 0 }),
        vec![Action::Finished {
            status: RunStatus::Succeeded
        }]
    );
}

#[test]
fn a_template_that_cannot_resolve_fails_the_task_without_retrying() {
    let mut s = state("[workflow]\nname='t'\n[steps.a]\nrun='x'\n[steps.b]\nneeds=['a']\nretries=3\nrun='echo {{ steps.a.outputs.missing }}'\n");
    let job = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let actions = apply(&mut s, ok(&job, json!({"other": 1})));
    assert_eq!(
        actions,
        vec![Action::Finished {
            status: RunStatus::Failed
        }]
    );
    assert!(s
        .failure_summary()
        .unwrap()
        .contains("wrote no such output"));
}

#[test]
fn a_replayed_run_resumes_without_redoing_succeeded_steps() {
    let toml = "[workflow]\nname='r'\n[steps.a]\nrun='x'\n[steps.b]\nneeds=['a']\nrun='y'\ntimeout='5s'\n[steps.c]\nneeds=['a']\nrun='z'\nretries={limit=1, delay='1s'}\n";
    let mut s = state(toml);
    let mut log = vec![Event::Started { at: 0 }];
    let a = dispatched(&apply(&mut s, log[0].clone())).remove(0);
    log.push(ok(&a, json!({})));
    let next = dispatched(&apply(&mut s, log[1].clone()));
    let by = |id: &str| next.iter().find(|j| j.task.step == id).unwrap().clone();
    let (b, c) = (&by("b"), &by("c"));
    log.push(Event::TaskStarted {
        task: b.task.clone(),
        attempt: 1,
        worker: "w".into(),
        at: 11,
        execution: 1,
    });
    log.push(fail(c));
    for e in &log[2..] {
        apply(&mut s, e.clone());
    }
    let mut replayed = RunState::replay(
        "run-1",
        s.plan.clone(),
        s.params.clone(),
        s.limits,
        log.clone(),
    );
    let actions = resume(&mut replayed, false);
    assert!(actions.contains(&Action::ArmDeadline {
        task: b.task.clone(),
        attempt: 1,
        after: Duration::from_secs(5)
    }));
    assert!(actions.contains(&Action::ScheduleRetry {
        task: c.task.clone(),
        attempt: 2,
        delay: Duration::from_secs(1)
    }));
    assert!(
        dispatched(&actions).is_empty(),
        "a (succeeded) and b (running) are not dispatched again"
    );
    // Where the queue did not survive, the running attempt is sent again.
    let mut replayed = RunState::replay("run-1", s.plan.clone(), s.params.clone(), s.limits, log);
    let again = dispatched(&resume(&mut replayed, true));
    assert_eq!(
        again
            .iter()
            .map(|j| (j.task.clone(), j.attempt))
            .collect::<Vec<_>>(),
        vec![(b.task.clone(), 1)]
    );
}

#[test]
fn a_queued_attempt_is_dispatched_again_on_resume() {
    let mut s = state("[workflow]\nname='q'\n[steps.a]\nrun='x'\n");
    let job = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let mut replayed = RunState::replay(
        "run-1",
        s.plan.clone(),
        s.params.clone(),
        s.limits,
        [Event::Started { at: 0 }],
    );
    assert_eq!(dispatched(&resume(&mut replayed, false)), vec![job]);
}

#[test]
fn a_retry_reuses_succeeded_steps_and_runs_the_rest() {
    let toml = "[workflow]\nname='r'\n[steps.a]\nrun='a'\n[steps.b]\nneeds=['a']\nrun='echo {{ steps.a.outputs.n }}'\n[steps.c]\nneeds=['b']\nrun='c'\n[steps.d]\nrun='d'\n";
    let mut first = state(toml);
    let jobs = dispatched(&apply(&mut first, Event::Started { at: 0 }));
    let (a, d) = (
        jobs.iter().find(|j| j.task.step == "a").unwrap().clone(),
        jobs.iter().find(|j| j.task.step == "d").unwrap().clone(),
    );
    apply(&mut first, ok(&d, json!({})));
    let b = dispatched(&apply(&mut first, ok(&a, json!({"n": 5})))).remove(0);
    apply(&mut first, fail(&b));
    assert_eq!(first.status, RunStatus::Failed);

    let mut second = RunState::new("run-2", first.plan.clone(), first.params.clone());
    let reused = reuse_events(&first, None, 1).unwrap();
    assert_eq!(reused.len(), 2, "a and d succeeded");
    for e in reused {
        assert!(apply(&mut second, e).is_empty());
    }
    let jobs = dispatched(&apply(&mut second, Event::Started { at: 2 }));
    assert_eq!(jobs.len(), 1, "only b runs again: {jobs:?}");
    assert_eq!(
        jobs[0].action,
        StepAction::Run {
            command: Command::Shell("echo 5".into())
        },
        "with a's outputs"
    );
    assert_eq!(second.steps[0].reused_from.as_deref(), Some("run-1"));

    // From a chosen step: it and its downstream run again.
    let from_a = reuse_events(&first, Some("a"), 1).unwrap();
    assert_eq!(from_a.len(), 1, "only d is reused");
    assert!(reuse_events(&first, Some("nope"), 1).is_err());
}

mod approval;
mod caching;
mod children;
mod executions;
mod exit;
mod flow;

// ---- properties over random DAGs and random outcomes ----

fn random_workflow(n: usize, edges: &[(usize, usize)], limits: &[u32], fan: &[bool]) -> String {
    let mut toml = String::from("[workflow]\nname = 'p'\n");
    for i in 0..n {
        let needs: Vec<String> = edges
            .iter()
            .filter(|(a, b)| *b == i && a < b)
            .map(|(a, _)| format!("'s{a}'"))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        toml += &format!(
            "[steps.s{i}]\nrun = 'x'\nneeds = [{}]\nretries = {{ limit = {}, delay = '1s' }}\n",
            needs.join(","),
            limits[i]
        );
        if fan[i] {
            toml += "for-each = [1, 2]\n";
        }
    }
    toml
}

#[test]
fn a_for_each_past_the_limits_fails_its_step_saying_which() {
    let toml = "[workflow]\nname='big'\n[params]\nn=[1,2,3,4,5]\n[steps.a]\nfor-each='{{ params.n }}'\nrun='x'\n[steps.b]\nfor-each=[1,2,3]\nrun='y'\n";
    let mut s = state(toml);
    s.limits = RunLimits {
        max_tasks_per_step: 4,
        max_tasks_per_run: 6,
        ..RunLimits::default()
    };
    let jobs = dispatched(&apply(&mut s, Event::Started { at: 0 }));
    assert_eq!(jobs.len(), 3, "b's three tasks run: {jobs:?}");
    let a = &s.steps[0];
    assert_eq!(a.status, StepStatus::Failed);
    assert!(
        a.error
            .as_deref()
            .unwrap()
            .contains("gave 5 items; a step may have at most 4 tasks"),
        "{:?}",
        a.error
    );
    let mut t = state(toml);
    t.limits = RunLimits {
        max_tasks_per_step: 10,
        max_tasks_per_run: 7,
        ..RunLimits::default()
    };
    apply(&mut t, Event::Started { at: 0 });
    assert!(
        t.steps[1]
            .error
            .as_deref()
            .unwrap()
            .contains("past 7 tasks"),
        "{:?}",
        t.steps[1].error
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_runs_respect_order_attempt_limits_and_terminate(
        n in 1usize..12,
        edges in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
        limits in proptest::collection::vec(0u32..3, 12),
        fan in proptest::collection::vec(any::<bool>(), 12),
        outcomes in proptest::collection::vec(0u8..4, 400),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 400),
    ) {
        let mut s = state(&random_workflow(n, &edges, &limits, &fan));
        let mut pending: Vec<Event> = Vec::new();   // results and timers not yet delivered
        let mut seen_attempts: HashSet<(TaskId, u32)> = HashSet::new();
        let mut ended: HashMap<(TaskId, u32), u32> = HashMap::new();
        let mut finished = 0;
        let mut step = 0;
        let mut handle = |actions: Vec<Action>, s: &RunState, pending: &mut Vec<Event>, finished: &mut i32| {
            for a in actions {
                match a {
                    Action::Dispatch(job) => {
                        let si = s.step_index(&job.task.step).unwrap();
                        for need in s.plan.dag.needs(si) {
                            prop_assert!(s.steps[need].status.is_terminal(), "{} started before its need finished", job.task);
                        }
                        prop_assert!(seen_attempts.insert((job.task.clone(), job.attempt)), "attempt dispatched twice");
                        prop_assert!(job.attempt <= s.plan.workflow.steps[si].retries.limit + 1, "too many attempts");
                        pending.push(Event::TaskFinished { task: job.task.clone(), attempt: job.attempt, outcome: Outcome::Succeeded { outputs: json!({}), artifacts: Default::default() }, at: 0, hooks: Vec::new(), worker: "w".into(), execution: 1 });
                    }
                    Action::ScheduleRetry { task, attempt, .. } => pending.push(Event::RetryDue { task, attempt, at: 0 }),
                    Action::Finished { .. } => *finished += 1,
                    _ => {}
                }
            }
            Ok(())
        };
        let actions = apply(&mut s, Event::Started { at: 0 });
        handle(actions, &s, &mut pending, &mut finished)?;
        while !pending.is_empty() {
            let i = picks[step % picks.len()].index(pending.len());
            let mut event = pending.swap_remove(i);
            if let Event::TaskFinished { outcome, task, attempt, .. } = &mut event {
                if outcomes[step % outcomes.len()] == 0 {
                    *outcome = Outcome::Failed { reason: "boom".into(), exit_code: Some(1), retryable: true, kind: FailureKind::ExitCode };
                }
                *ended.entry((task.clone(), *attempt)).or_default() += 1;
            }
            step += 1;
            let actions = apply(&mut s, event);
            handle(actions, &s, &mut pending, &mut finished)?;
        }
        prop_assert_eq!(finished, 1, "the run finishes exactly once");
        prop_assert!(s.status.is_terminal());
        prop_assert!(ended.values().all(|&c| c == 1), "an attempt ended twice");
        prop_assert_eq!(ended.len(), seen_attempts.len(), "every attempt ends");
        for st in &s.steps {
            prop_assert!(st.status.is_terminal());
        }
    }
}

#[test]
fn artifacts_past_the_run_s_limit_fail_the_step_that_would_pass_it() {
    use crate::artifacts::{ArtifactRef, Digest};
    let toml = "[workflow]\nname='files'\n[steps.a]\nrun='x'\nartifacts={f='f'}\n\
                [steps.b]\nrun='y'\nartifacts={f='f'}\n[steps.c]\nrun='z'\nartifacts={f='f'}\n";
    let mut s = state(toml);
    s.limits = RunLimits {
        max_artifact_bytes_per_run: 150,
        ..RunLimits::default()
    };
    let jobs = dispatched(&apply(&mut s, Event::Started { at: 0 }));
    let file = |hex: &str, size| ArtifactRef {
        digest: Digest::parse(&hex.repeat(64)).unwrap(),
        size,
        dir: false,
    };
    let finish = |job: &Job, artifact: ArtifactRef| Event::TaskFinished {
        task: job.task.clone(),
        attempt: 1,
        outcome: Outcome::Succeeded {
            outputs: json!({}),
            artifacts: [("f".to_string(), artifact)].into(),
        },
        at: 1,
        hooks: Vec::new(),
        worker: "w".into(),
        execution: 1,
    };
    // 100 bytes, then the same file again (stored once, counted once),
    // then 100 more: past 150.
    apply(&mut s, finish(&jobs[0], file("a", 100)));
    apply(&mut s, finish(&jobs[1], file("a", 100)));
    apply(&mut s, finish(&jobs[2], file("b", 100)));
    assert_eq!(s.steps[0].status, StepStatus::Succeeded);
    assert_eq!(s.steps[1].status, StepStatus::Succeeded);
    assert_eq!(s.steps[2].status, StepStatus::Failed);
    let c = &s.steps[2].tasks[0].attempts[0];
    assert!(
        c.error
            .as_deref()
            .unwrap()
            .contains("max-artifact-bytes-per-run"),
        "{c:?}"
    );
    assert!(s.steps[2].artifacts.is_empty());
}
