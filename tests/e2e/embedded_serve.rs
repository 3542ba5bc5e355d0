//! `weft serve --embedded`: the API and the dashboard over the embedded
//! store, with a worker in the same process and no RabbitMQ or Redis.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use weft_api::views::{RunView, SubmitRequest};
use weft_api::Client;

use crate::cluster::{start, step};
use crate::support::{repo, text, weft, weft_bin};

/// Starts `weft serve --embedded` in `dir`, with a broker and a Redis that
/// are not there (nothing may need them); its URL and what it printed first.
fn serve_embedded(dir: &Path) -> (Child, String, Vec<String>) {
    serve_embedded_with(dir, "")
}

/// As [`serve_embedded`], with more `[worker]` settings.
fn serve_embedded_with(dir: &Path, worker: &str) -> (Child, String, Vec<String>) {
    std::fs::write(
        dir.join("weft.toml"),
        format!(
            "[broker]\nurl = \"amqp://guest:guest@127.0.0.1:1/%2f\"\n\
             [redis]\nurl = \"redis://127.0.0.1:1/\"\n\
             [worker]\nheartbeat-ms = 300\n{worker}\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(weft_bin());
    cmd.args(["serve", "--embedded", "--listen", "127.0.0.1:0"])
        .env("WEFT_DATA_DIR", dir.join(".weft"))
        .current_dir(dir);
    start(cmd, "weft serve --embedded")
}

fn admin_token(printed: &[String]) -> String {
    printed
        .iter()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("weft_")))
        .expect("the first admin token")
        .to_string()
}

async fn submit(client: &Client, source: String) -> String {
    let request = SubmitRequest {
        workflow: source,
        ..Default::default()
    };
    client.submit(&request).await.unwrap().id
}

