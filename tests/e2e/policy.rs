//! The server's `[policy]`: what each role may run, checked on the
//! workflow as submitted (403, with line and column), in the editor's
//! check, and again on every job as rendered (a parameter cannot carry a
//! refused image past the first check); containers of a role that may not
//! choose their user run as nobody.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::cluster::{step, Cluster, Setup};

const IMAGE: &str = "weft-test/busybox:1";

const POLICY: &str = r#"
[policy]
images = ["weft-test/*"]
[policy.ceilings]
memory = "1GiB"
[policy.roles.operator]
kinds = ["container", "wasm"]
[policy.roles.admin]
container-user = true
"#;

async fn token(cluster: &Cluster, role: &str) -> String {
    let (status, body) = cluster
        .call(
            Some(&cluster.admin_token),
            Method::POST,
            "/api/tokens",
            Some(json!({"name": role, "role": role})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

async fn submit(
    cluster: &Cluster,
    token: &str,
    workflow: &str,
    params: Value,
) -> (StatusCode, Value) {
    cluster
        .call(
            Some(token),
            Method::POST,
            "/api/runs",
            Some(json!({"workflow": workflow, "file": "w.toml", "params": params})),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_refuses_at_submit_in_the_editor_and_at_dispatch() {
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        tables: POLICY,
        ..Setup::default()
    });
    let operator = token(&cluster, "operator").await;
    // A shell step, from a role that may not run one: 403, at its line.
    let shell = "[workflow]\nname = \"w\"\n\n[steps.peek]\nrun = \"cat /etc/shadow\"\n";
    let (status, refused) = submit(&cluster, &operator, shell, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("the operator role may not run `run` steps")
            && message.contains("w.toml:4:"),
        "{message}"
    );
    assert_eq!(refused["details"][0]["line"], 4, "{refused}");
    // An image outside the list, and a size over the ceiling.
    let image = "[workflow]\nname = \"w\"\n[steps.c]\nresources = { memory = \"2GiB\" }\ncontainer = { image = \"python:3.12\", command = \"true\" }\n";
    let (status, refused) = submit(&cluster, &operator, image, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("image `python:3.12` is not one this server allows"),
        "{message}"
    );
    assert!(
        message.contains("2048 MiB of memory is over the ceiling of 1024 MiB"),
        "{message}"
    );
    // The editor's check says the same to the operator as it types.
    let (status, checked) = cluster
        .call(
            Some(&operator),
            Method::POST,
            "/api/check",
            Some(json!({"workflow": shell})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(checked["ok"], false, "{checked}");
    assert!(checked["diagnostics"][0]["message"]
        .as_str()
        .unwrap()
        .contains("may not run `run` steps"));
    // An admin may run the shell step.
    let (status, run) = submit(
        &cluster,
        &cluster.admin_token,
        shell.replace("cat /etc/shadow", "true").as_str(),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");

    // A templated image passes the review and is refused as rendered,
    // before any container; an allowed one runs as nobody.
    let templated = format!(
        "[workflow]\nname = \"w\"\n[params]\nimage = \"{IMAGE}\"\n\
         [steps.who]\ncontainer = {{ image = \"{{{{ params.image }}}}\", command = [\"sh\", \"-c\", \"printf '{{\\\"uid\\\": %s}}' $(id -u) > $WEFT_OUTPUTS\"] }}\n"
    );
    let (status, run) = submit(
        &cluster,
        &operator,
        &templated,
        json!({"image": "evil/miner:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let view = cluster
        .wait(
            run["id"].as_str().unwrap(),
            std::time::Duration::from_secs(60),
        )
        .await;
    let who = step(&view, "who");
    assert_eq!(who.status, "failed", "{view:?}");
    let attempt = &who.tasks[0].attempts[0];
    assert!(
        attempt
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("policy: image `evil/miner:1` is not one this server allows"),
        "{attempt:?}"
    );
    assert_eq!(
        attempt.error_kind,
        Some(weft_core::run::FailureKind::Policy)
    );
    let (status, run) = submit(&cluster, &operator, &templated, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let view = cluster
        .wait(
            run["id"].as_str().unwrap(),
            std::time::Duration::from_secs(60),
        )
        .await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    assert_eq!(step(&view, "who").outputs, Some(json!({"uid": 65534})));
}
