//! The dashboard's log viewer and step finder at size, in headless Chromium
//! against a real server and worker (RabbitMQ, Redis):
//!
//! - a failed step's 100,000-line log: milliseconds from navigation to its
//!   last lines drawn (`weft:log-shown`), and a scripted scroll through it
//!   (frame intervals: median, p99, the longest; frames over 50 ms);
//! - a 5,000-step graph: how long finding a step and lighting it takes, from
//!   the keystroke's `input` event to the next frame drawn.
//!
//! Run: `cargo build --release -p weft-cli && cargo bench -p weft-tests --bench log_viewer`
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

use std::time::Duration;

use serde_json::{json, Value};

use cluster::Cluster;
use common::{open, percentile};

const LONG: Duration = Duration::from_secs(300);
const LINES: usize = 100_000;

fn failing_log() -> String {
    format!(
        "[workflow]\nname = \"long-log\"\n[steps.talk]\nrun = \"seq 1 {LINES} | sed 's/^/line /'; exit 3\"\n"
    )
}

/// 50 layers of 100 steps, each needing two of the layer before.
fn graph_5k() -> String {
    let mut w = String::from("[workflow]\nname = \"wide-5000\"\n\n");
    for l in 0..50 {
        for i in 0..100 {
            w.push_str(&format!("[steps.l{l}_s{i}]\n"));
            if l > 0 {
                w.push_str(&format!(
                    "needs = [\"l{}_s{i}\", \"l{}_s{}\"]\n",
                    l - 1,
                    l - 1,
                    (i + 1) % 100
                ));
            }
            w.push_str("run = \"sleep 60\"\n\n");
        }
    }
    w
}

/// Scrolls the log 120 frames, 900 px a frame; the frame intervals.
const SCROLL: &str = "const done = arguments[arguments.length - 1];
    const v = document.querySelector('.log-view');
    v.scrollTop = 0;
    const frames = [];
    let last = performance.now();
    let n = 0;
    (function tick(t) {
      frames.push(t - last); last = t;
      v.scrollTop += 900;
      if (++n < 120) requestAnimationFrame(tick); else done(frames.slice(2));
    })(performance.now());";

/// Types a step's id into the finder; ms from the input event to the next frame.
const FIND: &str = "const done = arguments[arguments.length - 1];
    const input = document.querySelector('.graph-find');
    input.value = arguments[0];
    const t0 = performance.now();
    input.dispatchEvent(new Event('input'));
    const sync = performance.now() - t0;
    requestAnimationFrame(() => setTimeout(() => done([sync, performance.now() - t0,
      document.querySelectorAll('g.node.found').length]), 0));";

#[tokio::main]
async fn main() {
    let cluster = Cluster::start(1);
    let log_run = cluster.submit_text(&failing_log()).await;
    cluster.wait(&log_run, LONG).await;
    let b = open(&cluster).await;

    let mut opened = Vec::new();
    for _ in 0..5 {
        b.goto(&format!(
            "{}/?{}#/runs/{log_run}",
            cluster.url,
            opened.len()
        ))
        .await;
        let ms = b
            .wait_for(
                "the log shown",
                "const m = performance.getEntriesByName('weft:log-shown')[0]; return m ? m.startTime : 0",
                LONG,
            )
            .await;
        opened.push(ms.as_f64().unwrap());
    }
    opened.sort_by(f64::total_cmp);
    println!(
        "a failed step's {LINES}-line log, navigation to its end drawn: median {:.0} ms (of 5: {:?})",
        percentile(&opened, 0.5),
        opened.iter().map(|m| m.round() as u64).collect::<Vec<_>>()
    );

    let frames: Value = b.eval_async(SCROLL, json!([])).await;
    let mut frames: Vec<f64> = frames
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    frames.sort_by(f64::total_cmp);
    println!(
        "scrolling it, 900 px a frame for {} frames: median {:.1} ms ({:.0} fps), p99 {:.1} ms, longest {:.1} ms, over 50 ms: {}",
        frames.len(),
        percentile(&frames, 0.5),
        1000.0 / percentile(&frames, 0.5),
        percentile(&frames, 0.99),
        frames.last().copied().unwrap_or(f64::NAN),
        frames.iter().filter(|f| **f > 50.0).count()
    );

    let graph_run = cluster.submit_text(&graph_5k()).await;
    b.goto(&format!("{}/?graph#/runs/{graph_run}", cluster.url))
        .await;
    b.wait_for(
        "the 5,000-step graph",
        "return performance.getEntriesByName('weft:graph-drawn').length && document.querySelectorAll('.canvas g.node').length",
        LONG,
    )
    .await;
    let mut sync = Vec::new();
    let mut framed = Vec::new();
    for i in 0..10 {
        let got = b
            .eval_async(FIND, json!([format!("l{}_s{}", 10 + i * 3, 10 + 7 * i)]))
            .await;
        sync.push(got[0].as_f64().unwrap());
        framed.push(got[1].as_f64().unwrap());
        assert_eq!(got[2], json!(1), "one step found");
    }
    sync.sort_by(f64::total_cmp);
    framed.sort_by(f64::total_cmp);
    println!(
        "finding a step in the 5,000-step graph: the search {:.1} ms median, {:.1} ms the slowest; to the next frame drawn {:.1} ms median, {:.1} ms the slowest (10 searches)",
        percentile(&sync, 0.5),
        sync.last().unwrap(),
        percentile(&framed, 0.5),
        framed.last().unwrap()
    );
    let _ = cluster.client().cancel(&graph_run).await;
}
