//! What a live 2,000-step run's views cost the server, on their own: the
//! run state brought up to date by new events, `RunView` and `RunStates`
//! built and serialized. No I/O; the figures are the handler's own work,
//! which the dashboard bench measures again under load.
//!
//! Run: `cargo bench -p weft-api --bench views`

use std::time::Instant;

use serde_json::json;
use weft_api::views::{RunStates, RunView};
use weft_core::ports::RunRecord;
use weft_core::run::{apply, Event, Outcome, Plan, RunState, RunStatus, TaskId};

const LAYERS: usize = 20;
const WIDTH: usize = 100;

fn source() -> String {
    let mut w = String::from("[workflow]\nname = \"wide\"\n\n");
    for l in 0..LAYERS {
        for i in 0..WIDTH {
            w.push_str(&format!("[steps.l{l}_s{i}]\n"));
            if l > 0 {
                w.push_str(&format!("needs = [\"l{}_s{i}\"]\n", l - 1));
            }
            w.push_str("run = \"true\"\n\n");
        }
    }
    w
}

fn task(l: usize, i: usize) -> TaskId {
    TaskId {
        step: format!("l{l}_s{i}"),
        index: None,
    }
}

/// Started and finished events for the first `layers` layers.
fn events(layers: std::ops::Range<usize>) -> Vec<Event> {
    let mut out = Vec::new();
    for l in layers {
        for i in 0..WIDTH {
            out.push(Event::TaskStarted {
                task: task(l, i),
                attempt: 1,
                worker: "w1".into(),
                at: 1_000 + l as u64,
                execution: 1,
            });
            out.push(Event::TaskFinished {
                task: task(l, i),
                attempt: 1,
                outcome: Outcome::Succeeded {
                    outputs: json!({"n": i}),
                    artifacts: Default::default(),
                },
                at: 1_001 + l as u64,
                hooks: vec![],
                worker: "w1".into(),
                execution: 1,
            });
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let source = source();
    let plan = Plan::new(weft_core::spec::load(&source).expect("the bench workflow loads"));
    let record = RunRecord {
        submitted_by: None,
        limits: Default::default(),
        policy: None,
        cache: Default::default(),
        id: "bench".into(),
        workflow: "wide".into(),
        file: "wide.toml".into(),
        source: source.clone(),
        params: serde_json::Map::new(),
        status: RunStatus::Running,
        created_at: 1,
        finished_at: None,
        summary: None,
        plugins: Default::default(),
        priority: 0,
    };
    let mut state = RunState::new("bench", plan, serde_json::Map::new());
    apply(&mut state, Event::Started { at: 1 });
    for e in events(0..LAYERS / 2) {
        apply(&mut state, e);
    }
    let rounds = 200;
    let (mut copy, mut run, mut states, mut apply_ms) = (vec![], vec![], vec![], vec![]);
    let mut bytes = (0, 0);
    let next = events(LAYERS / 2..LAYERS / 2 + 1);
    for _ in 0..rounds {
        let t = Instant::now();
        let mut s = state.clone();
        copy.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        for e in next.iter().take(8) {
            apply(&mut s, e.clone());
        }
        apply_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let json = serde_json::to_vec(&RunView::new(&record, &s)).unwrap();
        run.push(t.elapsed().as_secs_f64() * 1e3);
        bytes.0 = json.len();
        let t = Instant::now();
        let json = serde_json::to_vec(&RunStates::new(&record, &s)).unwrap();
        states.push(t.elapsed().as_secs_f64() * 1e3);
        bytes.1 = json.len();
    }
    println!(
        "views of a live {}-step run, half done (medians of {rounds}):",
        LAYERS * WIDTH
    );
    println!(
        "  copying its state (what each read did before it was shared): {:.2} ms",
        median(copy)
    );
    println!("  applying 8 new events: {:.3} ms", median(apply_ms));
    println!(
        "  GET /api/runs/{{id}}: RunView built and serialized: {:.2} ms ({} KB)",
        median(run),
        bytes.0 / 1024
    );
    println!(
        "  GET /api/runs/{{id}}/states: RunStates built and serialized: {:.2} ms ({} KB)",
        median(states),
        bytes.1 / 1024
    );
}
