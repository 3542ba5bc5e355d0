//! Several `weft serve` sharing one Redis and RabbitMQ: the live changes
//! of a run reach the Server-Sent-Event streams of every server, whichever
//! server drives the run, each once.

use std::time::{Duration, Instant};

use crate::cluster::Cluster;

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
