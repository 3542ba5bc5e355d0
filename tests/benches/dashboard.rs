//! The dashboard and API under a 2,000-step run, in headless Chromium
//! against a real server and workers (RabbitMQ, Redis):
//!
//! - time until the run page of a finished 2,000-step run has drawn its graph;
//! - a live 2,000-step run on the page: state changes per second reaching the
//!   browser, the cost of applying an update, and long frames (> 50 ms);
//!   once as fast as four workers go, once paced near 100 changes/s;
//! - `GET /api/runs/{id}` of that run with 200 Server-Sent-Event clients
//!   connected, while another run streams changes to them: p50 and p99.
//!
//! Run: `cargo build --release -p weft-cli && cargo bench -p weft-tests --bench dashboard`
//! (the bench drives `target/release/weft`).

#[allow(dead_code)]
#[path = "../e2e/browser.rs"]
mod browser;
#[allow(dead_code)]
#[path = "../e2e/cluster.rs"]
mod cluster;
mod common;
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use browser::Browser;
use cluster::Cluster;
use common::{open, percentile};

const LAYERS: usize = 20;
const WIDTH: usize = 100;
const LONG: Duration = Duration::from_secs(300);

/// Seconds each step of the paced run sleeps: with 8 worker slots and about
/// 1.75 changes per step, near 100 changes per second.
const PACED_SLEEP: &str = "0.14";
/// How long the paced run is watched.
const PACED_WINDOW: Duration = Duration::from_secs(20);

/// Layers of the 5,000-step run, whose page is only opened.
const LAYERS_5K: usize = 50;

/// `prep`, `width` distinct steps that need it, and `join` needing them all:
/// a fan-out written out step by step, as a generator would.
fn siblings(width: usize) -> String {
    let mut w =
        format!("[workflow]\nname = \"siblings-{width}\"\n\n[steps.prep]\nrun = \"true\"\n\n");
    for i in 0..width {
        w.push_str(&format!(
            "[steps.s{i}]\nneeds = [\"prep\"]\nrun = \"true\"\n\n"
        ));
    }
    let all: Vec<String> = (0..width).map(|i| format!("\"s{i}\"")).collect();
    w.push_str(&format!(
        "[steps.join]\nneeds = [{}]\nrun = \"true\"\n",
        all.join(", ")
    ));
    w
}

/// 20 layers of 100 steps running `command`; each step needs two of the layer before.
fn workflow(command: &str) -> String {
    layered(LAYERS, command)
}

/// `layers` layers of 100 steps running `command`.
fn layered(layers: usize, command: &str) -> String {
    let mut w = format!("[workflow]\nname = \"wide-{}\"\n\n", layers * WIDTH);
    for l in 0..layers {
        for i in 0..WIDTH {
            w.push_str(&format!("[steps.l{l}_s{i}]\n"));
            if l > 0 {
                w.push_str(&format!(
                    "needs = [\"l{}_s{i}\", \"l{}_s{}\"]\n",
                    l - 1,
                    l - 1,
                    (i + 1) % WIDTH
                ));
            }
            w.push_str(&format!("run = \"{command}\"\n\n"));
        }
    }
    w
}

/// Milliseconds from navigation start to the graph drawn.
async fn time_to_graph(b: &Browser, url: &str) -> f64 {
    b.goto(url).await;
    let v = b
        .wait_for(
            "the graph",
            "const m = performance.getEntriesByName('weft:graph-drawn')[0]; return m ? m.startTime : 0",
            LONG,
        )
        .await;
    v.as_f64().unwrap()
}

/// Records frame intervals, and the frames whose main-thread work (script,
/// style, layout) took over 50 ms (Long Animation Frames): a slow interval
/// without such a frame was lost outside the page's own work (raster,
/// compositing, or a CPU busy elsewhere).
const FRAME_RECORDER: &str = "window.weftFrames = []; window.weftBusy = 0;
    new PerformanceObserver((l) => { window.weftBusy += l.getEntries().length; }).observe({type: 'long-animation-frame'});
    let last = performance.now();
    (function tick(t) { window.weftFrames.push(t - last); last = t; requestAnimationFrame(tick); })(performance.now());";

