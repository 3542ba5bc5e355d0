//! Reading a run through a `ReadCache` replays only the events that came
//! since the last read, and gives the same state as a replay from scratch.

use serde_json::json;
use weft_core::ports::{EventLog, Leases, RunIndex, RunRecord};
use weft_core::run::{Event, Outcome, RunStatus, TaskId};
use weft_orchestrator::{load_run, load_run_with, ReadCache};
use weft_store_embedded::EmbeddedRunStore;

const SOURCE: &str = "[workflow]\nname = \"two\"\n[steps.a]\nrun = \"true\"\n[steps.b]\nneeds = [\"a\"]\nrun = \"echo {{ steps.a.outputs.n }}\"\n";

fn record(id: &str) -> RunRecord {
    RunRecord {
        workflow: "two".into(),
        file: "two.toml".into(),
        source: SOURCE.into(),
        ..weft_testkit::run_record(id, 1)
    }
}

#[tokio::test]
async fn a_cached_read_applies_only_new_events_and_agrees_with_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedRunStore::open(dir.path()).unwrap();
    store.create_run(&record("r1")).await.unwrap();
    let cache = ReadCache::new();
    let task = |s: &str| TaskId::new(s, None);
    let batches = vec![
        vec![Event::Started { at: 10 }],
        vec![Event::TaskStarted {
            task: task("a"),
            attempt: 1,
            worker: "w".into(),
            at: 11,
            execution: 1,
        }],
        vec![Event::TaskFinished {
            task: task("a"),
            attempt: 1,
            outcome: Outcome::Succeeded {
                outputs: json!({"n": 7}),
                artifacts: Default::default(),
            },
            at: 12,
            hooks: vec![],
            worker: "w".into(),
            execution: 1,
        }],
        vec![
            Event::TaskStarted {
                task: task("b"),
                attempt: 1,
                worker: "w".into(),
                at: 13,
                execution: 1,
            },
            Event::TaskFinished {
                task: task("b"),
                attempt: 1,
                outcome: Outcome::Succeeded {
                    outputs: json!({}),
                    artifacts: Default::default(),
                },
                at: 14,
                hooks: vec![],
                worker: "w".into(),
                execution: 1,
            },
        ],
    ];
    let fence = store.lease("r1", "o", 0, 60_000).await.unwrap().unwrap();
    let mut seen = 0;
    // A reader still holding an earlier read keeps what it read.
    let mut held: Option<(u64, std::sync::Arc<weft_core::run::RunState>, String)> = None;
    for batch in batches {
        store
            .append_events("r1", &fence, seen, &batch)
            .await
            .unwrap();
        seen += batch.len() as u64;
        if let Some((at, state, before)) = held.take() {
            let _ = load_run_with(&store, "r1", &cache).await.unwrap();
            assert_eq!(
                format!("{:?}", state.steps),
                before,
                "read after {at} events changed"
            );
        }
        // Read twice: once with the new events, once with none new.
        for _ in 0..2 {
            let (_, cached) = load_run_with(&store, "r1", &cache).await.unwrap().unwrap();
            let (_, fresh) = load_run(&store, "r1").await.unwrap().unwrap();
            // Everything but the plan (parsed apart, its maps may print in another order).
            let same = |s: &weft_core::run::RunState| {
                format!(
                    "{:?} {:?} {:?} {:?}",
                    s.status, s.steps, s.started_at, s.finished_at
                )
            };
            assert_eq!(same(&cached), same(&fresh), "after {seen} events");
        }
        let (_, state) = load_run_with(&store, "r1", &cache).await.unwrap().unwrap();
        let before = format!("{:?}", state.steps);
        held = Some((seen, state, before));
    }
    drop(held);
    let (_, state) = load_run_with(&store, "r1", &cache).await.unwrap().unwrap();
    assert_eq!(state.status, RunStatus::Succeeded);
    assert!(load_run_with(&store, "nope", &cache)
        .await
        .unwrap()
        .is_none());
}
