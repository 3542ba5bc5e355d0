//! Run priority in a worker pool, with a real server, worker and RabbitMQ:
//! when the pool's slots are full, the jobs of higher-priority runs start
//! first, whatever order they were queued in; within a priority band, in
//! the order they were queued.

use std::path::Path;
use std::time::{Duration, Instant};

use weft_api::views::{RunView, SubmitRequest};
use weft_api::Client;

use crate::cluster::{Cluster, Setup};

/// A workflow whose one step appends its run's id to `marks`, once `go`
/// exists.
fn marked(name: &str, marks: &Path, go: &Path) -> String {
    format!(
        "[workflow]\nname = \"{name}\"\n[steps.work]\n\
         run = 'while [ ! -e {go} ]; do sleep 0.05; done; echo {{{{ run.id }}}} >> {m}'\n",
        go = go.display(),
        m = marks.display()
    )
}

async fn submit(client: &Client, workflow: &str, priority: i32) -> String {
    let request = SubmitRequest {
        workflow: workflow.into(),
        priority,
        ..Default::default()
    };
    client.submit(&request).await.expect("submit").id
}

async fn until(client: &Client, id: &str, what: &str, done: impl Fn(&RunView) -> bool) -> RunView {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let view = client.run(id).await.unwrap();
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "{id} never {what}: {view:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs named `<band>-<x>` started band by band, the highest first. (Within
/// a band, in the order queued, but for jobs a busy worker was sent and gave
/// back, which go to the back of their band: which ones depends on how soon
/// the busy workers paused.)
fn assert_bands(order: &[&str]) {
    let rank = |name: &&str| match name.split('-').next() {
        Some("high") => 0,
        Some("normal") => 1,
        _ => 2,
    };
    let ranks: Vec<u8> = order.iter().map(rank).collect();
    let mut sorted = ranks.clone();
    sorted.sort();
    assert_eq!(ranks, sorted, "started out of band order: {order:?}");
}

fn task_status(view: &RunView) -> &str {
    view.steps[0]
        .tasks
        .first()
        .map_or("", |t| t.status.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_starts_the_jobs_of_higher_priority_runs_first() {
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        worker: "concurrency = 1",
        ..Setup::default()
    });
    let client = cluster.client();
    let marks = crate::support::shared_file(&cluster.shared(), "order");
    let go = cluster.shared().join("go");
    let workflow = marked("ranked", &marks, &go);
    // The worker's one slot is held by the first run until `go` exists.
    let first = submit(&client, &workflow, 0).await;
    until(&client, &first, "started", |v| task_status(v) == "running").await;
    // Then runs of every band are queued, the highest last but one.
    let mut queued = Vec::new();
    for (name, priority) in [
        ("low-a", -5),
        ("normal-a", 0),
        ("low-b", -1000),
        ("high", 10),
        ("normal-b", 0),
    ] {
        queued.push((name, submit(&client, &workflow, priority).await));
    }
    for (name, id) in &queued {
        until(&client, id, &format!("queued ({name})"), |v| {
            task_status(v) == "queued"
        })
        .await;
    }
    std::fs::write(&go, "").unwrap();
    for (_, id) in &queued {
        let view = until(&client, id, "ended", |v| v.is_finished()).await;
        assert_eq!(view.run.status, "succeeded", "{view:?}");
    }
    let order: Vec<String> = std::fs::read_to_string(&marks)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let name = |id: &String| {
        if id == &first {
            "first"
        } else {
            queued
                .iter()
                .find(|(_, q)| q == id)
                .expect("a queued run")
                .0
        }
    };
    let order: Vec<&str> = order.iter().map(name).collect();
    assert_eq!(order[..2], ["first", "high"], "{order:?}");
    assert_bands(&order[1..]);
    // The run says its priority, in the API and in `weft show`; a run of
    // priority 0 says nothing.
    let high = client.run(&queued[3].1).await.unwrap();
    assert_eq!(high.run.priority, 10);
    let json = serde_json::to_value(client.run(&first).await.unwrap().run).unwrap();
    assert!(json.get("priority").is_none(), "{json}");
    let out = std::process::Command::new(crate::support::weft_bin())
        .args(["--server", &cluster.url, "show", &queued[3].1])
        .env("WEFT_TOKEN", &cluster.admin_token)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("priority  10 (high band)"), "{shown}");
    let page = format!("runs/{}", queued[3].1);
    let b = crate::dashboard::open_as(&cluster, &cluster.admin_token, &page).await;
    let header = b
        .wait_for(
            "the run's priority on its page",
            "const bar = document.querySelector('.bar')?.textContent || ''; \
             return bar.includes('priority 10') ? bar : null",
            Duration::from_secs(30),
        )
        .await;
    assert!(header.to_string().contains("priority 10"), "{header}");
    // Out of range: a clear 422, and no run.
    let before = client.runs(100).await.unwrap().len();
    let request = SubmitRequest {
        workflow: workflow.clone(),
        priority: 1001,
        ..Default::default()
    };
    match client.submit(&request).await {
        Err(weft_api::Error::Api {
            status: 422,
            message,
            ..
        }) => assert!(message.contains("from -1000 to 1000"), "{message}"),
        other => panic!("a priority of 1001 was not refused: {other:?}"),
    }
    assert_eq!(client.runs(100).await.unwrap().len(), before);
}

