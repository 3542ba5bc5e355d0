//! Distributed engine overhead (`cargo bench -p weft-orchestrator --bench distributed`):
//! no-op steps through the real RabbitMQ (persistent messages, publisher
//! confirms, manual acks) and Redis (every event stored), one orchestrator
//! and one in-process worker loop that acks each job with an immediate
//! success (no process is spawned: this measures the engine, not `sh`).
//!
//! Shapes: a chain of 200 steps (goal: at most 1.5 ms per step), a fan-out
//! of 2,000 with one join (goal: at least 5,000 steps/s), and 10 layers of
//! 100 steps each joined to the next (goal: at least 3,000 steps/s). And
//! `window`: a fan-out of 20,000 with the default dispatch window (at most
//! 1,000 of a run's jobs queued at once) against no window (all 20,000
//! published at once), in turns in one process (goal: within 10%).

mod common;

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use weft_core::ports::{Clock, JobQueue, RunStore};
use weft_orchestrator::{Options, SystemClock};

fn fan_out(n: usize) -> String {
    format!("[workflow]\nname = 'fan'\n[steps.each]\nfor-each = {:?}\nrun = 'true'\n[steps.join]\nneeds = ['each']\nrun = 'true'\n", (0..n).collect::<Vec<_>>())
}

fn layers(layers: usize, width: usize) -> String {
    let mut s = String::from("[workflow]\nname = 'layers'\n");
    for l in 0..layers {
        let needs = if l == 0 {
            String::new()
        } else {
            format!("needs = ['l{}']\n", l - 1)
        };
        writeln!(
            s,
            "[steps.l{l}]\n{needs}for-each = {:?}\nrun = 'true'",
            (0..width).collect::<Vec<_>>()
        )
        .unwrap();
    }
    s
}

async fn run_once(source: &str, options: Options) -> (Duration, usize) {
    let prefix = format!("weft-bench-{}-{}", std::process::id(), SystemClock.now());
    let slots = 64;
    let amqp = weft_queue_amqp::Options {
        prefix: prefix.clone(),
        prefetch: slots as u16,
        expire_after_ms: Some(120_000),
        ..Default::default()
    };
    let redis = weft_store_redis::Options {
        prefix,
        expire_after_secs: Some(300),
        ..Default::default()
    };
    let worker_queue: Arc<dyn JobQueue> = Arc::new(
        weft_queue_amqp::AmqpJobQueue::connect(amqp.clone())
            .await
            .unwrap(),
    );
    let queue: Arc<dyn JobQueue> =
        Arc::new(weft_queue_amqp::AmqpJobQueue::connect(amqp).await.unwrap());
    let store: Arc<dyn RunStore> = Arc::new(
        weft_store_redis::RedisRunStore::connect(redis)
            .await
            .unwrap(),
    );
    common::drive(
        source,
        queue,
        store,
        Some((worker_queue, slots)),
        options,
        None,
    )
    .await
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    println!(
        "weft distributed benchmarks: RabbitMQ + Redis on 127.0.0.1 ({} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let best = |src: &str| {
        (0..3)
            .map(|_| rt.block_on(run_once(src, Options::default())))
            .min_by_key(|r| r.0)
            .unwrap()
    };
    if wanted("chain") {
        let (t, n) = best(&common::chain(200, "run = 'true'"));
        println!(
            "chain    200 steps            {:>9.1} ms  {:>7.2} ms/step",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e3 / n as f64
        );
    }
    if wanted("fan-out") {
        let (t, n) = best(&fan_out(2000));
        println!(
            "fan-out  2,000 + join         {:>9.1} ms  {:>7.0} steps/s",
            t.as_secs_f64() * 1e3,
            n as f64 / t.as_secs_f64()
        );
    }
    if wanted("layers") {
        let (t, n) = best(&layers(10, 100));
        println!(
            "layers   10 x 100             {:>9.1} ms  {:>7.0} steps/s",
            t.as_secs_f64() * 1e3,
            n as f64 / t.as_secs_f64()
        );
    }
    if wanted("window") {
        let src = fan_out(20_000);
        let options = |window: u32| Options {
            dispatch_window: window,
            max_tasks_per_step: 20_000,
            ..Options::default()
        };
        let (mut bounded, mut unbounded) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            bounded.push(rt.block_on(run_once(&src, options(1_000))).0);
            unbounded.push(rt.block_on(run_once(&src, options(0))).0);
        }
        let (b, u) = (
            *bounded.iter().min().unwrap(),
            *unbounded.iter().min().unwrap(),
        );
        for (name, t) in [("window 1,000", b), ("no window   ", u)] {
            println!(
                "fan-out  20,000, {name}  {:>9.1} ms  {:>7.0} steps/s",
                t.as_secs_f64() * 1e3,
                20_001.0 / t.as_secs_f64()
            );
        }
        println!(
            "         bounded / unbounded time: {:.3}",
            b.as_secs_f64() / u.as_secs_f64()
        );
    }
}