#[tokio::main]
async fn main() {
    let write = |name: &str, source: String| {
        let file =
            std::env::temp_dir().join(format!("weft-bench-{}-{name}.toml", std::process::id()));
        std::fs::write(&file, source).unwrap();
        file.to_str().unwrap().to_string()
    };
    let file = write("fast", workflow("true"));
    let paced_file = write("paced", workflow(&format!("sleep {PACED_SLEEP}")));
    let file_5k = write("5k", layered(LAYERS_5K, "true"));
    let siblings_file = write("siblings", siblings(LAYERS_5K * WIDTH));
    let mut cluster = Cluster::start(2);
    cluster.start_worker();
    cluster.start_worker();
    println!(
        "dashboard bench: {} steps ({LAYERS} layers of {WIDTH}), 4 workers of concurrency 2",
        LAYERS * WIDTH
    );

    // 1. A finished 2,000-step run, whose page `pages` opens.
    let started = Instant::now();
    let done = cluster.submit(&file, &[]).await;
    let view = cluster.wait(&done, LONG).await;
    assert_eq!(view.run.status, "succeeded");
    println!(
        "  run of 2,000 steps took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // `WEFT_BENCH_API_ONLY=1` skips the browser, for work on the server.
    if std::env::var_os("WEFT_BENCH_API_ONLY").is_none() {
        pages(
            &cluster,
            &done,
            &file,
            &paced_file,
            &file_5k,
            &siblings_file,
        )
        .await;
    }

    // 3. The API while a run is live, without and then with 200 SSE clients.
    let http = reqwest::Client::new();
    println!(
        "  while another 2,000-step run goes as fast as the workers can, no SSE clients connected:"
    );
    requests_while_live(&cluster, &http, &done, &file, LONG).await;

    let mut listeners = Vec::new();
    for _ in 0..200 {
        let response = http
            .get(format!("{}/api/events", cluster.url))
            .bearer_auth(&cluster.admin_token)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        listeners.push(tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut bytes = 0usize;
            while let Some(Ok(chunk)) = body.next().await {
                bytes += chunk.len();
            }
            bytes
        }));
    }
    // First with the clients idle, then while a run streams to all of them.
    let mut idle = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let r = http
            .get(format!("{}/api/runs/{done}", cluster.url))
            .bearer_auth(&cluster.admin_token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
        idle.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    idle.sort_by(f64::total_cmp);
    println!(
        "  GET /api/runs/{{id}} (2,000 steps) with 200 idle SSE clients connected: p50 {:.1} ms, p99 {:.1} ms (target p99 under 20 ms)",
        percentile(&idle, 0.5),
        percentile(&idle, 0.99)
    );
    // Like wrk: connections each sending the next request as soon as the
    // last is answered, over keep-alive, for a few seconds.
    for connections in [8, 32] {
        let (latencies, per_second) = hammer(
            &cluster,
            &format!("/api/runs/{done}"),
            connections,
            LOAD_WINDOW,
        )
        .await;
        println!(
            "    under load, {connections} connections for {:.0} s: {per_second:.0} requests/s, p50 {:.1} ms, p99 {:.1} ms",
            LOAD_WINDOW.as_secs_f64(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    println!("  while another 2,000-step run goes at about 100 changes/s, the 200 SSE clients receiving its every change:");
    requests_while_live(&cluster, &http, &done, &paced_file, PACED_WINDOW).await;
    println!("  while another 2,000-step run goes as fast as the workers can, the 200 SSE clients receiving its every change:");
    requests_while_live(&cluster, &http, &done, &file, LONG).await;
    for l in listeners {
        l.abort();
    }
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&paced_file);
    let _ = std::fs::remove_file(&file_5k);
    let _ = std::fs::remove_file(&siblings_file);
}

/// The run pages in Chromium: a finished run opened cold, a 5,000-step run,
/// a live run at full speed and one paced near 100 changes per second.
async fn pages(
    cluster: &Cluster,
    done: &str,
    file: &str,
    paced_file: &str,
    file_5k: &str,
    siblings_file: &str,
) {
    let b = open(cluster).await;
    let url = format!("{}/#/runs/{done}", cluster.url);
    let mut loads = Vec::new();
    for i in 0..6 {
        b.goto(&format!("{}/healthz", cluster.url)).await;
        let ms = time_to_graph(&b, &url).await;
        if i > 0 {
            loads.push(ms); // the first warms the browser's cache of the files
        }
    }
    let nodes = b
        .eval(
            "return document.querySelectorAll('.canvas g.node').length",
            json!([]),
        )
        .await;
    assert_eq!(nodes, json!(LAYERS * WIDTH));
    loads.sort_by(f64::total_cmp);
    println!(
        "  run page drawn (navigation to 2,000 nodes on screen): median {:.0} ms, worst {:.0} ms (target: under 1,000 ms)",
        percentile(&loads, 0.5),
        loads.last().unwrap()
    );

    // 1b. A 5,000-step run (distinct steps, no fan-out): its page while it
    // runs, then opened cold once it has finished.
    let done_5k = cluster.submit(file_5k, &[]).await;
    watch_live(
        &b,
        cluster,
        &done_5k,
        "live 5,000-step run",
        LAYERS_5K * WIDTH,
        None,
    )
    .await;
    assert_eq!(cluster.wait(&done_5k, LONG).await.run.status, "succeeded");
    let mut loads = Vec::new();
    for _ in 0..3 {
        b.goto(&format!("{}/healthz", cluster.url)).await;
        loads.push(time_to_graph(&b, &format!("{}/#/runs/{done_5k}", cluster.url)).await);
    }
    loads.sort_by(f64::total_cmp);
    println!(
        "  5,000-step run page drawn: median {:.0} ms, worst {:.0} ms",
        percentile(&loads, 0.5),
        loads.last().unwrap()
    );

    // 1c. 5,000 distinct sibling steps: drawn as one group node.
    let fan = cluster.submit(siblings_file, &[]).await;
    assert_eq!(cluster.wait(&fan, LONG).await.run.status, "succeeded");
    let mut loads = Vec::new();
    for _ in 0..3 {
        b.goto(&format!("{}/healthz", cluster.url)).await;
        loads.push(time_to_graph(&b, &format!("{}/#/runs/{fan}", cluster.url)).await);
    }
    let nodes = b
        .eval(
            "return document.querySelectorAll('.canvas g.node').length",
            json!([]),
        )
        .await;
    assert_eq!(nodes, json!(3), "prep, the group of 5,000, join");
    loads.sort_by(f64::total_cmp);
    println!(
        "  5,000 sibling steps (one group node) page drawn: median {:.0} ms, worst {:.0} ms",
        percentile(&loads, 0.5),
        loads.last().unwrap()
    );

    // 2. A live run on the page.
    let live = cluster.submit(file, &[]).await;
    watch_live(&b, cluster, &live, "live run", LAYERS * WIDTH, None).await;
    // 2b. The same page while a run goes at about 100 changes per second.
    let paced = cluster.submit(paced_file, &[]).await;
    watch_live(
        &b,
        cluster,
        &paced,
        "paced run",
        LAYERS * WIDTH,
        Some(PACED_WINDOW),
    )
    .await;
    drop(b);
}

/// Opens the page of live run `run` of `nodes` steps and watches it until
/// every node is green, or for `window` (then cancels the run): changes
/// that reached the page, the cost of applying them, long frames.
async fn watch_live(
    b: &Browser,
    cluster: &Cluster,
    run: &str,
    what: &str,
    nodes: usize,
    window: Option<Duration>,
) {
    b.goto(&format!("{}/healthz", cluster.url)).await;
    time_to_graph(b, &format!("{}/#/runs/{run}", cluster.url)).await;
    record_frames(b).await;
    let counter = count_changes(cluster, run, window.unwrap_or(LONG));
    let started = Instant::now();
    match window {
        Some(window) => tokio::time::sleep(window).await,
        None => {
            b.wait_for(
                &format!("the {what} to finish on the page"),
                &format!("return document.querySelectorAll('.canvas g.node.st-succeeded').length === {nodes}"),
                LONG,
            )
            .await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let changes = counter.await.unwrap();
    let (frames, applies, busy) = frames_and_applies(b).await;
    if window.is_some() {
        cluster.client().cancel(run).await.unwrap();
    }
    println!(
        "  {what}: {changes} state changes in {seconds:.1} s ({:.0}/s) reached the page as {} applied updates",
        changes as f64 / seconds,
        applies.len()
    );
    report_frames(&frames, &applies, busy, nodes);
}

/// How long each load of `hammer` lasts.
const LOAD_WINDOW: Duration = Duration::from_secs(5);

/// `connections` clients asking for `path` back to back for `window`: the
/// sorted latencies (ms) and the requests answered per second.
async fn hammer(
    cluster: &Cluster,
    path: &str,
    connections: usize,
    window: Duration,
) -> (Vec<f64>, f64) {
    let until = Instant::now() + window;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let url = format!("{}{path}", cluster.url);
        let token = cluster.admin_token.clone();
        tasks.push(tokio::spawn(async move {
            // One client each, so each keeps its own connection.
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let per_second = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    (all, per_second)
}

/// Latencies of reading a finished and a live 2,000-step run, measured only
/// while the live one (submitted here from `file`) runs.
/// Stops after `window` (cancelling the live run) if it has not ended.
async fn requests_while_live(
    cluster: &Cluster,
    http: &reqwest::Client,
    done: &str,
    file: &str,
    window: Duration,
) {
    let traffic = cluster.submit(file, &[]).await;
    let counter = count_changes(cluster, &traffic, window);
    let started = Instant::now();
    let paths = [
        ("GET /api/runs/{id} (finished)", format!("/api/runs/{done}")),
        (
            "GET /api/runs/{id}/states (finished)",
            format!("/api/runs/{done}/states"),
        ),
        (
            "GET /api/runs/{id} (the live run)",
            format!("/api/runs/{traffic}"),
        ),
        (
            "GET /api/runs/{id}/states (the live run)",
            format!("/api/runs/{traffic}/states"),
        ),
    ];
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut live = true;
    while live && started.elapsed() < window {
        for (k, (_, path)) in paths.iter().enumerate() {
            let t = Instant::now();
            let r = http
                .get(format!("{}{path}", cluster.url))
                .bearer_auth(&cluster.admin_token)
                .send()
                .await
                .unwrap();
            let status = r.status();
            assert!(
                status.is_success(),
                "{status}: {}",
                r.text().await.unwrap_or_default()
            );
            let body = r.bytes().await.unwrap();
            latencies[k].push(t.elapsed().as_secs_f64() * 1000.0);
            if k == paths.len() - 1 {
                let states: Value = serde_json::from_slice(&body).unwrap();
                live = states["status"] == "running";
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    if live {
        cluster.client().cancel(&traffic).await.unwrap();
    }
    let changes = counter.await.unwrap();
    println!(
        "    ({changes} changes of the live run in {seconds:.1} s: {:.0}/s)",
        changes as f64 / seconds
    );
    for ((what, _), mut l) in paths.iter().zip(latencies) {
        l.sort_by(f64::total_cmp);
        println!(
            "    {what}: p50 {:.1} ms, p99 {:.1} ms ({} requests)",
            percentile(&l, 0.5),
            percentile(&l, 0.99),
            l.len()
        );
    }
    cluster.wait(&traffic, LONG).await;
}

/// Starts recording frames once the graph's first drawing is over (its
/// frame would count as long).
async fn record_frames(b: &Browser) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.eval(FRAME_RECORDER, json!([])).await;
}

/// The page's frame times and update costs (ms), sorted, and how many
/// frames its own work made long.
async fn frames_and_applies(b: &Browser) -> (Vec<f64>, Vec<f64>, u64) {
    let page: Value = b
        .eval(
            "return {frames: window.weftFrames, busy: window.weftBusy, applies: performance.getEntriesByName('weft:apply-update').map((m) => m.duration)}",
            json!([]),
        )
        .await;
    let sorted = |key: &str| {
        let mut v: Vec<f64> = page[key]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    (
        sorted("frames"),
        sorted("applies"),
        page["busy"].as_u64().unwrap_or(0),
    )
}

fn report_frames(frames: &[f64], applies: &[f64], busy: u64, nodes: usize) {
    let long = frames.iter().filter(|f| **f > 50.0).count();
    println!(
        "    applying an update ({nodes} nodes): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(applies, 0.5),
        percentile(applies, 0.99),
        applies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "    frames: {} drawn, p50 {:.1} ms, p99 {:.1} ms, {long} over 50 ms ({busy} made long by the page's own work)",
        frames.len(),
        percentile(frames, 0.5),
        percentile(frames, 0.99)
    );
}

/// Counts the run's change events until it finishes, or for `window`.
fn count_changes(cluster: &Cluster, run: &str, window: Duration) -> tokio::task::JoinHandle<usize> {
    let url = format!("{}/api/events?run={run}", cluster.url);
    let token = cluster.admin_token.clone();
    tokio::spawn(async move {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let mut body = response.bytes_stream();
        let mut count = 0;
        let mut text = String::new();
        let until = tokio::time::Instant::now() + window;
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(until, body.next()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(cut) = text.find("\n\n") {
                let event: String = text.drain(..cut + 2).collect();
                if event.contains("event: run") {
                    count += 1;
                    if event.contains("\"finished\":true") {
                        return count;
                    }
                }
            }
        }
        count
    })
}