/// Waits until the step writing to `marks` has written `start`.
async fn step_started(marks: &Path) {
    let since = Instant::now();
    while !std::fs::read_to_string(marks).is_ok_and(|m| m.contains("start")) {
        assert!(since.elapsed() < Duration::from_secs(30), "a never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finished(client: &Client, id: &str) -> RunView {
    let start_at = Instant::now();
    loop {
        if let Ok(view) = client.run(id).await {
            if view.is_finished() {
                return view;
            }
        }
        assert!(
            start_at.elapsed() < Duration::from_secs(60),
            "run {id} did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_embedded_runs_workflows_with_no_broker_and_no_redis() {
    let data = tempfile::tempdir().unwrap();
    let (mut serve, url, printed) = serve_embedded(data.path());
    let client = Client::new(&url).with_token(Some(admin_token(&printed)));
    assert!(client.runs(10).await.is_ok());
    assert!(
        Client::new(&url).runs(10).await.is_err(),
        "a token is still needed"
    );

    let source = std::fs::read_to_string(repo().join("workflows/diamond.toml")).unwrap();
    let id = submit(&client, source).await;
    let view = finished(&client, &id).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    assert_eq!(
        step(&view, "sum").outputs,
        Some(serde_json::json!({"total": 120}))
    );
    let workers = client.workers().await.unwrap();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert!(workers[0].name.starts_with("embedded-"), "{workers:?}");
    let page = reqwest::get(&url).await.unwrap();
    assert!(page
        .headers()
        .get("content-type")
        .is_some_and(|t| t.to_str().unwrap().starts_with("text/html")));

    // The store is the server's while it runs, and says so.
    let busy = weft(&["runs"], &data.path().join(".weft"));
    assert!(!busy.status.success());
    assert!(
        text(&busy).contains("in use by another weft process"),
        "{}",
        text(&busy)
    );

    // SIGTERM drains: a step that is running gets to finish.
    let marks = crate::support::shared_file(&crate::support::shared_dir(data.path()), "marks");
    submit(
        &client,
        format!(
            "[workflow]\nname = 'drain'\n[steps.a]\nrun = 'echo start >> {m}; sleep 1; echo end >> {m}'\n",
            m = marks.display()
        ),
    )
    .await;
    step_started(&marks).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(serve.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "start\nend\n");
    // Its history is the embedded store's: `weft runs` reads it afterwards.
    let after = weft(&["runs"], &data.path().join(".weft"));
    assert!(text(&after).contains(&id), "{}", text(&after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_embedded_server_finishes_its_runs_once_restarted() {
    let data = tempfile::tempdir().unwrap();
    let (mut serve, url, printed) = serve_embedded(data.path());
    let token = admin_token(&printed);
    let client = Client::new(&url).with_token(Some(token.clone()));
    let marks = crate::support::shared_file(&crate::support::shared_dir(data.path()), "marks");
    let id = submit(
        &client,
        format!(
            "[workflow]\nname = 'slow'\n[steps.a]\nrun = 'echo start >> {m}; sleep 2; echo end >> {m}'\n\
             [steps.b]\nneeds = ['a']\nrun = 'echo b >> {m}'\n",
            m = marks.display()
        ),
    )
    .await;
    step_started(&marks).await;
    // No clean-up of any kind: its queue, with a's job, dies with it.
    serve.kill().unwrap();
    serve.wait().unwrap();

    let (mut serve, url, _) = serve_embedded(data.path());
    let client = Client::new(&url).with_token(Some(token));
    let view = finished(&client, &id).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let marks = std::fs::read_to_string(&marks).unwrap();
    assert!(
        marks.ends_with("end\nb\n"),
        "a ran again to its end, then b: {marks}"
    );
    let _ = serve.kill();
    let _ = serve.wait();
}

/// A root server's steps run as step users (one uid each while it runs),
/// and it claims and prepares jobs ahead of its slots: a fan-out wider
/// than its slots runs every step, each as a step user and none as root,
/// however many jobs wait prepared (a job prepared ahead once took a uid
/// while it waited, and the steps past the pool failed with "no step uid
/// is free"). With the default range of uids and with a range as narrow
/// as its slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_server_runs_a_fan_out_wider_than_its_slots_each_step_as_a_step_user() {
    // Not a pass without root: step users are a root worker's.
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    wide_fan_out_as_step_users("concurrency = 2").await;
    wide_fan_out_as_step_users("concurrency = 2\nstep-uids = { first = 1870000000, count = 2 }")
        .await;
}

async fn wide_fan_out_as_step_users(worker: &str) {
    let data = tempfile::tempdir().unwrap();
    let (mut serve, url, printed) = serve_embedded_with(data.path(), worker);
    let client = Client::new(&url).with_token(Some(admin_token(&printed)));
    let uids = crate::support::shared_file(&crate::support::shared_dir(data.path()), "uids");
    let items: Vec<String> = (0..24).map(|i| i.to_string()).collect();
    let id = submit(
        &client,
        format!(
            "[workflow]\nname = 'wide'\n[steps.fan]\nfor-each = [{}]\n\
             run = 'sleep 0.05; id -u >> {}'\n",
            items.join(","),
            uids.display()
        ),
    )
    .await;
    let view = finished(&client, &id).await;
    let failed: Vec<_> = step(&view, "fan")
        .tasks
        .iter()
        .filter(|t| t.status != "succeeded")
        .map(|t| (&t.item, t.attempts.last().and_then(|a| a.error.clone())))
        .collect();
    assert!(failed.is_empty(), "{worker}: {failed:?}");
    assert_eq!(view.run.status, "succeeded");
    let seen = std::fs::read_to_string(&uids).unwrap();
    assert_eq!(seen.lines().count(), 24, "{seen}");
    assert!(
        seen.lines()
            .all(|uid| uid.parse::<u32>().unwrap() >= 1_870_000_000),
        "every step as a step user: {seen}"
    );
    let _ = serve.kill();
    let _ = serve.wait();
}
