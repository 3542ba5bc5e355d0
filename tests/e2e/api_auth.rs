//! The API's tokens and roles, route by route, and its limits.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cluster::Cluster;

async fn call(
    cluster: &Cluster,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", cluster.url));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

const WORKFLOW: &str = "[workflow]\nname = 'auth'\n[steps.a]\nrun = 'sleep 30'\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_checks_the_token_and_its_role() {
    let cluster = Cluster::start(0);
    let admin = cluster.admin_token.clone();
    assert!(
        admin.starts_with("weft_"),
        "serve printed an admin token on first start"
    );
    let mint = |role: &'static str| {
        let (cluster, admin) = (&cluster, admin.clone());
        async move {
            let (status, body) = call(
                cluster,
                Some(&admin),
                Method::POST,
                "/api/tokens",
                Some(json!({"name": role, "role": role})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["token"].as_str().unwrap().to_string()
        }
    };
    let (viewer, operator) = (mint("viewer").await, mint("operator").await);
    let forged = format!("{}0", &admin[..admin.len() - 1]);

    // Without a (valid) token, nothing but /healthz answers.
    let (status, _) = call(&cluster, None, Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    for token in [None, Some(forged.as_str()), Some("weft_nonsense")] {
        for (method, path) in [
            (Method::GET, "/api/runs"),
            (Method::POST, "/api/runs"),
            (Method::GET, "/api/workers"),
            (Method::GET, "/api/tokens"),
        ] {
            let (status, body) = call(
                &cluster,
                token,
                method.clone(),
                path,
                Some(json!({"workflow": WORKFLOW})),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}: {body}"
            );
            assert!(
                body["error"].as_str().is_some(),
                "errors are JSON with a message"
            );
        }
    }

    // Operators submit and cancel; viewers only read.
    let (status, body) = call(
        &cluster,
        Some(&viewer),
        Method::POST,
        "/api/runs",
        Some(json!({"workflow": WORKFLOW})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = call(
        &cluster,
        Some(&operator),
        Method::POST,
        "/api/runs",
        Some(json!({"workflow": WORKFLOW})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    for path in [
        "/api/runs".to_string(),
        format!("/api/runs/{id}"),
        "/api/workers".to_string(),
    ] {
        let (status, body) = call(&cluster, Some(&viewer), Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "viewer GET {path}: {body}");
    }
    let cancel = format!("/api/runs/{id}/cancel");
    assert_eq!(
        call(&cluster, Some(&viewer), Method::POST, &cancel, None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&cluster, Some(&operator), Method::POST, &cancel, None)
            .await
            .0,
        StatusCode::ACCEPTED
    );

    // Only admins manage tokens; a listing never shows secrets.
    for token in [&viewer, &operator] {
        assert_eq!(
            call(&cluster, Some(token), Method::GET, "/api/tokens", None)
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call(
                &cluster,
                Some(token),
                Method::POST,
                "/api/tokens",
                Some(json!({"name": "x", "role": "admin"}))
            )
            .await
            .0,
            StatusCode::FORBIDDEN
        );
    }
    let (status, list) = call(&cluster, Some(&admin), Method::GET, "/api/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(
        !list.to_string().contains(&viewer[20..]),
        "a secret leaked into the listing"
    );
    let (status, body) = call(
        &cluster,
        Some(&admin),
        Method::POST,
        "/api/tokens",
        Some(json!({"name": "x", "role": "root"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // A revoked token stops working at once.
    let viewer_id = viewer.split('_').nth(1).unwrap();
    assert_eq!(
        call(
            &cluster,
            Some(&admin),
            Method::DELETE,
            &format!("/api/tokens/{viewer_id}"),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&cluster, Some(&viewer), Method::GET, "/api/runs", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(
            &cluster,
            Some(&admin),
            Method::DELETE,
            &format!("/api/tokens/{viewer_id}"),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_bodies_get_json_errors() {
    let cluster = Cluster::start(0);
    let admin = cluster.admin_token.clone();
    let huge = json!({"workflow": "#".repeat(41 << 20)});
    let (status, body) = call(
        &cluster,
        Some(&admin),
        Method::POST,
        "/api/runs",
        Some(huge),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let response = reqwest::Client::new()
        .post(format!("{}/api/runs", cluster.url))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("bad request body"),
        "{body}"
    );
    let (status, body) = call(
        &cluster,
        Some(&admin),
        Method::POST,
        "/api/runs",
        Some(json!({"workflow": "[workflow]\nname = 3\n"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let name = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["message"].as_str().unwrap().contains("must be a string"))
        .expect("the type error");
    assert_eq!(
        (name["line"].as_u64(), name["column"].as_u64()),
        (Some(2), Some(8)),
        "diagnostics carry line and column: {body}"
    );
}

#[test]
fn weft_token_create_list_and_revoke_work_from_the_cli() {
    let cluster = Cluster::start(0);
    let weft = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::weft_bin())
            .args(["--server", &cluster.url, "--token", &cluster.admin_token])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "weft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let created = weft(&["token", "create", "--name", "ci", "--role", "operator"]);
    let token = created.lines().last().unwrap().trim().to_string();
    assert!(token.starts_with("weft_"), "{created}");
    let id = token.split('_').nth(1).unwrap().to_string();
    assert!(weft(&["token", "list"]).contains(&id));
    weft(&["token", "revoke", &id]);
    assert!(!weft(&["token", "list"]).contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_shows_a_run_change_by_change() {
    let cluster = Cluster::start(1);
    let mut stream = reqwest::Client::new()
        .get(format!("{}/api/events", cluster.url))
        .bearer_auth(&cluster.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let id = cluster.submit("workflows/hello.toml", &[]).await;
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !seen.contains("\"status\":\"succeeded\"") {
        assert!(
            std::time::Instant::now() < deadline,
            "no finish seen; got:\n{seen}"
        );
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
            .await
            .expect("a change within 10s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: run"), "{seen}");
    assert!(seen.contains(&id));
    for kind in ["\"started\"", "\"task-started\"", "\"task-finished\""] {
        assert!(seen.contains(kind), "no {kind} event in:\n{seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_filter_by_status_and_workflow_and_page_with_a_cursor() {
    let cluster = Cluster::start(1);
    let mut ids = Vec::new();
    for file in [
        "workflows/hello.toml",
        "workflows/failure.toml",
        "workflows/hello.toml",
    ] {
        let id = cluster.submit(file, &[]).await;
        cluster.wait(&id, std::time::Duration::from_secs(60)).await;
        ids.push(id);
    }
    let client = cluster.client();
    let ids_of =
        |runs: Vec<weft_api::views::RunSummary>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let (failed, _) = client
        .runs_page(Some("failed"), None, 10, None)
        .await
        .unwrap();
    assert_eq!(ids_of(failed), vec![ids[1].clone()]);
    let (hello, _) = client
        .runs_page(None, Some("hello"), 10, None)
        .await
        .unwrap();
    assert_eq!(ids_of(hello), vec![ids[2].clone(), ids[0].clone()]);
    let (first, next) = client.runs_page(None, None, 2, None).await.unwrap();
    assert_eq!(ids_of(first), vec![ids[2].clone(), ids[1].clone()]);
    let (second, after) = client
        .runs_page(None, None, 2, next.as_deref())
        .await
        .unwrap();
    assert_eq!(ids_of(second), vec![ids[0].clone()]);
    assert_eq!(after, None, "the last page says so");
    let (status, body) = call(
        &cluster,
        Some(&cluster.admin_token),
        Method::GET,
        "/api/runs?status=sideways",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metrics_count_runs_attempts_queues_and_slots() {
    let cluster = Cluster::start(1);
    // The worker shows up before we count its slots.
    let start = std::time::Instant::now();
    while cluster.client().workers().await.unwrap().is_empty() {
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for file in ["workflows/hello.toml", "workflows/failure.toml"] {
        let id = cluster.submit(file, &[]).await;
        cluster.wait(&id, std::time::Duration::from_secs(60)).await;
    }
    // Open to scrapers: no token.
    let response = reqwest::get(format!("{}/metrics", cluster.url))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    for line in [
        "weft_runs_finished_total{status=\"succeeded\"} 1",
        "weft_runs_finished_total{status=\"failed\"} 1",
        "weft_attempts_finished_total{outcome=\"succeeded\"} 4",
        "weft_attempts_finished_total{outcome=\"failed\"} 1",
        "weft_attempt_duration_seconds_count 5",
        "weft_runs_active 0",
        "weft_queue_depth{pool=\"default\"} 0",
        "weft_workers 1",
        "weft_worker_slots 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_log_streams_live_over_sse_until_it_ends() {
    let cluster = Cluster::start(1);
    let wf = cluster.dir.path().join("talk.toml");
    std::fs::write(&wf, "[workflow]\nname = 'talk'\n[steps.talk]\nrun = 'for i in 1 2 3; do echo line $i; sleep 0.3; done'\n").unwrap();
    let id = cluster.submit(wf.to_str().unwrap(), &[]).await;
    let mut stream = reqwest::Client::new()
        .get(format!("{}/api/runs/{id}/logs/talk/stream", cluster.url))
        .bearer_auth(&cluster.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut seen = String::new();
    while !seen.contains("event: end") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(15), stream.chunk())
            .await
            .expect("log within 15s")
            .unwrap();
        let Some(chunk) = chunk else { break };
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    for line in ["data: line 1", "data: line 2", "data: line 3", "event: end"] {
        assert!(seen.contains(line), "no `{line}` in:\n{seen}");
    }
    assert!(
        seen.matches("event: log").count() >= 2,
        "the log arrived in pieces, live:\n{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let cluster = Cluster::start(0);
    assert_eq!(
        call(&cluster, None, Method::GET, "/api/openapi.json", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, doc) = call(
        &cluster,
        Some(&cluster.admin_token),
        Method::GET,
        "/api/openapi.json",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/runs",
        "/api/runs/{id}",
        "/api/runs/{id}/cancel",
        "/api/runs/{id}/retry",
        "/api/runs/{id}/logs/{task}",
        "/api/runs/{id}/logs/{task}/stream",
        "/api/workers",
        "/api/events",
        "/api/tokens",
        "/api/tokens/{id}",
        "/api/workflows",
        "/api/workflows/{name}",
        "/api/workflows/{name}/runs",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "the document lacks {path}");
    }
    assert!(paths["/api/runs"].get("post").is_some() && paths["/api/runs"].get("get").is_some());
    for schema in [
        "RunView",
        "RunSummary",
        "StepView",
        "SubmitRequest",
        "TokenView",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "no schema {schema}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let cluster = Cluster::start(0);
    let (_, doc) = call(
        &cluster,
        Some(&cluster.admin_token),
        Method::GET,
        "/api/openapi.json",
        None,
    )
    .await;
    let schema = cluster.dir.path().join("openapi.json");
    std::fs::write(&schema, doc.to_string()).unwrap();
    let out = tokio::process::Command::new("st")
        .arg("run")
        .arg(&schema)
        .args([
            "--url",
            &cluster.url,
            "-H",
            &format!("Authorization: Bearer {}", cluster.admin_token),
        ])
        .args([
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "20",
            "--seed",
            "20261123",
            "--no-color",
        ])
        .output()
        .await
        .expect("schemathesis (`st`) is installed by scripts/test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found a problem:\n{text}"
    );
    assert!(text.contains("passed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_workflows_keep_versions_and_run_by_name() {
    let cluster = Cluster::start(1);
    let admin = cluster.admin_token.clone();
    let hello =
        std::fs::read_to_string(crate::support::repo().join("workflows/hello.toml")).unwrap();
    let (status, v1) = call(
        &cluster,
        Some(&admin),
        Method::POST,
        "/api/workflows",
        Some(json!({"workflow": hello})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(
        (v1["name"].as_str(), v1["version"].as_u64()),
        (Some("hello"), Some(1))
    );
    let changed = hello.replace("who = \"world\"", "who = \"versions\"");
    let (_, v2) = call(
        &cluster,
        Some(&admin),
        Method::POST,
        "/api/workflows",
        Some(json!({"workflow": changed})),
    )
    .await;
    assert_eq!(v2["version"], 2);
    let (status, bad) = call(
        &cluster,
        Some(&admin),
        Method::POST,
        "/api/workflows",
        Some(json!({"workflow": "[workflow]\nname = 'x'\n"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    let (_, list) = call(&cluster, Some(&admin), Method::GET, "/api/workflows", None).await;
    assert_eq!(
        list,
        json!([{"name": "hello", "version": 2, "saved_at": v2["saved_at"]}])
    );
    let (_, first) = call(
        &cluster,
        Some(&admin),
        Method::GET,
        "/api/workflows/hello?version=1",
        None,
    )
    .await;
    assert_eq!(first["source"], hello.as_str());
    assert_eq!(
        call(
            &cluster,
            Some(&admin),
            Method::GET,
            "/api/workflows/hello?version=9",
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );

    // Run the first version by name; its output says which one ran.
    let (status, run) = call(
        &cluster,
        Some(&admin),
        Method::POST,
        "/api/workflows/hello/runs",
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let view = cluster.wait(&id, std::time::Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "succeeded");
    assert_eq!(view.run.file, "hello@1");
    assert_eq!(
        view.steps[0].outputs,
        Some(json!({"greeting": "hello, world"}))
    );
}
