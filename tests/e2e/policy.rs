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
    let operator = cluster.mint("operator", "operator").await["token"]
        .as_str()
        .unwrap()
        .to_string();
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
    let view = cluster
        .run_as(
            &cluster.admin_token,
            shell.replace("cat /etc/shadow", "true").as_str(),
            json!({}),
        )
        .await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");

    // A templated image passes the review and is refused as rendered,
    // before any container; an allowed one runs as nobody.
    let templated = format!(
        "[workflow]\nname = \"w\"\n[params]\nimage = \"{IMAGE}\"\n\
         [steps.who]\ncontainer = {{ image = \"{{{{ params.image }}}}\", command = [\"sh\", \"-c\", \"printf '{{\\\"uid\\\": %s}}' $(id -u) > $WEFT_OUTPUTS\"] }}\n"
    );
    let view = cluster
        .run_as(&operator, &templated, json!({"image": "evil/miner:1"}))
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
    let view = cluster.run_as(&operator, &templated, json!({})).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    assert_eq!(step(&view, "who").outputs, Some(json!({"uid": 65534})));
}

/// The hostile matrix, as an operator: every way of reaching the host is
/// refused, with line and column where the value is written, and where it
/// is rendered or resolved when it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_matrix_is_refused_at_submit_at_dispatch_and_on_the_worker() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    // A link, inside the allowed directory, to the Docker socket.
    std::os::unix::fs::symlink("/var/run/docker.sock", data.path().join("sock")).unwrap();
    let tables = POLICY.replace(
        "[policy]\nimages",
        &format!("[policy]\nmounts = [\"{data_dir}\"]\nimages"),
    );
    let worker = format!("concurrency = 2\nallowed-mounts = [\"{data_dir}\"]");
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        tables: &tables,
        worker: &worker,
        ..Setup::default()
    });
    let operator = cluster.mint("operator", "operator").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let container = |extra: &str| {
        format!("[workflow]\nname = \"w\"\n[params]\nsrc = \"{data_dir}\"\n\n[steps.c.container]\nimage = \"{IMAGE}\"\ncommand = \"ls /x\"\n{extra}\n")
    };
    // Written in the file: refused before anything runs (422 by `weft
    // check`'s rules, 403 by the policy's), at line 7 where it is written
    // or at the step.
    for (extra, says) in [
        ("mounts = [\"/:/x\"]", "mounting `/` is refused"),
        ("mounts = [\"/etc:/x:ro\"]", "host path `/etc` is refused"),
        (
            "mounts = [\"/var/run:/x\"]",
            "mounting `/var/run` is refused",
        ),
        (
            "mounts = [\"/run/docker.sock:/x\"]",
            "mounting `/run/docker.sock` is refused",
        ),
        (
            "mounts = [\"/var/run/../run/docker.sock:/x\"]",
            "is refused",
        ),
        ("privileged = true", "`container.privileged` is refused"),
        ("devices = [\"/dev/sda\"]", "`container.devices` is refused"),
    ] {
        let (status, refused) = submit(&cluster, &operator, &container(extra), json!({})).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{extra}: {status} {refused}"
        );
        let message = refused["error"].as_str().unwrap();
        assert!(message.contains(says), "{extra}: {message}");
        assert!(
            refused["details"][0]["line"].as_u64().unwrap() >= 5,
            "{extra}: {refused}"
        );
    }
    // Rendered or resolved: accepted at submit, refused before any container.
    for (extra, params, says) in [
        (
            "mounts = [\"{{ params.src }}:/x\"]",
            json!({"src": "/"}),
            "is refused",
        ),
        (
            "mounts = [\"{{ params.src }}:/x:ro\"]",
            json!({"src": "/etc"}),
            "policy: mounting host path `/etc` is refused",
        ),
        (
            "mounts = [\"{{ params.src }}/sock:/x:ro\"]",
            json!({}),
            "leads to `/run/docker.sock`",
        ),
    ] {
        let view = cluster
            .run_as(&operator, &container(extra), params.clone())
            .await;
        let c = step(&view, "c");
        assert_eq!(c.status, "failed", "{extra} {params}");
        let attempt = &c.tasks[0].attempts[0];
        assert!(
            attempt.error.as_deref().unwrap_or_default().contains(says),
            "{extra} {params}: {attempt:?}"
        );
        assert_eq!(
            attempt.error_kind,
            Some(weft_core::run::FailureKind::Policy)
        );
    }
}
