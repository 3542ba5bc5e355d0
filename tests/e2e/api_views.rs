//! The routes the dashboard reads: a run's states, one step, its laid-out
//! graph, and the check of a workflow text.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_step_and_graph_describe_a_run() {
    let cluster = Cluster::start(1);
    let id = cluster.submit("workflows/diamond.toml", &[]).await;
    cluster.wait(&id, Duration::from_secs(60)).await;
    let token = Some(cluster.admin_token.as_str());

    let (status, states) = cluster
        .call(token, Method::GET, &format!("/api/runs/{id}/states"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(states["status"], "succeeded");
    assert_eq!(states["submitted_by"], "first admin");
    let steps = states["steps"].as_array().unwrap();
    assert!(steps.len() >= 4, "{states}");
    for s in steps {
        assert_eq!(s["status"], "succeeded", "{s}");
        assert!(s.get("tasks").is_none(), "states carry no tasks: {s}");
        assert_eq!(s["counts"]["succeeded"], 1, "{s}");
    }
    // A finished run's views are kept once built: asked again, the same.
    for path in [format!("/api/runs/{id}/states"), format!("/api/runs/{id}")] {
        let (_, a) = cluster.call(token, Method::GET, &path, None).await;
        let (status, b) = cluster.call(token, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(a, b, "{path}");
        assert_eq!(
            b["run"]["id"].as_str().or(b["id"].as_str()),
            Some(id.as_str()),
            "{b}"
        );
    }
    let (status, _) = cluster
        .call(None, Method::GET, &format!("/api/runs/{id}"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "kept views still need a token"
    );

    let first = steps[0]["id"].as_str().unwrap();
    let (status, step) = cluster
        .call(
            token,
            Method::GET,
            &format!("/api/runs/{id}/steps/{first}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(step["id"], first);
    assert_eq!(step["tasks"][0]["attempts"][0]["number"], 1);
    let (status, missing) = cluster
        .call(
            token,
            Method::GET,
            &format!("/api/runs/{id}/steps/nope"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing["error"].as_str().unwrap().contains("no step nope"));

    let (status, graph) = cluster
        .call(token, Method::GET, &format!("/api/runs/{id}/graph"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let nodes = graph["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), steps.len());
    // Every edge runs left to right, from the right side of one box to the
    // left side of the next.
    let width = graph["node_width"].as_f64().unwrap();
    for e in graph["edges"].as_array().unwrap() {
        let at = |id: &serde_json::Value| nodes.iter().find(|n| n["id"] == *id).unwrap();
        let (from, to) = (at(&e["from"]), at(&e["to"]));
        assert!(from["layer"].as_u64() < to["layer"].as_u64(), "{e}");
        let points = e["points"].as_array().unwrap();
        assert_eq!(
            points[0][0].as_f64().unwrap(),
            from["x"].as_f64().unwrap() + width
        );
        assert_eq!(points.last().unwrap()[0], to["x"]);
    }
    assert!(nodes.iter().all(|n| n["status"] == "succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_problems_with_places_and_a_graph_when_clean() {
    let cluster = Cluster::start(0);
    let token = Some(cluster.admin_token.as_str());
    let bad = "[workflow]\nname = \"x\"\n[steps.a]\nneeds = [\"ghost\"]\nrun = \"true\"\n";
    let (status, report) = cluster
        .call(
            token,
            Method::POST,
            "/api/check",
            Some(json!({"workflow": bad, "file": "x.toml"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["ok"], false);
    assert_eq!(report["diagnostics"][0]["line"], 4, "{report}");
    assert!(
        report["rendered"].as_str().unwrap().contains("x.toml:4:"),
        "{report}"
    );
    assert!(report["graph"].is_null());

    let good =
        std::fs::read_to_string(crate::support::repo().join("workflows/diamond.toml")).unwrap();
    let (_, report) = cluster
        .call(
            token,
            Method::POST,
            "/api/check",
            Some(json!({"workflow": good})),
        )
        .await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["graph"]["nodes"].as_array().unwrap().len() >= 4);
    assert!(report["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"] == "pending"));

    // An unknown plugin is found as `weft check --server` finds it, at
    // its line, for the editor's "no problems" to be true.
    let ghost = "[workflow]\nname = \"x\"\n[steps.a]\nrun = \"true\"\nhooks = { post = [{ plugin = \"no-such-plugin@^1\" }] }\n";
    let (_, report) = cluster
        .call(
            token,
            Method::POST,
            "/api/check",
            Some(json!({"workflow": ghost})),
        )
        .await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["diagnostics"][0]["line"], 5, "{report}");
    assert!(
        report["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-plugin"),
        "{report}"
    );

    // No token, no check.
    let (status, _) = cluster
        .call(
            None,
            Method::POST,
            "/api/check",
            Some(json!({"workflow": good})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_show_finds_a_run_by_prefix_older_than_the_newest_thousand() {
    use weft_core::ports::{RunIndex, RunRecord};
    use weft_core::run::RunStatus;

    let cluster = Cluster::start(0);
    let store = cluster.store().await;
    // 1,100 finished runs, the oldest first; ids share their first part.
    let record = |i: u64| RunRecord {
        workflow: "hello".into(),
        file: "hello.toml".into(),
        source: "[workflow]\nname = \"hello\"\n[steps.a]\nrun = \"true\"\n".into(),
        status: RunStatus::Succeeded,
        finished_at: Some(1_000_000 + i),
        ..weft_testkit::run_record(&format!("old{i:05}x"), 1_000_000 + i)
    };
    for i in 0..1_100 {
        store.create_run(&record(i)).await.unwrap();
    }
    let weft = |args: &[&str]| {
        std::process::Command::new(crate::support::weft_bin())
            .args(["--server", &cluster.url, "--token", &cluster.admin_token])
            .args(args)
            .output()
            .unwrap()
    };
    // The oldest, by a prefix no newer run has.
    let out = weft(&["show", "old00000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("old00000x"));
    // A prefix of many runs is refused as such, not taken as the newest.
    let out = weft(&["show", "old0"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("matches more than one run"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the API says the same to anyone with a prefix.
    let token = Some(cluster.admin_token.as_str());
    let (status, runs) = cluster
        .call(token, Method::GET, "/api/runs?prefix=old0000&limit=5", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "old00009x",
            "old00008x",
            "old00007x",
            "old00006x",
            "old00005x"
        ]
    );
    // The server resolves a prefix itself (the CLI sends it as given): the
    // run's view and its states name the whole id; a prefix of many, or of
    // none, is a JSON error saying so.
    for path in ["/api/runs/old01099", "/api/runs/old01099/states"] {
        let (status, view) = cluster.call(token, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {view}");
        let id = view["run"]["id"].as_str().or(view["id"].as_str());
        assert_eq!(id, Some("old01099x"), "{path}: {view}");
    }
    let (status, error) = cluster
        .call(token, Method::GET, "/api/runs/old0", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("matches more than one run"),
        "{error}"
    );
    let (status, error) = cluster
        .call(token, Method::POST, "/api/runs/nosuchrun/cancel", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(error["error"]
        .as_str()
        .unwrap()
        .contains("no run `nosuchrun`"));
}
