//! Flow control: steps that may fail, needs whatever their outcome, and
//! `max-parallel`.

use proptest::prelude::*;
use serde_json::json;

use super::{dispatched, fail, ok, state};
use crate::run::*;
use crate::spec;

/// A failure no retry follows.
fn fail_for_good(job: &Job) -> Event {
    let mut failing = fail(job);
    if let Event::TaskFinished {
        outcome: Outcome::Failed { retryable, .. },
        ..
    } = &mut failing
    {
        *retryable = false;
    }
    failing
}

#[test]
fn a_step_that_may_fail_and_a_step_that_runs_whatever_happened() {
    let mut s = state(
        r#"
[workflow]
name = "cleanup"
[steps.lint]
run = "lint"
continue-on-error = true
[steps.build]
needs = ["lint"]
run = "build"
[steps.test]
needs = ["build"]
run = "test"
[steps.cleanup]
needs = [{ step = "test", status = "any" }]
run = "cleanup"
[steps.report]
needs = ["test"]
run = "report"
"#,
    );
    let lint = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let failing = fail_for_good(&lint);
    // lint may fail: build still runs.
    let build = dispatched(&apply(&mut s, failing)).remove(0);
    assert_eq!(build.task.step, "build");
    let test = dispatched(&apply(&mut s, ok(&build, json!({})))).remove(0);
    let failing = fail_for_good(&test);
    // test failed: report is skipped, cleanup runs anyway.
    let next = dispatched(&apply(&mut s, failing));
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].task.step, "cleanup");
    assert_eq!(s.steps[4].status, StepStatus::Skipped);
    apply(&mut s, ok(&next[0], json!({})));
    // The run failed for test, not for lint.
    assert_eq!(s.status, RunStatus::Failed);
    let summary = s.failure_summary().unwrap();
    assert!(
        summary.starts_with("test:") && !summary.contains("lint"),
        "{summary}"
    );

    // `needs` entries are checked with line and column.
    let errors = spec::load(
        "[workflow]\nname = \"w\"\n[steps.a]\nrun = \"a\"\n[steps.b]\nneeds = [{ step = \"a\", status = \"maybe\" }]\nrun = \"b\"\n",
    )
    .unwrap_err();
    assert!(
        errors
            .iter()
            .any(|d| d.message.contains("`needs.status` is `succeeded`")),
        "{errors:?}"
    );
}

proptest! {
    /// However instances end (succeeding, failing into retries, failing for
    /// good), a `max-parallel` step never has more than its limit under
    /// way, and every instance runs.
    #[test]
    fn max_parallel_is_never_exceeded(limit in 1u32..5, items in 0usize..25, seed in any::<u64>()) {
        let list: Vec<usize> = (0..items).collect();
        let mut s = state(&format!(
            "[workflow]\nname = \"p\"\n[steps.each]\nfor-each = {list:?}\nmax-parallel = {limit}\nrun = \"x\"\nretries = {{ limit = 1, delay = \"1s\" }}\n[steps.after]\nneeds = [{{ step = \"each\", status = \"any\" }}]\nrun = \"y\"\n"
        ));
        let mut pending: Vec<Job> = dispatched(&apply(&mut s, Event::Started { at: 0 }));
        let mut rng = seed;
        let mut ran = std::collections::BTreeSet::new();
        let mut retries: Vec<(TaskId, u32)> = Vec::new();
        loop {
            let under_way = s.steps[0].tasks.iter().filter(|t| matches!(t.status, TaskStatus::Queued | TaskStatus::Running | TaskStatus::RetryWaiting)).count();
            prop_assert!(under_way <= limit as usize, "{under_way} under way, limit {limit}");
            let job = if let Some(i) = (!pending.is_empty()).then(|| { rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (rng >> 33) as usize % pending.len() }) {
                pending.swap_remove(i)
            } else if let Some((task, attempt)) = retries.pop() {
                pending.extend(dispatched(&apply(&mut s, Event::RetryDue { task, attempt, at: 5 })));
                continue;
            } else {
                break;
            };
            if job.task.step == "after" {
                apply(&mut s, ok(&job, json!({})));
                continue;
            }
            ran.insert(job.task.clone());
            let event = if (rng >> 40) % 3 == 0 { fail(&job) } else { ok(&job, json!({})) };
            let actions = apply(&mut s, event);
            for a in &actions {
                if let Action::ScheduleRetry { task, attempt, .. } = a {
                    retries.push((task.clone(), *attempt));
                }
            }
            pending.extend(dispatched(&actions));
        }
        prop_assert_eq!(ran.len(), items);
        prop_assert!(s.status.is_terminal());
    }
}

