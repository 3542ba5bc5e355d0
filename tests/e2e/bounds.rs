//! What protects an install from one run: texts a run keeps are bounded,
//! whatever a step or plugin produces.

use weft_core::ports::{AttemptId, EventLog, StepLogs};
use weft_core::run::MAX_TEXT_BYTES;

use crate::support::{newest_embedded_run, repo, text, weft};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_plugin_error_is_kept_short_in_the_run_and_whole_in_the_step_log() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(200_000);
    let plugin = repo().join("plugins/dist/validate-inputs.wasm");
    let file = dir.path().join("huge-reason.toml");
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"huge-reason\"\n[params]\nbig = \"{big}\"\n\
             [steps.checked]\nrun = \"echo never\"\n\
             hooks = {{ pre = [{{ plugin = \"{}\", config = {{ schema = {{ properties = {{ params = {{ properties = {{ big = {{ enum = [\"small\"] }} }} }} }} }} }} }}] }}\n",
            plugin.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = weft(&["run", file.to_str().unwrap(), "--plain"], &data);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.len() < 64 * 1024,
        "weft run printed {} bytes",
        printed.len()
    );

    let (store, record, state) = newest_embedded_run(&data).await;
    let attempt = &state.steps[0].tasks[0].attempts[0];
    let reason = attempt.error.as_deref().unwrap();
    assert!(
        reason.len() <= MAX_TEXT_BYTES,
        "{} bytes kept",
        reason.len()
    );
    assert!(
        reason.contains("inputs do not match the schema")
            && reason.ends_with("more bytes; the whole text is in the step log]"),
        "{}",
        &reason[reason.len() - 200..]
    );
    let hook = &attempt.hooks[0];
    assert!(hook.error.as_deref().unwrap().len() <= MAX_TEXT_BYTES);
    assert!(record.summary.unwrap().len() <= MAX_TEXT_BYTES);
    let events = serde_json::to_string(&store.events(&record.id).await.unwrap()).unwrap();
    assert!(
        events.len() < 32 * 1024,
        "the event log holds {} bytes",
        events.len()
    );

    let log = store
        .read_log(&AttemptId {
            run_id: record.id.clone(),
            task: state.steps[0].tasks[0].id.clone(),
            attempt: 1,
        })
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.contains(&big) && log.contains("[weft] the attempt failed"),
        "the whole reason is in the step log ({} bytes)",
        log.len()
    );
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A workflow of `n` join steps (no command: each finishes as it starts),
/// in chains of 100.
fn joins(n: usize) -> String {
    let mut text = String::from("[workflow]\nname = \"huge\"\n");
    for i in 0..n {
        text.push_str(&format!("[steps.s{i}]\n"));
        if i % 100 != 0 {
            text.push_str(&format!("needs = [\"s{}\"]\n", i - 1));
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_the_step_limit_is_refused_and_runs_once_the_limit_is_raised() {
    use reqwest::Method;
    use serde_json::json;

    use crate::cluster::{Cluster, Setup};

    let source = joins(100_000);
    let body = json!({ "workflow": source, "file": "huge.toml" });
    let cluster = Cluster::set_up(Setup {
        workers: 0,
        ..Setup::default()
    });
    let token = cluster.admin_token.clone();
    let (status, answer) = cluster
        .call(Some(&token), Method::POST, "/api/runs", Some(body.clone()))
        .await;
    assert_eq!(status.as_u16(), 422, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("100000 steps") && error.contains("`[orchestrator] max-steps-per-run`"),
        "{error}"
    );
    drop(cluster);

    let cluster = Cluster::set_up(Setup {
        workers: 0,
        orchestrator: "lease-ttl-ms = 2000\nmax-steps-per-run = 200000",
        ..Setup::default()
    });
    let serve = cluster.serve.as_ref().unwrap().id();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let idle = rss(serve);
    let token = cluster.admin_token.clone();
    let (status, answer) = cluster
        .call(Some(&token), Method::POST, "/api/runs", Some(body))
        .await;
    assert_eq!(status.as_u16(), 201, "{answer}");
    let id = answer["id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let mut peak = idle;
    let finished = loop {
        peak = peak.max(rss(serve));
        let runs = cluster.client().runs(5).await.unwrap();
        let run = runs.iter().find(|r| r.id == id).unwrap();
        if run.status != "running" && run.status != "pending" {
            break run.status.clone();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(240),
            "the run did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(finished, "succeeded");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = rss(serve);
    eprintln!(
        "weft serve: {} MiB idle, {} MiB at the peak of a 100,000-step run, {} MiB after it ended ({:?})",
        idle >> 20,
        peak >> 20,
        after >> 20,
        started.elapsed()
    );
    assert!(
        after < idle + (64 << 20),
        "the server's memory went back near idle: {} MiB idle, {} MiB after",
        idle >> 20,
        after >> 20
    );
}

/// Polls run `id` (by the run list, cheap whatever its size) until it ends.
async fn wait_listed(
    cluster: &crate::cluster::Cluster,
    id: &str,
    limit: std::time::Duration,
) -> String {
    let started = std::time::Instant::now();
    loop {
        let runs = cluster.client().runs(20).await.unwrap();
        if let Some(run) = runs.iter().find(|r| r.id == id) {
            if !matches!(run.status.as_str(), "running" | "pending") {
                return run.status.clone();
            }
        }
        assert!(
            started.elapsed() < limit,
            "run {id} did not end within {limit:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_fan_out_neither_starves_another_run_nor_holds_it_up_once_cancelled() {
    use std::time::{Duration, Instant};

    use crate::cluster::{Cluster, Setup};

    let cluster = Cluster::set_up(Setup {
        workers: 1,
        orchestrator: "lease-ttl-ms = 2000\ndispatch-window = 8",
        ..Setup::default()
    });
    let dir = cluster.dir.path();
    let items: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    let huge = dir.join("huge.toml");
    std::fs::write(
        &huge,
        format!(
            "[workflow]\nname = \"huge\"\n[steps.many]\nfor-each = [{}]\nrun = \"sleep 0.05\"\n",
            items.join(",")
        ),
    )
    .unwrap();
    let small = dir.join("small.toml");
    std::fs::write(
        &small,
        "[workflow]\nname = \"small\"\n[steps.one]\nrun = \"true\"\n",
    )
    .unwrap();

    let big = cluster.submit(huge.to_str().unwrap(), &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let other = cluster.submit(small.to_str().unwrap(), &[]).await;
    assert_eq!(
        wait_listed(&cluster, &other, Duration::from_secs(30)).await,
        "succeeded"
    );
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "a small run behind 2,000 queued tasks took {waited:?}"
    );
    // Cancelled, the big run's jobs that never left the server are dropped,
    // and the few in the queue are acked without running.
    cluster.client().cancel(&big).await.unwrap();
    assert_eq!(
        wait_listed(&cluster, &big, Duration::from_secs(30)).await,
        "cancelled"
    );
    let started = Instant::now();
    let next = cluster.submit(small.to_str().unwrap(), &[]).await;
    assert_eq!(
        wait_listed(&cluster, &next, Duration::from_secs(30)).await,
        "succeeded"
    );
    let after_cancel = started.elapsed();
    assert!(
        after_cancel < Duration::from_secs(5),
        "a run after the cancel took {after_cancel:?}"
    );
    eprintln!(
        "a small run beside a 2,000-task fan-out: {waited:?}; after its cancel: {after_cancel:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_the_server_goes_on_serving() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use crate::cluster::{Cluster, Setup};

    let cluster = Cluster::set_up(Setup {
        workers: 0,
        server: "header-read-timeout-ms = 1000\nrequest-timeout-ms = 1500",
        ..Setup::default()
    });
    let addr = cluster.url.trim_start_matches("http://").to_string();
    // Twenty clients that send their headers a byte at a time.
    let slow: Vec<std::thread::JoinHandle<Duration>> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
                    .iter()
                    .cycle()
                {
                    if s.write_all(&[*b]).is_err() {
                        break;
                    }
                    let mut buf = [0u8; 64];
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => break,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    }
                    assert!(started.elapsed() < Duration::from_secs(20), "never cut off");
                }
                started.elapsed()
            })
        })
        .collect();
    // Meanwhile the server answers others at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let (status, _) = cluster
        .call(None, reqwest::Method::GET, "/healthz", None)
        .await;
    assert_eq!(status.as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    for t in slow {
        let lasted = t.join().unwrap();
        assert!(
            lasted < Duration::from_secs(5),
            "a slow client was held {lasted:?}"
        );
    }
    // A body sent too slowly is answered 408.
    let mut s = TcpStream::connect(&addr).unwrap();
    let token = cluster.admin_token.clone();
    write!(
        s,
        "POST /api/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}
