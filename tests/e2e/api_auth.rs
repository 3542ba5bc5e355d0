//! The API's tokens and roles, route by route, and its limits.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::cluster::Cluster;

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
            let (status, body) = cluster
                .call(
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
    // The admin token with its last character changed (to another one: a
    // token that already ended in `0` made this test fail now and then).
    let last = if admin.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &admin[..admin.len() - 1]);
    assert_ne!(forged, admin);

    // Without a (valid) token, nothing but /healthz answers.
    let (status, _) = cluster.call(None, Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    for token in [None, Some(forged.as_str()), Some("weft_nonsense")] {
        for (method, path) in [
            (Method::GET, "/api/runs"),
            (Method::POST, "/api/runs"),
            (Method::GET, "/api/workers"),
            (Method::GET, "/api/tokens"),
        ] {
            let (status, body) = cluster
                .call(
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
    let (status, body) = cluster
        .call(
            Some(&viewer),
            Method::POST,
            "/api/runs",
            Some(json!({"workflow": WORKFLOW})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = cluster
        .call(
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
        let (status, body) = cluster.call(Some(&viewer), Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "viewer GET {path}: {body}");
    }
    let cancel = format!("/api/runs/{id}/cancel");
    assert_eq!(
        cluster
            .call(Some(&viewer), Method::POST, &cancel, None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        cluster
            .call(Some(&operator), Method::POST, &cancel, None)
            .await
            .0,
        StatusCode::ACCEPTED
    );

    // Only admins manage tokens; a listing never shows secrets.
    for token in [&viewer, &operator] {
        assert_eq!(
            cluster
                .call(Some(token), Method::GET, "/api/tokens", None)
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            cluster
                .call(
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
    let (status, list) = cluster
        .call(Some(&admin), Method::GET, "/api/tokens", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(
        !list.to_string().contains(&viewer[20..]),
        "a secret leaked into the listing"
    );
    let (status, body) = cluster
        .call(
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
        cluster
            .call(
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
        cluster
            .call(Some(&viewer), Method::GET, "/api/runs", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        cluster
            .call(
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
    let (status, body) = cluster
        .call(Some(&admin), Method::POST, "/api/runs", Some(huge))
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
    let (status, body) = cluster
        .call(
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
async fn wrong_tokens_are_throttled_per_address_and_a_right_one_elsewhere_still_works() {
    let cluster = Cluster::start(0);
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let guesser = from("127.0.0.1");
    let url = format!("{}/api/runs", cluster.url);
    let mut statuses = std::collections::BTreeMap::new();
    let mut retry_after = None;
    for i in 0..2_000 {
        let response = guesser
            .get(&url)
            .bearer_auth(format!("weft_guess{i}_nope"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
        }
        *statuses.entry(response.status().as_u16()).or_insert(0) += 1;
    }
    assert!(
        statuses.get(&429).copied().unwrap_or(0) >= 1_900,
        "{statuses:?}"
    );
    assert!(
        retry_after
            .as_deref()
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)),
        "{retry_after:?}"
    );
    // Another address with the right token: at once.
    let response = from("127.0.0.2")
        .get(&url)
        .bearer_auth(&cluster.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Who did what is recorded, and only admins read it (`GET /api/audit`,
/// `weft audit`), newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_who_did_what_for_admins_only() {
    let cluster = Cluster::start(1);
    let admin = cluster.admin_token.clone();
    let minted = cluster.mint("alice", "operator").await;
    let alice = minted["token"].as_str().unwrap().to_string();
    let (status, run) = cluster
        .call(
            Some(&alice),
            Method::POST,
            "/api/runs",
            Some(json!({"workflow": "[workflow]\nname = 'quick'\n[steps.a]\nrun = 'true'\n"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    cluster.wait(&id, std::time::Duration::from_secs(60)).await;
    let (status, retried) = cluster
        .call(
            Some(&alice),
            Method::POST,
            &format!("/api/runs/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    let token_id = minted["id"].as_str().unwrap();
    let (status, _) = cluster
        .call(
            Some(&admin),
            Method::DELETE,
            &format!("/api/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The operator could not read it even before it was revoked; an admin can.
    let (status, log) = cluster
        .call(Some(&admin), Method::GET, "/api/audit", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let entries: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["who"].as_str().unwrap_or("-").to_string(),
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let new = retried["id"].as_str().unwrap();
    assert_eq!(
        entries[..4]
            .iter()
            .map(|(who, action, _)| (who.as_str(), action.as_str()))
            .collect::<Vec<_>>(),
        [
            ("first admin", "revoke-token"),
            ("alice", "retry-run"),
            ("alice", "submit-run"),
            ("first admin", "create-token"),
        ],
        "{entries:?}"
    );
    assert_eq!(entries[1].2, format!("{new} (retry of {id})"));
    assert_eq!(entries[2].2, id);
    assert_eq!(entries[3].2, "alice (operator)");
    let (status, _) = cluster
        .call(
            Some(&cluster.admin_token),
            Method::GET,
            "/api/audit?limit=0",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The CLI shows the same.
    let out = std::process::Command::new(crate::support::weft_bin())
        .args([
            "--server",
            &cluster.url,
            "--token",
            &admin,
            "audit",
            "--limit",
            "4",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("retry-run") && text.contains("alice"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_read_the_audit_log() {
    let cluster = Cluster::start(0);
    let minted = cluster.mint("op", "operator").await;
    let (status, refused) = cluster
        .call(minted["token"].as_str(), Method::GET, "/api/audit", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
}