#[test]
fn max_parallel_needs_a_for_each() {
    let errors = spec::load("[workflow]\nname = \"w\"\n[steps.a]\nrun = \"a\"\nmax-parallel = 2\n")
        .unwrap_err();
    assert!(
        errors
            .iter()
            .any(|d| d.message.contains("has no `for-each`")),
        "{errors:?}"
    );
}

#[test]
fn a_run_past_its_timeout_fails_and_stops_its_steps() {
    let mut s = state(
        "[workflow]\nname = \"t\"\ntimeout = \"1m\"\n[steps.a]\nrun = \"a\"\n[steps.b]\nneeds = [\"a\"]\nrun = \"b\"\n",
    );
    let actions = apply(&mut s, Event::Started { at: 1_000 });
    assert!(actions.contains(&Action::ArmRunDeadline { at: 61_000 }));
    let a = dispatched(&actions).remove(0);
    // A driver that takes the run over arms the same instant.
    let mut copy = s.clone();
    assert!(resume(&mut copy, false).contains(&Action::ArmRunDeadline { at: 61_000 }));
    let actions = apply(&mut s, Event::RunTimedOut { at: 61_000 });
    assert!(actions.contains(&Action::Abort {
        task: a.task.clone(),
        attempt: 1
    }));
    assert!(actions.contains(&Action::Finished {
        status: RunStatus::Failed
    }));
    assert_eq!(s.status, RunStatus::Failed);
    let summary = s.failure_summary().unwrap();
    assert!(summary.contains("timed out after 1m"), "{summary}");
    // Nothing after it changes the run.
    assert!(apply(&mut s, ok(&a, json!({}))).is_empty());
}

/// A run held by its concurrency key is pending, says why, and dispatches
/// nothing until `Started`, whatever comes before it; a cancel while it
/// waits ends it with no step run.
#[test]
fn a_run_waiting_for_its_key_dispatches_nothing_until_it_starts() {
    let source =
        "[workflow]\nname = \"w\"\nconcurrency = { key = \"k\" }\n[steps.a]\nrun = \"a\"\n";
    let spot = crate::concurrency::QueueSpot {
        key: "k".into(),
        limit: 1,
        policy: Default::default(),
        priority: 0,
        queued_at: 1,
    };
    let mut s = state(source);
    let waiting = [
        Event::Queued {
            spot: spot.clone(),
            at: 1,
        },
        Event::Waiting {
            reason: "held by r0".into(),
            at: 2,
        },
        Event::RetryDue {
            task: TaskId::new("a", None),
            attempt: 1,
            at: 3,
        },
    ];
    for e in waiting.clone() {
        assert!(dispatched(&apply(&mut s, e)).is_empty());
    }
    assert_eq!(s.status, RunStatus::Pending);
    assert_eq!(s.queue.as_ref(), Some(&spot));
    assert_eq!(s.waiting.as_deref(), Some("held by r0"));
    let started = apply(&mut s, Event::Started { at: 4 });
    assert_eq!(dispatched(&started).len(), 1);
    assert_eq!(s.waiting, None);

    let mut cancelled = state(source);
    for e in waiting {
        apply(&mut cancelled, e);
    }
    let actions = apply(
        &mut cancelled,
        Event::CancelRequested {
            reason: "skipped".into(),
            at: 5,
        },
    );
    assert!(dispatched(&actions).is_empty());
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(cancelled.steps[0].tasks.is_empty());
}
