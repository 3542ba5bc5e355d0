//! The `RunRemoval` contract, against a store that is also a `RunStore`.

use weft_core::ports::{AttemptId, RunRemoval, RunStore};
use weft_core::run::{Event, RunStatus, TaskId};
use weft_core::Error;

use crate::unique;

/// A run with one event and one attempt's log; the attempt.
async fn stored_run(s: &dyn RunStore, status: RunStatus) -> (String, AttemptId) {
    let id = unique("run");
    let mut record = crate::run_record(&id, 5);
    record.status = status;
    s.create_run(&record).await.unwrap();
    let fence = s.lease(&id, "me", 1, 60_000).await.unwrap().unwrap();
    s.append_events(&id, &fence, 0, &[Event::Started { at: 1 }])
        .await
        .unwrap();
    let attempt = AttemptId {
        run_id: id.clone(),
        task: TaskId::new("a", None),
        attempt: 1,
    };
    s.append_log(&attempt, 0, b"hello\n").await.unwrap();
    (id, attempt)
}

pub async fn a_finished_run_is_removed_whole(s: &(impl RunStore + RunRemoval)) {
    let (id, attempt) = stored_run(s, RunStatus::Succeeded).await;
    let (other, other_attempt) = stored_run(s, RunStatus::Failed).await;
    assert!(s
        .remove_run(&id, std::slice::from_ref(&attempt))
        .await
        .unwrap());
    assert_eq!(s.get_run(&id).await.unwrap(), None);
    assert!(s.events(&id).await.unwrap().is_empty());
    assert!(s.read_log(&attempt).await.unwrap().is_empty());
    assert!(!s
        .list_runs(usize::MAX)
        .await
        .unwrap()
        .iter()
        .any(|r| r.id == id));
    // Once is enough; the other run is untouched.
    assert!(!s.remove_run(&id, &[attempt]).await.unwrap());
    assert!(s.get_run(&other).await.unwrap().is_some());
    assert_eq!(s.read_log(&other_attempt).await.unwrap(), b"hello\n");
}

pub async fn an_unfinished_run_is_refused(s: &(impl RunStore + RunRemoval)) {
    let (id, attempt) = stored_run(s, RunStatus::Running).await;
    assert!(matches!(
        s.remove_run(&id, std::slice::from_ref(&attempt)).await,
        Err(Error::Conflict(_))
    ));
    assert!(s.get_run(&id).await.unwrap().is_some());
    assert_eq!(s.read_log(&attempt).await.unwrap(), b"hello\n");
}

pub async fn logs_alone_are_removed(s: &(impl RunStore + RunRemoval)) {
    let (id, attempt) = stored_run(s, RunStatus::Succeeded).await;
    s.remove_logs(std::slice::from_ref(&attempt)).await.unwrap();
    assert!(s.read_log(&attempt).await.unwrap().is_empty());
    assert_eq!(s.events(&id).await.unwrap().len(), 1);
    assert!(s.get_run(&id).await.unwrap().is_some());
}

#[macro_export]
macro_rules! run_removal_contract {
    ($make:expr) => {
        mod run_removal_contract {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_finished_run_is_removed_whole() {
                let store = $make.await;
                $crate::run_removal::a_finished_run_is_removed_whole(&store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_unfinished_run_is_refused() {
                let store = $make.await;
                $crate::run_removal::an_unfinished_run_is_refused(&store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn logs_alone_are_removed() {
                let store = $make.await;
                $crate::run_removal::logs_alone_are_removed(&store).await;
            }
        }
    };
}
