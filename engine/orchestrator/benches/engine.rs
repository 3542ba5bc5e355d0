//! Engine overhead benchmarks (`cargo bench -p weft-orchestrator`).
//!
//! - chain: 1,000 join steps in a chain, driven through the orchestrator
//!   with the durable embedded store (target: at most 50 µs per step);
//! - fan-out: one for-each join step over 10,000 items (target: at least
//!   50,000 steps/s);
//! - dispatched: 1,000 chained no-op jobs through the local queue to an
//!   in-process worker loop and back, every event committed to redb;
//! - cache-hit: 1,000 chained steps whose results are all cached, against
//!   1,000 join steps (target: a hit costs at most 5 ms over a join step);
//! - check: parsing and validating a generated 100,000-step workflow
//!   (target: under 1 s).

mod common;

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_core::ports::{JobQueue, RunStore};
use weft_queue_local::LocalJobQueue;
use weft_store_embedded::EmbeddedRunStore;

fn fan_out(n: usize) -> String {
    format!("[workflow]\nname = 'fan'\n[params]\nitems = {:?}\n[steps.each]\nfor-each = '{{{{ params.items }}}}'\n[steps.done]\nneeds = ['each']\n", (0..n).collect::<Vec<_>>())
}

async fn drive(source: &str, with_worker: bool) -> (Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RunStore> = Arc::new(EmbeddedRunStore::open(dir.path()).unwrap());
    let queue: Arc<dyn JobQueue> = Arc::new(LocalJobQueue::new());
    let worker = with_worker.then(|| (queue.clone(), 1));
    common::drive(source, queue, store, worker, Default::default(), None).await
}

/// 1,000 chained cacheable no-op steps, twice over one store: the first
/// run fills the cache (through a no-op worker), the second (timed) hits
/// it for every step.
async fn drive_cache_hits() -> (Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Arc::new(EmbeddedRunStore::open(dir.path()).unwrap());
    let store: Arc<dyn RunStore> = embedded.clone();
    let caching = || {
        Some(weft_orchestrator::StepCaching {
            cache: embedded.clone(),
            secrets: None,
        })
    };
    let src = common::chain(1000, "run = 'true'\ncache = true");
    let queue: Arc<dyn JobQueue> = Arc::new(LocalJobQueue::new());
    let worker = Some((queue.clone(), 1));
    common::drive(
        &src,
        queue,
        store.clone(),
        worker,
        Default::default(),
        caching(),
    )
    .await;
    // No worker this time: a step that missed would never finish.
    let queue: Arc<dyn JobQueue> = Arc::new(LocalJobQueue::new());
    common::drive(&src, queue, store, None, Default::default(), caching()).await
}

fn best_of<T>(n: usize, mut f: impl FnMut() -> (Duration, T)) -> (Duration, T) {
    let mut best = f();
    for _ in 1..n {
        let r = f();
        if r.0 < best.0 {
            best = r;
        }
    }
    best
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    println!(
        "weft engine benchmarks ({} CPUs)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    if wanted("chain") {
        let src = common::chain(1000, "");
        let (t, n) = best_of(5, || rt.block_on(drive(&src, false)));
        println!(
            "chain      1,000 join steps     {:>9.3} ms  {:>8.2} µs/step",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e6 / n as f64
        );
    }
    if wanted("fan-out") {
        let src = fan_out(10_000);
        let (t, n) = best_of(5, || rt.block_on(drive(&src, false)));
        println!(
            "fan-out    10,000 instances     {:>9.3} ms  {:>8.0} steps/s",
            t.as_secs_f64() * 1e3,
            n as f64 / t.as_secs_f64()
        );
    }
    if wanted("dispatched") {
        let src = common::chain(1000, "run = 'true'");
        let (t, n) = best_of(3, || rt.block_on(drive(&src, true)));
        println!("dispatched 1,000 no-op jobs     {:>9.3} ms  {:>8.2} µs/step (local queue + one durable redb event per step)", t.as_secs_f64() * 1e3, t.as_secs_f64() * 1e6 / n as f64);
    }
    if wanted("cache-hit") {
        let join = common::chain(1000, "");
        let (joins, n) = best_of(5, || rt.block_on(drive(&join, false)));
        let (hits, _) = best_of(5, || rt.block_on(drive_cache_hits()));
        let per = |t: Duration| t.as_secs_f64() * 1e6 / n as f64;
        println!(
            "cache-hit  1,000 cached steps   {:>9.3} ms  {:>8.2} µs/step; join steps {:.2} µs/step; a hit costs {:.3} ms over a join step (target: at most 5 ms)",
            hits.as_secs_f64() * 1e3,
            per(hits),
            per(joins),
            (per(hits) - per(joins)) / 1e3
        );
    }
    if wanted("check") {
        let mut src = String::from("[workflow]\nname = 'big'\n[params]\nn = 1\n");
        for i in 0..100_000 {
            let needs = if i == 0 {
                String::new()
            } else {
                format!("needs = ['s{}']\n", i - 1)
            };
            writeln!(
                src,
                "[steps.s{i}]\n{needs}run = 'echo {{{{ params.n }}}}'\ntimeout = '1m'"
            )
            .unwrap();
        }
        let (t, _) = best_of(3, || {
            let start = Instant::now();
            let w = weft_core::spec::load(&src).unwrap();
            (start.elapsed(), w.steps.len())
        });
        println!(
            "check      100,000-step file    {:>9.3} ms  ({} MiB)",
            t.as_secs_f64() * 1e3,
            src.len() >> 20
        );
    }
}
