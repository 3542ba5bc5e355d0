//! Every workflow in `workflows/` runs to its expected outcome
//! (`workflows/expected/<name>.toml`).

use std::collections::BTreeMap;

use serde_json::Value as Json;
use weft_store_embedded::EmbeddedRunStore;

use crate::support::{repo, text, weft};

#[derive(Debug, Default)]
struct Expected {
    status: String,
    summary_contains: Option<String>,
    steps: BTreeMap<String, String>,
    outputs: BTreeMap<String, Json>,
    tasks: BTreeMap<String, usize>,
    attempts: BTreeMap<String, usize>,
}

fn expected(name: &str) -> Expected {
    let path = repo()
        .join("workflows/expected")
        .join(format!("{name}.toml"));
    let raw: toml::Table = toml::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    let map = |key: &str| {
        raw.get(key)
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default()
    };
    let json = |v: &toml::Value| serde_json::to_value(v).unwrap();
    Expected {
        status: raw["status"].as_str().unwrap().to_string(),
        summary_contains: raw
            .get("summary_contains")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        steps: map("steps")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect(),
        outputs: map("outputs")
            .iter()
            .map(|(k, v)| (k.clone(), json(v)))
            .collect(),
        tasks: map("tasks")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_integer().unwrap() as usize))
            .collect(),
        attempts: map("attempts")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_integer().unwrap() as usize))
            .collect(),
    }
}

async fn run_example(name: &str) {
    let data = tempfile::tempdir().unwrap();
    let file = format!("workflows/{name}.toml");
    let out = weft(&["run", &file, "--plain"], data.path());
    let want = expected(name);
    assert_eq!(
        out.status.code(),
        Some(if want.status == "succeeded" { 0 } else { 1 }),
        "{}",
        text(&out)
    );

    let store = EmbeddedRunStore::open(data.path()).unwrap();
    let runs = weft_core::ports::RunStore::list_runs(&store, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    let (record, state) = weft_orchestrator::load_run(&store, &runs[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status.as_str(), want.status, "{}", text(&out));
    assert_eq!(
        state.status, record.status,
        "replayed state agrees with the record"
    );
    if let Some(s) = &want.summary_contains {
        assert!(
            record.summary.as_deref().unwrap_or("").contains(s.as_str()),
            "summary {:?} lacks {s:?}",
            record.summary
        );
    }
    for (step, status) in &want.steps {
        let i = state
            .step_index(step)
            .unwrap_or_else(|| panic!("no step {step}"));
        assert_eq!(
            state.steps[i].status.as_str(),
            status,
            "step {step}\n{}",
            text(&out)
        );
    }
    for (step, outputs) in &want.outputs {
        let i = state.step_index(step).unwrap();
        assert_eq!(
            state.steps[i].outputs.as_ref(),
            Some(outputs),
            "outputs of {step}"
        );
    }
    for (step, n) in &want.tasks {
        assert_eq!(
            state.steps[state.step_index(step).unwrap()].tasks.len(),
            *n,
            "instances of {step}"
        );
    }
    for (step, n) in &want.attempts {
        assert_eq!(
            state.steps[state.step_index(step).unwrap()].tasks[0]
                .attempts
                .len(),
            *n,
            "attempts of {step}"
        );
    }
}

#[tokio::test]
async fn every_example_has_an_expected_outcome() {
    for entry in std::fs::read_dir(repo().join("workflows")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            assert!(
                repo()
                    .join("workflows/expected")
                    .join(format!("{name}.toml"))
                    .exists(),
                "workflows/{name}.toml has no workflows/expected/{name}.toml"
            );
        }
    }
}

#[tokio::test]
async fn hello_runs_three_steps() {
    run_example("hello").await;
}

#[tokio::test]
async fn diamond_passes_outputs_between_steps() {
    run_example("diamond").await;
}

#[tokio::test]
async fn fan_out_runs_every_item_and_fans_in() {
    run_example("fan-out").await;
}

#[tokio::test]
async fn retries_succeed_on_the_third_attempt() {
    run_example("retries").await;
}

#[tokio::test]
async fn timeout_kills_the_step_and_fails_the_run() {
    let started = std::time::Instant::now();
    run_example("timeout").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "the 30s sleeps were not killed"
    );
}

#[tokio::test]
async fn when_false_skips_a_step() {
    run_example("when-skip").await;
}

#[tokio::test]
async fn failing_step_skips_its_dependents() {
    run_example("failure").await;
}
