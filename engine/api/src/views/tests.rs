//! What the views say of runs and groups, without a server.

use super::group_status;

#[test]
fn a_run_whose_end_is_not_yet_recorded_shows_its_end_and_why() {
    use weft_core::run::{Event, Outcome, Plan, RunState};
    let source = "[workflow]\nname = \"w\"\n[steps.a]\nrun = \"false\"\n";
    let workflow = weft_core::spec::load(source).unwrap();
    let mut state = RunState::new("r1", Plan::new(workflow), Default::default());
    let job = weft_core::run::apply(&mut state, Event::Started { at: 1 })
        .into_iter()
        .find_map(|a| match a {
            weft_core::run::Action::Dispatch(j) => Some(j),
            _ => None,
        })
        .unwrap();
    weft_core::run::apply(
        &mut state,
        Event::TaskFinished {
            task: job.task.clone(),
            attempt: 1,
            outcome: Outcome::Failed {
                reason: "exited with code 1".into(),
                exit_code: Some(1),
                retryable: false,
                kind: weft_core::run::FailureKind::ExitCode,
            },
            at: 5,
            hooks: Vec::new(),
            worker: "w".into(),
            execution: 1,
        },
    );
    // The record still says running, with no end and no summary.
    let record = weft_testkit::run_record("r1", 0);
    let view = super::RunView::new(&record, &state);
    assert_eq!(view.run.status, "failed");
    assert_eq!(view.run.finished_at, Some(5));
    assert_eq!(view.run.summary.as_deref(), Some("a: exited with code 1"));
}

#[test]
fn a_group_says_one_word_for_its_steps() {
    for (statuses, word) in [
        (&["succeeded", "succeeded"][..], "succeeded"),
        (&["waiting", "waiting"], "waiting"),
        (&["succeeded", "running", "waiting"], "running"),
        (&["failed", "running"], "running"),
        (&["failed", "succeeded", "skipped"], "failed"),
        (&["cancelled", "succeeded"], "cancelled"),
        (&["succeeded", "waiting"], "running"),
        (&["succeeded", "skipped"], "succeeded"),
    ] {
        assert_eq!(group_status(statuses), word, "{statuses:?}");
    }
}