/// A workflow whose one step waits for `go-<run id>` in `dir`.
fn blocker(dir: &Path) -> String {
    format!(
        "[workflow]\nname = \"blocker\"\n[steps.hold]\n\
         run = 'while [ ! -e {d}/go-{{{{ run.id }}}} ]; do sleep 0.05; done'\n",
        d = dir.display()
    )
}

/// Two workers of one slot each, both busy: the jobs queued meanwhile wait
/// at the broker, not on a busy worker, so the first worker to free up
/// starts them in priority order while the other is still busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_busy_workers_hold_no_jobs_and_the_first_free_one_starts_the_highest() {
    let cluster = Cluster::set_up(Setup {
        workers: 2,
        worker: "concurrency = 1",
        ..Setup::default()
    });
    let client = cluster.client();
    let dir = cluster.shared();
    let marks = crate::support::shared_file(&dir, "order");
    let go = dir.join("go");
    std::fs::write(&go, "").unwrap();
    let blockers = [
        submit(&client, &blocker(&dir), 0).await,
        submit(&client, &blocker(&dir), 0).await,
    ];
    for id in &blockers {
        until(&client, id, "started", |v| task_status(v) == "running").await;
    }
    let workflow = marked("ranked", &marks, &go);
    let mut queued = Vec::new();
    for (name, priority) in [
        ("low-a", -5),
        ("normal-a", 0),
        ("high", 10),
        ("normal-b", 0),
        ("low-b", -1),
    ] {
        queued.push((name, submit(&client, &workflow, priority).await));
    }
    for (name, id) in &queued {
        until(&client, id, &format!("queued ({name})"), |v| {
            task_status(v) == "queued"
        })
        .await;
    }
    // Long enough for a busy worker to give back what it was sent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // One worker frees up; the other stays busy until the end.
    std::fs::write(dir.join(format!("go-{}", blockers[0])), "").unwrap();
    for (_, id) in &queued {
        let view = until(&client, id, "ended", |v| v.is_finished()).await;
        assert_eq!(view.run.status, "succeeded", "{view:?}");
    }
    let other = client.run(&blockers[1]).await.unwrap();
    assert_eq!(task_status(&other), "running", "{other:?}");
    std::fs::write(dir.join(format!("go-{}", blockers[1])), "").unwrap();
    let order: Vec<&str> = std::fs::read_to_string(&marks)
        .unwrap()
        .lines()
        .map(|id| {
            queued
                .iter()
                .find(|(_, q)| q == id)
                .expect("a queued run")
                .0
        })
        .collect();
    assert_eq!(order.len(), 5, "{order:?}");
    assert_bands(&order);
    until(&client, &blockers[1], "ended", |v| v.is_finished()).await;
}
