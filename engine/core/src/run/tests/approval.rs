//! Approval steps: they wait on no worker, are decided by people, time out,
//! and are re-armed at the same instant by a driver that takes the run over.

use serde_json::json;

use super::{dispatched, ok, state};
use crate::run::*;

const GATE: &str = r#"
[workflow]
name = "deploy"
[steps.build]
run = "build"
[steps.gate]
needs = ["build"]
approve = { roles = ["operator"], timeout = "1h", inputs = { reason = "string" } }
[steps.ship]
needs = ["gate"]
run = "ship {{ steps.gate.outputs.reason }}"
"#;

fn gate() -> TaskId {
    TaskId::new("gate", None)
}

fn decided(approved: bool, inputs: serde_json::Value) -> Event {
    Event::Decided {
        task: gate(),
        attempt: 1,
        by: "ann".into(),
        approved,
        inputs: inputs.as_object().unwrap().clone(),
        comment: Some("looks fine".into()),
        at: 20,
    }
}

/// Starts the run and finishes `build`: `gate` waits.
fn waiting() -> (RunState, Vec<Action>) {
    let mut s = state(GATE);
    let build = dispatched(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let actions = apply(&mut s, ok(&build, json!({})));
    (s, actions)
}

#[test]
fn an_approval_waits_on_no_worker_and_its_inputs_become_its_outputs() {
    let (mut s, actions) = waiting();
    assert!(dispatched(&actions).is_empty(), "{actions:?}");
    assert!(actions.contains(&Action::ArmApprovalTimeout {
        task: gate(),
        attempt: 1,
        at: 10 + 3_600_000
    }));
    assert_eq!(
        s.task(&gate()).unwrap().status,
        TaskStatus::AwaitingApproval
    );
    // A worker's report of it, or a decision for another attempt, changes nothing.
    let mut other = decided(true, json!({"reason": "x"}));
    if let Event::Decided { attempt, .. } = &mut other {
        *attempt = 2;
    }
    assert!(apply(&mut s, other).is_empty());
    let ship = dispatched(&apply(&mut s, decided(true, json!({"reason": "hotfix"}))));
    assert_eq!(
        ship[0].action,
        crate::spec::StepAction::Run {
            command: crate::spec::Command::Shell("ship hotfix".into())
        }
    );
    let t = s.task(&gate()).unwrap();
    assert_eq!(t.outputs, Some(json!({"reason": "hotfix"})));
    assert_eq!(t.attempts[0].worker.as_deref(), Some("ann"));
    // Decided once: a second decision is ignored.
    assert!(apply(&mut s, decided(false, json!({}))).is_empty());
}

#[test]
fn a_rejection_fails_the_step_and_a_timeout_fails_it_too() {
    let (mut s, _) = waiting();
    apply(&mut s, decided(false, json!({})));
    let t = s.task(&gate()).unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(
        t.attempts[0].error.as_deref(),
        Some("rejected by ann: looks fine")
    );
    assert_eq!(s.status, RunStatus::Failed);

    let (mut s, _) = waiting();
    let actions = apply(
        &mut s,
        Event::DeadlinePassed {
            task: gate(),
            attempt: 1,
            at: 3_600_010,
        },
    );
    // Nothing to abort: nothing ran.
    assert!(!actions.iter().any(|a| matches!(a, Action::Abort { .. })));
    let t = s.task(&gate()).unwrap();
    assert_eq!(
        t.attempts[0].error.as_deref(),
        Some("nobody approved or rejected it within 1h00m (`approve.timeout`)")
    );
    assert_eq!(s.status, RunStatus::Failed);
}

#[test]
fn a_driver_taking_over_rearms_the_same_instant_and_a_cancel_ends_the_wait() {
    let (mut s, _) = waiting();
    let actions = resume(&mut s, false);
    assert_eq!(
        actions,
        vec![Action::ArmApprovalTimeout {
            task: gate(),
            attempt: 1,
            at: 10 + 3_600_000
        }]
    );
    apply(
        &mut s,
        Event::CancelRequested {
            reason: "not today".into(),
            at: 30,
        },
    );
    assert_eq!(s.status, RunStatus::Cancelled);
    assert_eq!(s.task(&gate()).unwrap().status, TaskStatus::Cancelled);
}

#[test]
fn approval_steps_take_no_worker_settings() {
    let errors = crate::spec::load(
        "[workflow]\nname = \"w\"\n[steps.gate]\napprove = {}\nretries = 2\nfor-each = [1]\n",
    )
    .unwrap_err();
    let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages.contains(&"an approval step has no `retries`"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"an approval step has no `for-each`"),
        "{messages:?}"
    );
}

