//! `[workflow] on-finish` with a real server: a finished run starts the
//! saved workflows it names whose `when` holds, once, with its id and
//! status as params; a workflow that starts itself stops after a chain of
//! `MAX_DEPTH` follow-ups.

use std::time::Duration;

use weft_core::schedule::follow_up_run_id;

use crate::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_run_starts_its_follow_ups_once_and_a_loop_stops() {
    let cluster = Cluster::start(1);
    let client = cluster.client();
    let report = "[workflow]\nname = \"report\"\n[params]\nparent_run = \"\"\nparent_status = \"\"\n\
                  [steps.say]\nrun = 'echo {{ params.parent_run }} ended {{ params.parent_status }}'\n";
    let quiet = "[workflow]\nname = \"quiet\"\n[steps.say]\nrun = 'echo never'\n";
    let train = "[workflow]\nname = \"train\"\n\
                 on-finish = [{ workflow = \"report\", when = \"run.status == 'failed'\" }, { workflow = \"quiet\", when = \"run.status == 'succeeded'\" }]\n\
                 [steps.fit]\nrun = 'echo diverged >&2; exit 4'\n";
    for source in [report, quiet, train] {
        client.save_workflow(source, None).await.unwrap();
    }
    let id = cluster.submit_text(train).await;
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "failed");
    let follow = follow_up_run_id(&id, 0, view.run.created_at);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while client.run(&follow).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the report never started"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let followed = cluster.wait(&follow, Duration::from_secs(60)).await;
    assert_eq!(followed.run.status, "succeeded");
    assert_eq!(
        followed.run.submitted_by.as_deref(),
        Some(format!("on-finish of {id}").as_str())
    );
    let log = client.logs(&follow, "say", None).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log),
        format!("{id} ended failed\n")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs = client.runs(100).await.unwrap();
    assert_eq!(
        runs.iter().filter(|r| r.workflow == "report").count(),
        1,
        "once"
    );
    assert_eq!(
        runs.iter().filter(|r| r.workflow == "quiet").count(),
        0,
        "its `when` did not hold"
    );

    // A workflow that starts itself: the chain stops.
    let looping = "[workflow]\nname = \"again\"\non-finish = [{ workflow = \"again\" }]\n[steps.a]\nrun = 'true'\n";
    client.save_workflow(looping, None).await.unwrap();
    cluster.submit_text(looping).await;
    let count = || async {
        client
            .runs(100)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.workflow == "again")
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count().await < weft_api::app::MAX_DEPTH + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} runs of the loop",
            count().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count().await,
        weft_api::app::MAX_DEPTH + 1,
        "the first run and {} follow-ups",
        weft_api::app::MAX_DEPTH
    );
}
