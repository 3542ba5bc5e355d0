//! Approval steps with a real server, worker, Redis and RabbitMQ: a run
//! waits for a person across a server restart, holding no worker; a role
//! the step does not name is refused; `weft approve` gives its inputs,
//! which flow on; a rejection fails the run.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cluster::{step, Cluster, Setup};
use crate::support::{text, weft_bin};

const DEPLOY: &str = r#"
[workflow]
name = "deploy"
[steps.build]
run = "echo built"
[steps.gate]
needs = ["build"]
approve = { roles = ["operator"], timeout = "10m", inputs = { reason = "string", replicas = "number" } }
[steps.ship]
needs = ["gate"]
run = '''printf '{"said": "{{ steps.gate.outputs.reason }} x {{ steps.gate.outputs.replicas }}"}' > "$WEFT_OUTPUTS"'''
"#;

async fn decide(
    cluster: &Cluster,
    token: &str,
    id: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    cluster
        .call(
            Some(token),
            Method::POST,
            &format!("/api/runs/{id}/steps/gate/decision"),
            Some(body),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_survives_a_server_restart_and_its_inputs_flow_on() {
    let mut cluster = Cluster::set_up(Setup {
        workers: 1,
        ..Setup::default()
    });
    let operator = cluster.mint("ops-ann", "operator").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let viewer = cluster.mint("view-bob", "viewer").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let id = cluster.submit_text(DEPLOY).await;
    let view = cluster.awaiting_approval(&id, "gate").await;
    assert_eq!(view.run.status, "running");
    assert_eq!(step(&view, "ship").status, "waiting");
    // The wait holds no worker: no attempt of it was handed to one.
    assert!(step(&view, "gate").tasks[0].attempts[0].worker.is_none());

    // The server goes away and comes back: the wait is in the run's events.
    cluster.kill_serve();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.start_serve();
    let view = cluster.awaiting_approval(&id, "gate").await;
    assert_eq!(view.run.status, "running");

    // A viewer may not decide; an operator must give the inputs, typed.
    let (status, body) = decide(&cluster, &viewer, &id, json!({"approve": true})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("role viewer may not approve or reject step gate"),
        "{body}"
    );
    let (status, body) = decide(
        &cluster,
        &operator,
        &id,
        json!({"approve": true, "inputs": {"reason": "hotfix"}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the approval needs input `replicas` (number)"),
        "{body}"
    );

    // `weft approve`, as the operator.
    let out = std::process::Command::new(weft_bin())
        .args([
            "--server",
            &cluster.url,
            "--token",
            &operator,
            "approve",
            &id,
            "gate",
        ])
        .args(["--input", "reason=hotfix", "--input", "replicas=3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("approved step gate of run {id}")),
        "{}",
        text(&out)
    );
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let gate = step(&view, "gate");
    assert_eq!(
        gate.outputs,
        Some(json!({"reason": "hotfix", "replicas": 3}))
    );
    assert_eq!(gate.tasks[0].attempts[0].worker.as_deref(), Some("ops-ann"));
    assert_eq!(
        step(&view, "ship").outputs,
        Some(json!({"said": "hotfix x 3"}))
    );
    // Decided once: a second decision is a conflict.
    let (status, body) = decide(&cluster, &operator, &id, json!({"approve": false})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("is not waiting for approval: it is succeeded"),
        "{body}"
    );

    // Rejected: the step fails with who and why, and the run fails.
    let rejected = cluster.submit_text(DEPLOY).await;
    cluster.awaiting_approval(&rejected, "gate").await;
    let (status, body) = decide(
        &cluster,
        &operator,
        &rejected,
        json!({"approve": false, "comment": "not on a Friday"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let view = cluster.wait(&rejected, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "failed", "{view:?}");
    assert!(
        view.run
            .summary
            .as_deref()
            .unwrap_or_default()
            .contains("gate: rejected by ops-ann: not on a Friday"),
        "{view:?}"
    );
    assert_eq!(step(&view, "ship").status, "skipped");
    // Both decisions are in the audit log.
    let (_, audit) = cluster
        .call(Some(&cluster.admin_token), Method::GET, "/api/audit", None)
        .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"approve-step") && actions.contains(&"reject-step"),
        "{audit}"
    );
}

/// The dashboard: a waiting run says what it waits for; a step waiting for
/// a person has a form with its inputs, and Approve sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_why_a_run_waits_and_approves_a_step_with_its_inputs() {
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        worker: "concurrency = 4",
        ..Setup::default()
    });
    // A run waiting for a concurrency key held by another.
    let keyed = "[workflow]\nname = \"keyed\"\nconcurrency = { key = \"only-one\" }\n[steps.a]\nrun = \"sleep 30\"\n";
    let holder = cluster.submit_text(keyed).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while step(&cluster.client().run(&holder).await.unwrap(), "a")
        .tasks
        .first()
        .is_none_or(|t| t.status != "running")
    {
        assert!(std::time::Instant::now() < deadline, "the holder never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waiting = cluster.submit_text(keyed).await;
    let b =
        crate::dashboard::open_as(&cluster, &cluster.admin_token, &format!("runs/{waiting}")).await;
    let said = b
        .wait_for(
            "the waiting line",
            "return document.querySelector('p.waiting')?.textContent",
            Duration::from_secs(30),
        )
        .await;
    let said = said.as_str().unwrap();
    assert!(
        said.contains(
            "Waiting: waiting for a slot of concurrency key `only-one` (limit 1): held by"
        ) && said.contains(&holder),
        "{said}"
    );
    cluster.client().cancel(&waiting).await.unwrap();
    cluster.client().cancel(&holder).await.unwrap();

    // A step waiting for a person, approved from its panel.
    let id = cluster.submit_text(DEPLOY).await;
    cluster.awaiting_approval(&id, "gate").await;
    let b = crate::dashboard::open_step(&cluster, &id, "gate").await;
    b.wait_for(
        "the approval form",
        "return document.querySelector('form.approval input[name=reason]')",
        Duration::from_secs(30),
    )
    .await;
    b.type_into("form.approval input[name=reason]", "from the page")
        .await;
    b.type_into("form.approval input[name=replicas]", "2").await;
    b.click("form.approval button[type=submit]").await;
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    assert_eq!(
        step(&view, "gate").outputs,
        Some(json!({"reason": "from the page", "replicas": 2}))
    );
    assert_eq!(
        step(&view, "ship").outputs,
        Some(json!({"said": "from the page x 2"}))
    );
}