mod property {
    use proptest::prelude::*;
    use serde_json::json;

    use super::{decided, gate, state, GATE};
    use crate::run::*;

    /// Something that may happen to the deploy run, in any order.
    #[derive(Debug, Clone)]
    enum Happens {
        BuildOk,
        BuildFails,
        Decide { approved: bool, attempt: u32 },
        TimesOut { attempt: u32 },
        Cancel,
        Takeover,
    }

    fn happens() -> impl Strategy<Value = Vec<Happens>> {
        proptest::collection::vec(
            prop_oneof![
                Just(Happens::BuildOk),
                Just(Happens::BuildFails),
                (any::<bool>(), 1u32..3)
                    .prop_map(|(approved, attempt)| Happens::Decide { approved, attempt }),
                (1u32..3).prop_map(|attempt| Happens::TimesOut { attempt }),
                Just(Happens::Cancel),
                Just(Happens::Takeover),
            ],
            0..12,
        )
    }

    proptest! {
        /// Whatever happens in whatever order, an approval step's task is
        /// never handed to a worker, has one attempt, and is decided at
        /// most once; `ship` runs only after an approval.
        #[test]
        fn an_approval_is_never_dispatched_and_decided_once(events in happens()) {
            let mut s = state(GATE);
            let mut jobs: Vec<Job> = super::dispatched(&apply(&mut s, Event::Started { at: 0 }));
            let mut approved = false;
            for e in events {
                let build = jobs.iter().find(|j| j.task.step == "build").cloned();
                let actions = match e {
                    Happens::BuildOk => match &build {
                        Some(b) => apply(&mut s, super::ok(b, json!({}))),
                        None => Vec::new(),
                    },
                    Happens::BuildFails => match &build {
                        Some(b) => apply(&mut s, super::super::fail(b)),
                        None => Vec::new(),
                    },
                    Happens::Decide { approved: yes, attempt } => {
                        let mut d = decided(yes, json!({"reason": "r"}));
                        if let Event::Decided { attempt: a, .. } = &mut d {
                            *a = attempt;
                        }
                        let waiting = s.task(&gate()).is_some_and(|t| t.status == TaskStatus::AwaitingApproval);
                        let out = apply(&mut s, d);
                        if yes && attempt == 1 && waiting {
                            approved = true;
                        }
                        out
                    }
                    Happens::TimesOut { attempt } => apply(&mut s, Event::DeadlinePassed { task: gate(), attempt, at: 5 }),
                    Happens::Cancel => apply(&mut s, Event::CancelRequested { reason: "c".into(), at: 6 }),
                    Happens::Takeover => resume(&mut s, false),
                };
                let new = super::dispatched(&actions);
                prop_assert!(new.iter().all(|j| j.task.step != "gate"), "{new:?}");
                if new.iter().any(|j| j.task.step == "ship") {
                    prop_assert!(approved, "ship ran without an approval");
                }
                jobs.extend(new);
                if let Some(t) = s.task(&gate()) {
                    prop_assert!(t.attempts.len() <= 1, "{:?}", t.attempts);
                }
            }
        }
    }
}
