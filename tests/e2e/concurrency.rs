//! `[workflow] concurrency` with real servers, workers, Redis and RabbitMQ:
//! runs of one key never overlap across two servers, wait in line by
//! priority and say why they wait; `skip` and `cancel-running` do what
//! they say, across servers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use weft_api::views::{RunView, SubmitRequest};
use weft_api::Client;

use crate::cluster::{Cluster, Setup};

/// A workflow whose one step appends `+ <run> <ns>` and `- <run> <ns>` to
/// `marks` around a sleep of `secs`.
fn marked(name: &str, concurrency: &str, marks: &Path, secs: f64) -> String {
    format!(
        "[workflow]\nname = \"{name}\"\nconcurrency = {concurrency}\n[params]\ndataset = \"a\"\n\
         [steps.work]\n\
         run = 'echo \"+ {{{{ run.id }}}} $(date +%s%N)\" >> {m}; sleep {secs}; echo \"- {{{{ run.id }}}} $(date +%s%N)\" >> {m}'\n",
        m = marks.display()
    )
}

/// Each run's (start, end) in ns, in the order they started.
fn spans(marks: &Path) -> Vec<(String, u128, u128)> {
    let text = std::fs::read_to_string(marks).unwrap_or_default();
    let mut open = BTreeMap::new();
    let mut spans = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let at: u128 = parts[2].parse().unwrap();
        match parts[0] {
            "+" => {
                open.insert(parts[1].to_string(), at);
            }
            _ => {
                let start = open.remove(parts[1]).expect("an end after its start");
                spans.push((parts[1].to_string(), start, at));
            }
        }
    }
    spans.sort_by_key(|s| s.1);
    spans
}

async fn submit(client: &Client, workflow: &str, params: &[(&str, &str)], priority: i32) -> String {
    let request = SubmitRequest {
        workflow: workflow.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        priority,
        ..Default::default()
    };
    client.submit(&request).await.expect("submit").id
}

