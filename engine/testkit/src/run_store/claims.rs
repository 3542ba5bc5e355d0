//! The [`AttemptClaims`] contract: one execution holds an attempt at a
//! time, a claim past the delivery limit is given to no new one, and a
//! finished or aborted claim is final.

use weft_core::ports::{AttemptClaims, AttemptId, Claim, ClaimedExecution, Report, ReportKind};
use weft_core::run::{Outcome, TaskId};
use weft_core::Error;

use super::now;
use crate::unique;

/// The report of execution `token` of attempt `key`, succeeded: what a
/// worker finishes a claim with.
pub fn finished(key: &AttemptId, token: u64) -> Report {
    Report {
        run_id: key.run_id.clone(),
        task: key.task.clone(),
        attempt: key.attempt,
        worker: "w1".into(),
        at: 7,
        execution: token,
        earlier: Vec::new(),
        kind: ReportKind::Finished {
            outcome: Outcome::Succeeded {
                outputs: serde_json::json!({"n": 1}),
                artifacts: Default::default(),
            },
            hooks: Vec::new(),
            unreported_start_ms: None,
        },
    }
}

/// Held by an execution with no earlier one.
fn held(token: u64) -> Claim {
    Claim::Held {
        token,
        earlier: Vec::new(),
    }
}

