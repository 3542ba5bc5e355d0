//! Traces across machines: a server and two workers, each sending spans
//! to an OTLP/HTTP endpoint (here a listener that keeps what it is sent,
//! decoding OTLP's JSON), make one trace per run: the run's span from the
//! server at its root, a span per step under it, and each execution's span
//! from the worker that ran it, under its step's span, with the failure's
//! reason where it failed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::cluster::{Cluster, Setup};

/// Takes OTLP/HTTP requests and keeps each span with the `service.name`
/// of the process that sent it.
async fn collector() -> (u16, Arc<Mutex<Vec<(String, Json)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut socket = BufReader::new(socket);
                // One request after another on a kept-alive connection.
                loop {
                    let (mut path, mut length) = (String::new(), 0usize);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if path.is_empty() {
                            path = l.to_string();
                        }
                        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    socket.read_exact(&mut body).await.unwrap();
                    assert!(path.starts_with("POST /v1/traces "), "{path}");
                    let request: Json = serde_json::from_slice(&body).unwrap();
                    for resource in request["resourceSpans"].as_array().unwrap() {
                        let service = resource["resource"]["attributes"][0]["value"]["stringValue"]
                            .as_str()
                            .unwrap()
                            .to_string();
                        for scope in resource["scopeSpans"].as_array().unwrap() {
                            for span in scope["spans"].as_array().unwrap() {
                                kept.lock().unwrap().push((service.clone(), span.clone()));
                            }
                        }
                    }
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if socket.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Json, key: &str) -> &'a Json {
    let found = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key);
    found.map_or(&Json::Null, |a| &a["value"])
}

fn nanos(span: &Json, field: &str) -> u128 {
    span[field].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_one_trace_with_its_steps_and_each_execution_from_its_worker() {
    let (port, spans) = collector().await;
    let tables = format!("[telemetry]\notlp-endpoint = \"http://127.0.0.1:{port}\"\n");
    let cluster = Cluster::set_up(Setup {
        workers: 2,
        tables: &tables,
        ..Setup::default()
    });
    let id = cluster
        .submit_text(
            "[workflow]\nname = \"traced\"\n\
             [steps.prep]\nrun = \"true\"\n\
             [steps.shard]\nneeds = [\"prep\"]\nfor-each = [1, 2, 3]\nrun = \"sleep 0.2\"\n\
             [steps.bad]\nneeds = [\"shard\"]\nrun = \"echo no >&2; exit 3\"\n",
        )
        .await;
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "failed");

    // One span for the run, three for the steps, five executions.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let got = spans.lock().unwrap().clone();
        if got.len() >= 9 || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(spans.len(), 9, "{spans:#?}");
    let trace = hex(&weft_core::trace::trace_id(&id));
    let run_span = hex(&weft_core::trace::run_span_id(&id));
    for (_, span) in &spans {
        assert_eq!(span["traceId"], trace.as_str(), "one trace per run: {span}");
    }
    let of = |service: &str| -> Vec<&Json> {
        spans
            .iter()
            .filter(|(s, _)| s == service)
            .map(|(_, span)| span)
            .collect()
    };
    let server = of("weft-server");
    let workers = of("weft-worker");
    assert_eq!((server.len(), workers.len()), (4, 5), "{spans:#?}");

    let run = server
        .iter()
        .find(|s| s["spanId"] == run_span.as_str())
        .unwrap();
    assert!(
        run.get("parentSpanId").is_none(),
        "the run is the root: {run}"
    );
    assert_eq!(run["name"], "run traced");
    assert_eq!(run["status"]["code"], 2, "the run failed: {run}");
    assert_eq!(attribute(run, "weft.run.id")["stringValue"], id.as_str());

    for step in ["prep", "shard", "bad"] {
        let step_span = hex(&weft_core::trace::step_span_id(&id, step));
        let span = server
            .iter()
            .find(|s| s["spanId"] == step_span.as_str())
            .unwrap_or_else(|| panic!("no span for step {step}: {server:#?}"));
        assert_eq!(span["parentSpanId"], run_span.as_str());
        assert_eq!(span["name"], format!("step {step}"));
        let executions: Vec<&&Json> = workers
            .iter()
            .filter(|s| s["parentSpanId"] == step_span.as_str())
            .collect();
        let want = if step == "shard" { 3 } else { 1 };
        assert_eq!(executions.len(), want, "executions of {step}: {workers:#?}");
        for e in &executions {
            assert_eq!(attribute(e, "weft.step")["stringValue"], step);
            assert!(
                nanos(e, "startTimeUnixNano") <= nanos(e, "endTimeUnixNano"),
                "{e}"
            );
            // Inside its step, give or take what the report takes to arrive.
            let slack = 1_000_000_000;
            assert!(nanos(e, "startTimeUnixNano") + slack >= nanos(span, "startTimeUnixNano"));
            assert!(nanos(e, "endTimeUnixNano") <= nanos(span, "endTimeUnixNano") + slack);
        }
        if step == "bad" {
            let failed = executions[0];
            assert_eq!(failed["status"]["code"], 2);
            assert!(
                failed["status"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("exited with code 3"),
                "{failed}"
            );
            assert_eq!(attribute(failed, "weft.exit_code")["intValue"], "3");
        }
    }
    // Both workers took part, each naming itself.
    let names: std::collections::BTreeSet<&str> = workers
        .iter()
        .map(|s| attribute(s, "weft.worker")["stringValue"].as_str().unwrap())
        .collect();
    assert!(!names.is_empty() && names.len() <= 2, "{names:?}");
}

#[test]
fn an_endpoint_that_is_not_http_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        "[telemetry]\notlp-endpoint = \"collector:4318\"\n[worker-http]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::weft_bin())
        .arg("--config")
        .arg(&config)
        .arg("worker")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("`collector:4318` is not an http:// URL"),
        "{said}"
    );
}