async fn wait(client: &Client, id: &str) -> RunView {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let view = client.run(id).await.unwrap();
        if view.is_finished() {
            return view;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never ended: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Waits until `marks` shows run `id` started.
async fn started(marks: &Path, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(marks).is_ok_and(|m| m.contains(&format!("+ {id}"))) {
        assert!(std::time::Instant::now() < deadline, "{id} never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_runs_of_one_key_on_two_servers_never_overlap_and_wait_by_priority() {
    let mut cluster = Cluster::set_up(Setup {
        workers: 1,
        worker: "concurrency = 8",
        ..Setup::default()
    });
    let second = cluster.start_another_serve();
    let (one, two) = (
        cluster.client(),
        Client::new(&second).with_token(Some(cluster.admin_token.clone())),
    );
    let marks = crate::support::shared_file(&cluster.shared(), "one-key");
    let others = crate::support::shared_file(&cluster.shared(), "other-key");
    let workflow = marked(
        "one-at-a-time",
        "{ key = \"ds-{{ params.dataset }}\", limit = 1 }",
        &marks,
        1.0,
    );
    // The first holds the key; four more wait, submitted to both servers,
    // the fourth with a higher priority than the others.
    let first = submit(&one, &workflow, &[], 0).await;
    started(&marks, &first).await;
    let mut waiting = Vec::new();
    for (i, priority) in [0, 0, 0, 5].into_iter().enumerate() {
        let client = if i % 2 == 0 { &one } else { &two };
        waiting.push(submit(client, &workflow, &[], priority).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another key is another line: it runs beside the first at once.
    let other_workflow = marked(
        "one-at-a-time",
        "{ key = \"ds-{{ params.dataset }}\", limit = 1 }",
        &others,
        0.2,
    );
    let other = submit(&two, &other_workflow, &[("dataset", "b")], 0).await;
    // A waiting run says why, and holds no worker.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = two.run(&waiting[0]).await.unwrap();
    assert_eq!(view.run.status, "pending", "{view:?}");
    let why = view.flow.waiting.clone().unwrap_or_default();
    assert!(
        why.contains("waiting for a slot of concurrency key `ds-a` (limit 1): held by"),
        "{view:?}"
    );
    let spot = view.flow.concurrency.clone().unwrap();
    assert_eq!((spot.key.as_str(), spot.limit), ("ds-a", 1));
    assert!(view.steps.iter().all(|s| s.tasks.is_empty()), "{view:?}");
    assert_eq!(wait(&two, &other).await.run.status, "succeeded");
    for id in std::iter::once(&first).chain(&waiting) {
        let view = wait(&one, id).await;
        assert_eq!(view.run.status, "succeeded", "{view:?}");
        assert!(view.flow.waiting.is_none(), "{view:?}");
    }
    let spans = spans(&marks);
    assert_eq!(spans.len(), 5, "{spans:?}");
    for pair in spans.windows(2) {
        assert!(
            pair[1].1 >= pair[0].2,
            "run {} began before run {} ended: {spans:?}",
            pair[1].0,
            pair[0].0
        );
    }
    // The other key's run ran while the first held `ds-a`.
    let other_span = &self::spans(&others)[0];
    assert!(other_span.1 < spans[0].2, "{other_span:?} {spans:?}");
    // The line's order: the higher priority first, then as submitted.
    let order: Vec<&str> = spans.iter().map(|s| s.0.as_str()).collect();
    let expected = [&first, &waiting[3], &waiting[0], &waiting[1], &waiting[2]];
    assert_eq!(order, expected.map(String::as_str), "{spans:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_ends_a_run_whose_key_is_held_and_cancel_running_replaces_the_holder_across_servers() {
    let mut cluster = Cluster::set_up(Setup {
        workers: 1,
        worker: "concurrency = 4",
        ..Setup::default()
    });
    let second = cluster.start_another_serve();
    let (one, two) = (
        cluster.client(),
        Client::new(&second).with_token(Some(cluster.admin_token.clone())),
    );
    let marks = crate::support::shared_file(&cluster.shared(), "lock");
    let holder = marked("holder", "{ key = \"lock\" }", &marks, 30.0);
    let skipper = marked(
        "skipper",
        "{ key = \"lock\", policy = \"skip\" }",
        &marks,
        0.1,
    );
    let replacer = marked(
        "replacer",
        "{ key = \"lock\", policy = \"cancel-running\" }",
        &marks,
        0.1,
    );
    let held = submit(&one, &holder, &[], 0).await;
    started(&marks, &held).await;
    // skip: ends at once, cancelled, naming the holder; nothing ran.
    let skipped = wait(&two, &submit(&two, &skipper, &[], 0).await).await;
    assert_eq!(skipped.run.status, "cancelled", "{skipped:?}");
    let summary = skipped.run.summary.clone().unwrap_or_default();
    assert!(
        summary.starts_with("skipped: concurrency key `lock` has all its 1 slot(s) held by")
            && summary.contains(&held),
        "{summary}"
    );
    assert!(!std::fs::read_to_string(&marks)
        .unwrap()
        .contains(&skipped.run.id));
    // cancel-running, submitted to the server that does not drive the
    // holder: the holder is cancelled there, and the new run then runs.
    let replacing = submit(&two, &replacer, &[], 0).await;
    let cancelled = wait(&one, &held).await;
    assert_eq!(cancelled.run.status, "cancelled", "{cancelled:?}");
    let reason = cancelled.run.summary.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "run {replacing} of concurrency key `lock` replaces it"
        )),
        "{reason}"
    );
    let replaced = wait(&two, &replacing).await;
    assert_eq!(replaced.run.status, "succeeded", "{replaced:?}");
    // The holder's step was stopped before the replacement began.
    let spans = spans(&marks);
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].0, replacing);
    // A key that renders empty, or a priority out of range, starts nothing.
    let empty = "[workflow]\nname = \"e\"\nconcurrency = { key = \"{{ params.d }}\" }\n[params]\nd = \"\"\n[steps.a]\nrun = \"true\"\n";
    let request = SubmitRequest {
        workflow: empty.into(),
        ..Default::default()
    };
    let e = one.submit(&request).await.unwrap_err().to_string();
    assert!(e.contains("renders empty"), "{e}");
    let request = SubmitRequest {
        workflow: holder.clone(),
        priority: 5_000,
        ..Default::default()
    };
    let e = one.submit(&request).await.unwrap_err().to_string();
    assert!(e.contains("priority 5000 is out of range"), "{e}");
}
