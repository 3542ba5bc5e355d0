//! What a waiting run costs the server that drives it, in heap bytes: the
//! driver (its task, state, lease keeper) of runs waiting for a concurrency
//! key and of runs waiting at an approval step, measured with a counting
//! allocator around submitting N of each (the store is in memory and
//! counted too: a record and a few events per run). No worker runs: a
//! waiting run holds no worker slot, and nothing here could take one.
//!
//! `cargo bench -p weft-orchestrator --bench waiting` (RUNS, default 1000).

use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use weft_core::ports::{Clock, JobQueue, RunStore};
use weft_orchestrator::{NewRun, Options, Service, SystemClock};
use weft_testkit::MemoryRunStore;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KEYED: &str = "[workflow]\nname = \"keyed\"\nconcurrency = { key = \"bench\" }\n[params]\ndataset = \"a\"\n[steps.train]\nrun = \"sleep 3600\"\n";
const GATED: &str = "[workflow]\nname = \"gated\"\n[steps.gate]\napprove = { timeout = \"1h\", inputs = { reason = \"string\" } }\n[steps.ship]\nneeds = [\"gate\"]\nrun = \"true\"\n";

fn new_run(source: &str) -> NewRun {
    let workflow = weft_core::spec::load(source).unwrap();
    let params = workflow.param_defaults();
    NewRun::plain(workflow, source.into(), "bench.toml".into(), params)
}

async fn submit(service: &Service, source: &str, n: usize) {
    for _ in 0..n {
        service
            .submit(
                new_run(source),
                Box::new(|_: &weft_core::run::RunState, _: &weft_core::run::Event| {}),
            )
            .await
            .unwrap();
    }
}

fn live() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

/// Heap bytes now, once the runs just submitted have settled: all of
/// them, and the in-memory store's share (what a copy of it takes).
async fn settled(store: &MemoryRunStore) -> (isize, isize) {
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let all = live();
    let copy = store.snapshot();
    let stored = live() - all;
    drop(copy);
    (all, stored)
}

fn main() {
    let n: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = MemoryRunStore::new();
        let queue: Arc<dyn JobQueue> = Arc::new(weft_queue_local::LocalJobQueue::new());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let runs: Arc<dyn RunStore> = Arc::new(store.clone());
        let service = Service::new(
            queue,
            runs,
            clock,
            Arc::new(|_: &str, _: &weft_core::run::TaskId, _: u32| {}),
            Options {
                slot_poll_ms: 30_000,
                ..Options::default()
            },
        )
        .with_concurrency_slots(Arc::new(store.clone()));
        // Warm-up: the first of each kind, the one that holds the key, and
        // the allocator's and tokio's first growth.
        submit(&service, KEYED, 50).await;
        submit(&service, GATED, 50).await;
        let before = settled(&store).await;
        submit(&service, KEYED, n).await;
        let keyed = settled(&store).await;
        submit(&service, GATED, n).await;
        let gated = settled(&store).await;
        assert_eq!(service.active_runs(), 2 * (n + 50));
        let per = |a: isize, b: isize| (b - a) as f64 / n as f64 / 1024.0;
        let line = |what: &str, a: (isize, isize), b: (isize, isize)| {
            let (all, stored) = (per(a.0, b.0), per(a.1, b.1));
            println!(
                "{what}: {:.2} KiB per run held by the server, {:.2} KiB more in the store ({:.2} in all)",
                all - stored,
                stored,
                all
            );
        };
        println!("{n} runs of each kind, heap bytes counted by the allocator");
        line("waiting for a concurrency key", before, keyed);
        line("waiting at an approval step  ", keyed, gated);
    });
}