pub async fn one_execution_holds_an_attempt_until_its_claim_expires(s: &dyn AttemptClaims) {
    let key = AttemptId {
        run_id: unique("run"),
        task: TaskId::new("a", None),
        attempt: 1,
    };
    let Claim::Held { token: first, .. } = s.claim(&key, "w1", now(), 400, None).await.unwrap()
    else {
        panic!("a free attempt is claimed");
    };
    assert_eq!(
        s.claim(&key, "w2", now(), 400, None).await.unwrap(),
        Claim::HeldBy("w1".into())
    );
    assert_eq!(
        s.claim(&key, "w1/copy-2", now(), 400, None).await.unwrap(),
        Claim::HeldBy("w1".into()),
        "a second copy on the same worker is not a renewal"
    );
    assert_eq!(
        s.claim(&key, "w1", now(), 400, None).await.unwrap(),
        held(first),
        "the claimant asking again (its answer lost) gets its execution back"
    );
    assert_eq!(
        s.renew_claim(&key, "w1", first, now(), 400).await.unwrap(),
        held(first),
        "the holder renews"
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let Claim::Held {
        token: second,
        earlier,
    } = s.claim(&key, "w2", now(), 400, None).await.unwrap()
    else {
        panic!("an expired claim is free");
    };
    assert!(second > first, "a new execution has a newer token");
    assert_eq!(
        earlier,
        vec![ClaimedExecution {
            token: first,
            worker: "w1".into()
        }],
        "and is told of the one before"
    );
    let both = s.claim_executions(&key).await.unwrap();
    assert_eq!(
        both.iter()
            .map(|e| (e.token, e.worker.as_str()))
            .collect::<Vec<_>>(),
        vec![(first, "w1"), (second, "w2")],
        "reading a claim says which executions began"
    );
    assert_eq!(
        s.renew_claim(&key, "w2", second, now(), 400).await.unwrap(),
        Claim::Held {
            token: second,
            earlier: Vec::new()
        },
        "and changes nothing"
    );
    assert_eq!(
        s.renew_claim(&key, "w1", first, now(), 400).await.unwrap(),
        Claim::HeldBy("w2".into()),
        "the old execution learns it lost the claim"
    );
    // It finishes first all the same: the first execution to finish wins.
    let report = finished(&key, first);
    s.finish_claim(&key, "w1", first, &report).await.unwrap();
    assert_eq!(
        s.renew_claim(&key, "w2", second, now(), 400).await.unwrap(),
        Claim::Done(Some(Box::new(report.clone()))),
        "the newer execution learns at its next renewal, and stops"
    );
    assert!(
        matches!(
            s.finish_claim(&key, "w2", second, &finished(&key, second))
                .await,
            Err(Error::Fenced(_))
        ),
        "a second finish is refused"
    );
}

pub async fn a_claim_past_its_delivery_limit_is_given_to_no_new_execution(s: &dyn AttemptClaims) {
    let key = AttemptId {
        run_id: unique("run"),
        task: TaskId::new("poison", None),
        attempt: 1,
    };
    let lapse = || tokio::time::sleep(std::time::Duration::from_millis(250));
    let limit = Some(1);
    assert!(matches!(
        s.claim(&key, "w1@1#1", now(), 100, limit).await.unwrap(),
        Claim::Held { token: 1, .. }
    ));
    lapse().await;
    assert!(
        matches!(
            s.claim(&key, "w2@1#1", now(), 100, limit).await.unwrap(),
            Claim::Held { token: 2, .. }
        ),
        "one execution began: a second may"
    );
    assert!(
        matches!(
            s.claim(&key, "w2@1#1", now(), 100, limit).await.unwrap(),
            Claim::Held { token: 2, .. }
        ),
        "its claimant asking again is no new execution"
    );
    assert_eq!(
        s.claim(&key, "w3@1#1", now(), 100, limit).await.unwrap(),
        Claim::HeldBy("w2@1#1".into()),
        "held is held, whatever the count"
    );
    lapse().await;
    assert_eq!(
        s.claim(&key, "w3@1#1", now(), 100, limit).await.unwrap(),
        Claim::Exhausted { began: 2 },
        "two began and none finished: past the limit"
    );
    assert_eq!(
        s.claim_executions(&key).await.unwrap().len(),
        2,
        "the refusal is no execution"
    );
    assert!(
        matches!(
            s.claim(&key, "w3@1#1", now(), 100, None).await.unwrap(),
            Claim::Held { token: 3, .. }
        ),
        "without a limit it is free"
    );
}

pub async fn finished_and_aborted_claims_are_final(s: &dyn AttemptClaims) {
    let key = |attempt| AttemptId {
        run_id: "claims".into(),
        task: TaskId::new(unique("t"), None),
        attempt,
    };
    let done = key(1);
    let Claim::Held { token, .. } = s.claim(&done, "w1", now(), 60_000, None).await.unwrap() else {
        panic!("held");
    };
    let report = finished(&done, token);
    s.finish_claim(&done, "w1", token, &report).await.unwrap();
    s.finish_claim(&done, "w1", token, &report)
        .await
        .expect("finishing again (a lost reply) is fine");
    assert_eq!(
        s.claim(&done, "w2", now(), 60_000, None).await.unwrap(),
        Claim::Done(Some(Box::new(report.clone()))),
        "a redelivered copy gets the report"
    );
    let told = s.abort_claim(&done).await.unwrap();
    assert_eq!(
        s.claim(&done, "w1", now(), 60_000, None).await.unwrap(),
        Claim::Done(Some(Box::new(report))),
        "a finished attempt stays finished"
    );
    assert_eq!(
        told,
        vec![ClaimedExecution {
            token,
            worker: "w1".into()
        }],
        "an abort says which executions began"
    );
    let aborted = key(2);
    // Claimants as workers name them: `<worker>@<start>#<copy>`.
    let Claim::Held { token, .. } = s
        .claim(&aborted, "w@1@7#2", now(), 60_000, None)
        .await
        .unwrap()
    else {
        panic!("held");
    };
    assert_eq!(
        s.abort_claim(&aborted).await.unwrap(),
        vec![ClaimedExecution {
            token,
            worker: "w@1".into()
        }],
        "named by worker"
    );
    assert_eq!(
        s.renew_claim(&aborted, "w@1@7#2", token, now(), 60_000)
            .await
            .unwrap(),
        Claim::Aborted,
        "the holder learns on renewal"
    );
    let never = key(3);
    assert_eq!(
        s.claim_executions(&never).await.unwrap(),
        Vec::new(),
        "a claim never taken has no executions"
    );
    assert_eq!(
        s.abort_claim(&never).await.unwrap(),
        Vec::new(),
        "none began"
    );
    assert_eq!(
        s.claim(&never, "w1", now(), 60_000, None).await.unwrap(),
        Claim::Aborted,
        "aborted before it started"
    );
}
