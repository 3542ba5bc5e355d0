//! Admission plugins: the server asks `gpu-quota` (plugins/gpu-quota) about
//! every run. It denies an operator's GPU step outside the approved images
//! and more GPUs than the run may use (403, at the step's line), patches a
//! step that asks too much memory (the run records the decision; the step
//! sees the patch), allows an admin's run; it fails closed while the plugin
//! is missing. The decision shows in `weft show` and the dashboard; the
//! editor shows a policy refusal as you type, with Run disabled.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cluster::{step, Cluster, Setup};
use crate::dashboard::open_as;
use crate::support::{plugin_wasm, weft_bin};

const ADMISSION: &str = r#"
[policy]
[policy.roles.operator]
kinds = ["run", "container"]

[[admission]]
plugin = "gpu-quota@^1"
config = { roles = ["operator"], images = ["weft-test/*"], max-gpus-per-run = 2, max-memory-mib = 64 }
"#;

const GPU_STEPS: &str = r#"[workflow]
name = "train"

[steps.prep]
run = "true"

[steps.fit]
needs = ["prep"]
resources = { gpus = 2 }
container = { image = "python:3.12", command = "true" }

[steps.eval]
resources = { gpus = 1 }
container = { image = "weft-test/busybox:1", command = "true" }
"#;

const BIG_MEMORY: &str = r#"[workflow]
name = "etl"

[steps.load]
resources = { memory = "512MiB" }
run = 'echo "note: $ADMISSION_NOTE"'
"#;

async fn submit(cluster: &Cluster, token: &str, workflow: &str) -> (StatusCode, serde_json::Value) {
    cluster
        .call(
            Some(token),
            Method::POST,
            "/api/runs",
            Some(json!({"workflow": workflow, "file": "w.toml"})),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_plugin_denies_patches_and_allows_and_says_so() {
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        tables: ADMISSION,
        ..Setup::default()
    });
    let operator = cluster.mint("ops", "operator").await["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Not pushed yet: every submit is refused, naming the plugin.
    let (status, refused) = submit(&cluster, &operator, BIG_MEMORY).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("admission plugin `gpu-quota@^1` is not in the plugin registry"),
        "{refused}"
    );
    cluster
        .client()
        .push_plugin("gpu-quota", "1.0.0", plugin_wasm("gpu-quota"))
        .await
        .expect("push gpu-quota");

    // Denied: an image outside the list (at the step's line) and three GPUs.
    let (status, refused) = submit(&cluster, &operator, GPU_STEPS).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("denied by an admission plugin"),
        "{message}"
    );
    assert!(message.contains("`python:3.12` is not one"), "{message}");
    assert!(
        message.contains("the run asks for 3 GPUs; the operator role may use 2 per run"),
        "{message}"
    );
    assert_eq!(refused["details"][0]["line"], 7, "{refused}");
    // The editor says the same as you type.
    let (_, checked) = cluster
        .call(
            Some(&operator),
            Method::POST,
            "/api/check",
            Some(json!({"workflow": GPU_STEPS})),
        )
        .await;
    assert_eq!(checked["ok"], false, "{checked}");

    // Patched: the memory lowered, the step told why, the decision kept.
    let view = cluster.run_as(&operator, BIG_MEMORY, json!({})).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let decisions = serde_json::to_value(&view.admission).unwrap();
    assert_eq!(decisions[0]["plugin"], "gpu-quota@1.0.0", "{decisions}");
    assert_eq!(decisions[0]["verdict"], "patch", "{decisions}");
    assert_eq!(decisions[0]["patches"][0]["resources"]["memory"], 64 << 20);
    let log = cluster
        .client()
        .logs(&view.run.id, "load", None)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log),
        "note: memory lowered from 512 MiB to 64 MiB\n"
    );
    assert!(step(&view, "load").status == "succeeded");
    // A retry carries the decision and its patches.
    let (status, retried) = cluster
        .call(
            Some(&operator),
            Method::POST,
            &format!("/api/runs/{}/retry", view.run.id),
            Some(json!({"from": "load"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    let again = cluster
        .wait(retried["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(
        serde_json::to_value(&again.admission).unwrap()[0]["verdict"],
        "patch"
    );
    let log = cluster
        .client()
        .logs(&again.run.id, "load", None)
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("memory lowered"),
        "the retry's step is patched too"
    );
    // ... in `weft show` ...
    let out = std::process::Command::new(weft_bin())
        .args(["--server", &cluster.url, "show", &view.run.id])
        .env("WEFT_TOKEN", &operator)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("admission gpu-quota@1.0.0 patch")
            && shown.contains("patched load")
            && shown.contains("memory lowered"),
        "{shown}"
    );
    // ... and on the run's page.
    let b = open_as(&cluster, &operator, &format!("runs/{}", view.run.id)).await;
    let said = b
        .wait_for(
            "the admission decision",
            "return document.querySelector('details.admission')?.textContent",
            Duration::from_secs(30),
        )
        .await;
    assert!(
        said.as_str().unwrap().contains("gpu-quota@1.0.0 patch"),
        "{said}"
    );
    drop(b);

    // An admin's run is not the plugin's to limit: allowed, and recorded.
    let view = cluster
        .run_as(&cluster.admin_token, BIG_MEMORY, json!({}))
        .await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let decisions = serde_json::to_value(&view.admission).unwrap();
    assert_eq!(decisions[0]["verdict"], "allow", "{decisions}");
}

/// The policy's refusal reaches the dashboard's editor as you type: the
/// rule at its line, and Run disabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editor_shows_a_policy_refusal_and_disables_run() {
    let cluster = Cluster::set_up(Setup {
        workers: 0,
        tables: "[policy]\n[policy.roles.operator]\nkinds = [\"container\"]\n",
        ..Setup::default()
    });
    let operator = cluster.mint("ops", "operator").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let b = open_as(&cluster, &operator, "editor").await;
    b.wait_for(
        "the sample checked",
        "return document.querySelector('.check-state')?.textContent !== 'checking…'",
        Duration::from_secs(30),
    )
    .await;
    b.eval(
        "document.querySelector('textarea.source').value = ''",
        json!([]),
    )
    .await;
    b.type_into(
        "textarea.source",
        "[workflow]\nname = \"w\"\n\n[steps.peek]\nrun = \"cat /etc/shadow\"\n",
    )
    .await;
    // The refusal of what was typed, not the sample's (which has a `run`
    // step too, and shows until the typed text is checked).
    let problem = b
        .wait_for(
            "the policy's refusal",
            "const text = document.querySelector('textarea.source').value;\n\
             const line = text.split('\\n').findIndex((l) => l.startsWith('[steps.peek]')) + 1;\n\
             return line > 0 && [...document.querySelectorAll('ol.diagnostics li')].map((li) => li.textContent).find((t) => t.startsWith(`${line}:`) && t.includes('may not run'))",
            Duration::from_secs(30),
        )
        .await;
    // At the step's line of what the editor holds.
    let text = b
        .eval(
            "return document.querySelector('textarea.source').value",
            json!([]),
        )
        .await;
    let line = text
        .as_str()
        .unwrap()
        .lines()
        .position(|l| l.starts_with("[steps.peek]"))
        .unwrap()
        + 1;
    assert!(
        problem.as_str().unwrap().starts_with(&format!("{line}:")),
        "{problem} in {text}"
    );
    assert_eq!(
        b.eval(
            "return document.querySelector('button.primary').disabled",
            json!([])
        )
        .await,
        json!(true)
    );
}
