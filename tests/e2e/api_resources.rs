//! The API's resources beyond runs' basics: live events and logs, paging,
//! metrics, the OpenAPI document (and fuzzing it), saved workflows.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cluster::Cluster;

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
    // A stream of another run's changes stays quiet.
    let mut other = reqwest::Client::new()
        .get(format!("{}/api/events?run=someone-else", cluster.url))
        .bearer_auth(&cluster.admin_token)
        .send()
        .await
        .unwrap();
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
    if let Ok(chunk) =
        tokio::time::timeout(std::time::Duration::from_millis(300), other.chunk()).await
    {
        let chunk = chunk.unwrap().unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&chunk).contains(&id),
            "a filtered stream got {chunk:?}"
        );
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
    // As a person types it: any case.
    let (hello, _) = client
        .runs_page(None, Some("HeLLo"), 10, None)
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
    let (status, body) = cluster
        .call(
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
    // Paged: from a byte offset, saying where the body begins.
    let page = reqwest::Client::new()
        .get(format!("{}/api/runs/{id}/logs/talk?offset=7", cluster.url))
        .bearer_auth(&cluster.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["x-weft-log-start"], "7");
    assert_eq!(page.headers()["x-weft-attempt-finished"], "true");
    assert_eq!(page.text().await.unwrap(), "line 2\nline 3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let cluster = Cluster::start(0);
    assert_eq!(
        cluster
            .call(None, Method::GET, "/api/openapi.json", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, doc) = cluster
        .call(
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
    let (_, doc) = cluster
        .call(
            Some(&cluster.admin_token),
            Method::GET,
            "/api/openapi.json",
            None,
        )
        .await;
    let schema = cluster.dir.path().join("openapi.json");
    std::fs::write(&schema, doc.to_string()).unwrap();
    let out = tokio::process::Command::new("st")
        // It keeps a cache in its working directory: not in the repository.
        .current_dir(cluster.dir.path())
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
    let (status, v1) = cluster
        .call(
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
    let (_, v2) = cluster
        .call(
            Some(&admin),
            Method::POST,
            "/api/workflows",
            Some(json!({"workflow": changed})),
        )
        .await;
    assert_eq!(v2["version"], 2);
    let (status, bad) = cluster
        .call(
            Some(&admin),
            Method::POST,
            "/api/workflows",
            Some(json!({"workflow": "[workflow]\nname = 'x'\n"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    let (_, list) = cluster
        .call(Some(&admin), Method::GET, "/api/workflows", None)
        .await;
    assert_eq!(
        list,
        json!([{"name": "hello", "version": 2, "saved_at": v2["saved_at"]}])
    );
    let (_, first) = cluster
        .call(
            Some(&admin),
            Method::GET,
            "/api/workflows/hello?version=1",
            None,
        )
        .await;
    assert_eq!(first["source"], hello.as_str());
    assert_eq!(
        cluster
            .call(
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
    let (status, run) = cluster
        .call(
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
