//! Several `weft serve` sharing one Redis and RabbitMQ: the live changes
//! of a run reach the Server-Sent-Event streams of every server, whichever
//! server drives the run, each once; each server drives its own runs with
//! its own reports, and a killed one's runs and reports go to another.

use std::time::{Duration, Instant};

use crate::cluster::{step, tasks_where, Cluster, Setup};
use crate::support::{counted, lost_and_twice, wait_for_lines};

const WORKFLOW: &str = "[workflow]\nname = \"relayed\"\n[steps.a]\nrun = \"true\"\n[steps.b]\nneeds = [\"a\"]\nrun = \"true\"\n";

/// Reads `stream` until `done` says so of what came, or `limit` passes.
async fn read_until(
    stream: &mut reqwest::Response,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    let mut text = String::new();
    while !done(&text) {
        let left = limit.saturating_sub(start.elapsed());
        assert!(
            !left.is_zero(),
            "not within {limit:?}; the stream said:\n{text}"
        );
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, stream.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    text
}

fn finished_frames(text: &str, run: &str) -> usize {
    text.split("\n\n")
        .filter(|f| f.contains(&format!("\"run_id\":\"{run}\"")) && f.contains("\"finished\":true"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_server_streams_the_changes_of_runs_another_server_drives_each_once() {
    let mut cluster = Cluster::start(1);
    let second = cluster.start_another_serve();
    let http = reqwest::Client::new();
    let listen = |url: String| {
        http.get(format!("{url}/api/events"))
            .bearer_auth(&cluster.admin_token)
            .header("accept", "text/event-stream")
            .send()
    };
    let mut on_second = listen(second.clone()).await.unwrap();
    let mut on_first = listen(cluster.url.clone()).await.unwrap();
    // Each stream is open before the runs start: give the bus a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Submitted to the first server, which drives it: the second hears it.
    let driven_by_first = cluster.submit_text(WORKFLOW).await;
    let heard = read_until(&mut on_second, Duration::from_secs(30), |t| {
        finished_frames(t, &driven_by_first) > 0
    })
    .await;
    assert!(
        heard.contains(&format!("\"run_id\":\"{driven_by_first}\"")),
        "{heard}"
    );

    // Submitted to the second, the first hears it; the second hears its
    // own run once, not again back from the bus.
    let client = weft_api::Client::new(&second).with_token(Some(cluster.admin_token.clone()));
    let request = weft_api::views::SubmitRequest {
        workflow: WORKFLOW.into(),
        ..Default::default()
    };
    let driven_by_second = client.submit(&request).await.unwrap().id;
    read_until(&mut on_first, Duration::from_secs(30), |t| {
        finished_frames(t, &driven_by_second) > 0
    })
    .await;
    let own = read_until(&mut on_second, Duration::from_secs(30), |t| {
        finished_frames(t, &driven_by_second) > 0
    })
    .await;
    // What else comes in a second more would be a copy.
    let mut more = String::new();
    let until = Instant::now() + Duration::from_secs(1);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, on_second.chunk()).await {
            Ok(Ok(Some(chunk))) => more.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    assert_eq!(
        finished_frames(&format!("{own}{more}"), &driven_by_second),
        1,
        "{own}{more}"
    );
}

/// Two servers drive runs at once, each the runs submitted to it, with the
/// reports of its own jobs in its own mailbox. The first is killed with
/// steps of its runs still running: the second adopts them when their
/// leases expire, the reports sent to the dead server's mailbox reach it
/// once the mailbox gives them up, and every run ends with each step's
/// effect once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_servers_runs_and_reports_go_to_another_and_every_effect_happens_once() {
    let mut cluster = Cluster::set_up(Setup {
        workers: 2,
        broker: "mailbox-ttl-ms = 2000",
        ..Setup::default()
    });
    let second = cluster.start_another_serve();
    let effects = crate::support::shared_file(&cluster.shared(), "effects");
    let items: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let workflow = format!(
        "[workflow]\nname = \"spread\"\n[steps.fan]\nfor-each = [{}]\n\
         run = \"echo {{{{ run.id }}}}-{{{{ item }}}} >> {}; sleep 0.2\"\n\
         [steps.join]\nneeds = [\"fan\"]\nrun = \"echo joined\"\n",
        items.join(","),
        effects.display()
    );
    let on_second = weft_api::Client::new(&second).with_token(Some(cluster.admin_token.clone()));
    let request = weft_api::views::SubmitRequest {
        workflow: workflow.clone(),
        ..Default::default()
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(cluster.submit_text(&workflow).await);
        ids.push(on_second.submit(&request).await.unwrap().id);
    }
    wait_for_lines(&effects, 30, Duration::from_secs(60));
    cluster.kill_serve();
    let at_kill = counted(&effects).len();
    assert!(at_kill < 160, "the runs ended before the server was killed");
    eprintln!("first server killed after {at_kill} effects");

    cluster.url = second;
    let mut statuses = Vec::new();
    for id in &ids {
        let view = cluster.wait(id, Duration::from_secs(120)).await;
        assert_eq!(step(&view, "fan").tasks.len(), 40);
        if view.run.status != "succeeded" {
            eprintln!("{id}: {}", tasks_where(&view, |t| t.status != "succeeded"));
        }
        statuses.push(view.run.status.clone());
    }
    let expected = ids
        .iter()
        .flat_map(|id| (0..40).map(move |i| format!("{id}-{i}")));
    let (lost, twice) = lost_and_twice(&effects, expected);
    eprintln!(
        "report: 160 effects expected, {} lost, {} twice, runs {statuses:?}",
        lost.len(),
        twice.len()
    );
    assert!(lost.is_empty(), "effects lost: {lost:?}");
    assert!(twice.is_empty(), "effects twice: {twice:?}");
    assert!(statuses.iter().all(|s| s == "succeeded"), "{statuses:?}");
}

/// A server whose clock is 30 s ahead shares the runs with one on time:
/// leases are timed by Redis's clock, not the servers', so it takes no run
/// from the live server however stale its leases look by its own clock,
/// and takes a dead server's runs when their leases expire (2 s), not 30 s
/// early nor late. Runs end as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_30s_ahead_takes_no_live_run_and_a_dead_servers_runs_on_time() {
    let mut cluster = Cluster::set_up(Setup {
        workers: 1,
        broker: "mailbox-ttl-ms = 2000",
        ..Setup::default()
    });
    let ahead = cluster.start_another_serve_with_clock("+30s");
    // Its clock is ahead: the Date of its answers says so.
    let answer = reqwest::get(format!("{ahead}/healthz")).await.unwrap();
    let date = answer.headers()["date"].to_str().unwrap().to_string();
    let said = httpdate::parse_http_date(&date).unwrap();
    let lead = said
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(lead >= Duration::from_secs(25), "its clock says {date}");
    let items: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    let workflow = format!(
        "[workflow]\nname = \"skew\"\n[steps.fan]\nfor-each = [{}]\nrun = \"sleep 0.5\"\n",
        items.join(",")
    );
    let id = cluster.submit_text(&workflow).await;
    let store = cluster.store().await;
    use weft_core::ports::Leases;
    let holder = |store: weft_store_redis::RedisRunStore, id: String| async move {
        store.holder(&id).await.unwrap()
    };
    // While the first server lives, it alone holds the run.
    let first = holder(store.clone(), id.clone()).await.expect("a holder");
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        let now = holder(store.clone(), id.clone()).await;
        assert_eq!(
            now.as_deref(),
            Some(first.as_str()),
            "the run changed hands"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Dead, its run goes to the server ahead once the lease expires.
    let view = cluster.client().run(&id).await.unwrap();
    assert!(
        view.run.finished_at.is_none(),
        "the run ended before the kill"
    );
    cluster.kill_serve();
    let killed = Instant::now();
    let taken = loop {
        let now = holder(store.clone(), id.clone()).await;
        if now.as_deref().is_some_and(|h| h != first) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "nobody took the run over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("taken over {taken:?} after the kill (lease 2 s)");
    assert!(taken < Duration::from_secs(8), "taken over after {taken:?}");
    cluster.url = ahead;
    let view = cluster.wait(&id, Duration::from_secs(120)).await;
    assert_eq!(view.run.status, "succeeded", "{:?}", view.run);
}
