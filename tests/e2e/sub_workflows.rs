//! Sub-workflow steps with a real server, worker, Redis and RabbitMQ: a
//! saved workflow runs as a child run whose outputs flow into the parent;
//! cancelling the parent cancels the child; a retry of the parent reuses
//! the succeeded child; cycles and missing workflows are refused.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cluster::{step, Cluster, Setup};

const ETL: &str = r#"
[workflow]
name = "etl"
outputs = "load"
[params]
day = "today"
[steps.extract]
run = "echo extracting {{ params.day }}"
[steps.load]
needs = ["extract"]
run = '''printf '{"rows": 42, "day": "{{ params.day }}"}' > "$WEFT_OUTPUTS"'''
"#;

const NIGHTLY: &str = r#"
[workflow]
name = "nightly-etl"
[params]
day = "2026-12-01"
[steps.etl]
workflow = { name = "etl", params = { day = "{{ params.day }}" } }
[steps.report]
needs = ["etl"]
run = '''printf '{"seen": "{{ steps.etl.outputs.rows }} rows on {{ steps.etl.outputs.day }}"}' > "$WEFT_OUTPUTS"'''
"#;

async fn save(cluster: &Cluster, source: &str) {
    cluster.client().save_workflow(source, None).await.unwrap();
}

async fn runs_of(cluster: &Cluster, workflow: &str) -> Vec<String> {
    let (_, runs) = cluster
        .call(
            Some(&cluster.admin_token),
            Method::GET,
            &format!("/api/runs?workflow={workflow}&limit=100"),
            None,
        )
        .await;
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_workflow_runs_as_a_child_whose_outputs_flow_into_the_parent() {
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        worker: "concurrency = 4",
        ..Setup::default()
    });
    save(&cluster, ETL).await;
    let view = cluster
        .run_as(&cluster.admin_token, NIGHTLY, json!({}))
        .await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let etl = step(&view, "etl");
    assert_eq!(etl.outputs, Some(json!({"rows": 42, "day": "2026-12-01"})));
    assert_eq!(
        step(&view, "report").outputs,
        Some(json!({"seen": "42 rows on 2026-12-01"}))
    );
    // The step names its child, and the child its parent.
    let worker = etl.tasks[0].attempts[0].worker.clone().unwrap();
    let child = worker.strip_prefix("run ").expect(&worker).to_string();
    let child_view = cluster.client().run(&child).await.unwrap();
    assert_eq!(child_view.run.status, "succeeded");
    assert_eq!(child_view.run.workflow, "etl");
    let parent = child_view.flow.parent.clone().unwrap();
    assert_eq!(
        (parent.run.as_str(), parent.task.step.as_str()),
        (view.run.id.as_str(), "etl")
    );
    assert_eq!(runs_of(&cluster, "etl").await, vec![child.clone()]);

    // A retry from `report` reuses the succeeded child: no second etl run.
    let retried = cluster
        .client()
        .retry(&view.run.id, Some("report"))
        .await
        .unwrap();
    let retried = cluster.wait(&retried.id, Duration::from_secs(60)).await;
    assert_eq!(retried.run.status, "succeeded", "{retried:?}");
    assert_eq!(
        step(&retried, "etl").reused_from.as_deref(),
        Some(view.run.id.as_str())
    );
    assert_eq!(runs_of(&cluster, "etl").await, vec![child]);

    // A workflow that is not saved fails the step, saying so.
    let missing = NIGHTLY.replace("name = \"etl\"", "name = \"nope\"");
    let view = cluster
        .run_as(&cluster.admin_token, &missing, json!({}))
        .await;
    assert_eq!(view.run.status, "failed");
    let summary = view.run.summary.unwrap_or_default();
    assert!(
        summary.contains("there is no saved workflow nope"),
        "{summary}"
    );

    // A cycle through saved workflows is refused at submit.
    save(
        &cluster,
        "[workflow]\nname = \"loop-a\"\n[steps.b]\nworkflow = { name = \"loop-b\" }\n",
    )
    .await;
    let loop_b = "[workflow]\nname = \"loop-b\"\n[steps.a]\nworkflow = { name = \"loop-a\" }\n";
    let (status, body) = cluster
        .call(
            Some(&cluster.admin_token),
            Method::POST,
            "/api/runs",
            Some(json!({"workflow": loop_b})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("a sub-workflow cycle: loop-b → loop-a → loop-b"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_parent_cancels_its_child_run() {
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        worker: "concurrency = 4",
        ..Setup::default()
    });
    save(
        &cluster,
        "[workflow]\nname = \"slow\"\n[steps.wait]\nrun = \"sleep 60\"\n",
    )
    .await;
    let parent = cluster
        .submit_text(
            "[workflow]\nname = \"outer\"\n[steps.inner]\nworkflow = { name = \"slow\" }\n",
        )
        .await;
    // The child runs its step.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let child = loop {
        if let Some(child) = runs_of(&cluster, "slow").await.first().cloned() {
            let view = cluster.client().run(&child).await.unwrap();
            if step(&view, "wait")
                .tasks
                .first()
                .is_some_and(|t| t.status == "running")
            {
                break child;
            }
        }
        assert!(std::time::Instant::now() < deadline, "the child never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    cluster.client().cancel(&parent).await.unwrap();
    let parent_view = cluster.wait(&parent, Duration::from_secs(30)).await;
    assert_eq!(parent_view.run.status, "cancelled", "{parent_view:?}");
    let child_view = cluster.wait(&child, Duration::from_secs(30)).await;
    assert_eq!(child_view.run.status, "cancelled", "{child_view:?}");
    let reason = child_view.run.summary.unwrap_or_default();
    assert!(
        reason.contains(&format!("its parent run {parent} stopped step inner")),
        "{reason}"
    );
}
