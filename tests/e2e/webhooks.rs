//! Webhooks with a real server: a signed delivery starts a run with params
//! from its payload; the same delivery sent again starts nothing; a wrong
//! signature, a payload without a mapped field, a delivery without an id,
//! an unknown webhook are each refused, starting nothing; two saved
//! workflows cannot share a webhook name.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::cluster::{Cluster, Setup};

const SECRET: &str = "a webhook signing secret";

fn sign(body: &[u8], key: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Posts `body` to webhook `name`; its status and JSON answer.
async fn deliver(
    cluster: &Cluster,
    name: &str,
    body: &str,
    signature: Option<String>,
    delivery: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/triggers/{name}", cluster.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = signature {
        request = request.header("x-hub-signature-256", s);
    }
    if let Some(d) = delivery {
        request = request.header("x-github-delivery", d);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delivery_starts_one_run_and_anything_else_starts_none() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("secret.key");
    std::fs::write(&key_file, STANDARD.encode([7u8; 32])).unwrap();
    let tables = format!("[secrets]\nkey-file = \"{}\"\n", key_file.display());
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        tables: &tables,
        ..Setup::default()
    });
    let client = cluster.client();
    client
        .set_secret(
            "PUSH_HOOK",
            &weft_api::views::SetSecret {
                value: SECRET.into(),
                scope: None,
            },
        )
        .await
        .unwrap();
    let workflow = "[workflow]\nname = \"deploy\"\n[params]\nbranch = \"main\"\nsha = \"\"\n\
                    [steps.deploy]\nrun = 'echo deploying {{ params.branch }} at {{ params.sha }}'\n\
                    [[triggers.webhook]]\nname = \"on-push\"\nsecret = \"PUSH_HOOK\"\n\
                    params = { branch = \"{{ payload.ref }}\", sha = \"{{ payload.head_commit.id }}\" }\n";
    client.save_workflow(workflow, None).await.unwrap();
    let body = r#"{"ref": "release", "head_commit": {"id": "abc123"}}"#;

    let (status, first) = deliver(
        &cluster,
        "on-push",
        body,
        Some(sign(body.as_bytes(), SECRET)),
        Some("d-1"),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["duplicate"], false);
    let run = first["run"].as_str().unwrap().to_string();
    let view = cluster.wait(&run, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    assert_eq!(view.run.submitted_by.as_deref(), Some("webhook:on-push"));
    let log = client.logs(&run, "deploy", None).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log),
        "deploying release at abc123\n"
    );

    // The same delivery again: its run, nothing new.
    let (status, again) = deliver(
        &cluster,
        "on-push",
        body,
        Some(sign(body.as_bytes(), SECRET)),
        Some("d-1"),
    )
    .await;
    assert_eq!(
        (status, again["run"].as_str(), again["duplicate"].as_bool()),
        (200, Some(run.as_str()), Some(true))
    );

    // Refusals.
    let (status, said) = deliver(
        &cluster,
        "on-push",
        body,
        Some(sign(body.as_bytes(), "another secret")),
        Some("d-2"),
    )
    .await;
    assert_eq!(status, 401, "{said}");
    let (status, _) = deliver(&cluster, "on-push", body, None, Some("d-3")).await;
    assert_eq!(status, 401);
    let tampered = body.replace("release", "main");
    let (status, _) = deliver(
        &cluster,
        "on-push",
        &tampered,
        Some(sign(body.as_bytes(), SECRET)),
        Some("d-4"),
    )
    .await;
    assert_eq!(status, 401, "a body changed after signing");
    let thin = r#"{"ref": "release"}"#;
    let (status, said) = deliver(
        &cluster,
        "on-push",
        thin,
        Some(sign(thin.as_bytes(), SECRET)),
        Some("d-5"),
    )
    .await;
    assert_eq!(status, 422, "{said}");
    assert!(
        said["error"]
            .as_str()
            .unwrap()
            .contains("the payload has no `payload.head_commit.id`"),
        "{said}"
    );
    let (status, said) = deliver(
        &cluster,
        "on-push",
        body,
        Some(sign(body.as_bytes(), SECRET)),
        None,
    )
    .await;
    assert_eq!(status, 422, "{said}");
    assert!(
        said["error"].as_str().unwrap().contains("X-Weft-Delivery"),
        "{said}"
    );
    let (status, _) = deliver(
        &cluster,
        "no-such-hook",
        body,
        Some(sign(body.as_bytes(), SECRET)),
        Some("d-6"),
    )
    .await;
    assert_eq!(status, 404);
    let runs = client.runs(100).await.unwrap();
    assert_eq!(
        runs.iter().filter(|r| r.workflow == "deploy").count(),
        1,
        "{runs:?}"
    );

    // A webhook name belongs to one saved workflow.
    let other = workflow.replace("name = \"deploy\"", "name = \"other\"");
    let refused = client
        .save_workflow(&other, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("webhook `on-push` is saved workflow deploy's already"),
        "{refused}"
    );
}
