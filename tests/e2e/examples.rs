//! Every workflow in `workflows/` reaches its expected outcome
//! (`workflows/expected/<name>.toml`), embedded and distributed alike.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use weft_api::views::RunView;

use crate::cluster::Cluster;
use crate::support::{
    newest_embedded_run, plugin_wasm, push_example_plugins, repo, text, weft, EXAMPLE_PLUGINS,
};

#[derive(Debug, Default)]
pub struct Expected {
    status: String,
    summary_contains: Option<String>,
    steps: BTreeMap<String, String>,
    outputs: BTreeMap<String, Json>,
    tasks: BTreeMap<String, usize>,
    attempts: BTreeMap<String, usize>,
}

pub fn examples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

pub fn expected(name: &str) -> Expected {
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

/// Asserts that `view` is what `workflows/expected/<name>.toml` says.
pub fn check_outcome(name: &str, view: &RunView, context: &str) {
    let want = expected(name);
    assert_eq!(
        view.run.status, want.status,
        "{name}: run status\n{context}"
    );
    if let Some(s) = &want.summary_contains {
        assert!(
            view.run
                .summary
                .as_deref()
                .unwrap_or("")
                .contains(s.as_str()),
            "{name}: summary {:?} lacks {s:?}",
            view.run.summary
        );
    }
    let step = |id: &str| {
        view.steps
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("{name}: no step {id}"))
    };
    for (id, status) in &want.steps {
        assert_eq!(&step(id).status, status, "{name}: step {id}\n{context}");
    }
    for (id, outputs) in &want.outputs {
        assert_eq!(
            step(id).outputs.as_ref(),
            Some(outputs),
            "{name}: outputs of {id}"
        );
    }
    for (id, n) in &want.tasks {
        assert_eq!(step(id).tasks.len(), *n, "{name}: instances of {id}");
    }
    for (id, n) in &want.attempts {
        assert_eq!(
            step(id).tasks[0].attempts.len(),
            *n,
            "{name}: attempts of {id}"
        );
    }
}

async fn run_embedded(name: &str) {
    let data = tempfile::tempdir().unwrap();
    if name == "plugins" {
        push_example_plugins(data.path());
    }
    let file = format!("workflows/{name}.toml");
    let out = weft(&["run", &file, "--plain"], data.path());
    let want = expected(name);
    assert_eq!(
        out.status.code(),
        Some(if want.status == "succeeded" { 0 } else { 1 }),
        "{}",
        text(&out)
    );
    let (store, record, state) = newest_embedded_run(data.path()).await;
    let runs = weft_core::ports::RunIndex::list_runs(&store, 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "one run per example");
    assert_eq!(
        state.status, record.status,
        "replayed state agrees with the record"
    );
    check_outcome(name, &RunView::new(&record, &state), &text(&out));
}

#[tokio::test]
async fn every_example_has_an_expected_outcome() {
    for name in examples() {
        assert!(
            repo()
                .join("workflows/expected")
                .join(format!("{name}.toml"))
                .exists(),
            "workflows/{name}.toml has no workflows/expected/{name}.toml"
        );
    }
}

#[tokio::test]
async fn hello_runs_three_steps() {
    run_embedded("hello").await;
}

#[tokio::test]
async fn diamond_passes_outputs_between_steps() {
    run_embedded("diamond").await;
}

#[tokio::test]
async fn fan_out_runs_every_item_and_fans_in() {
    run_embedded("fan-out").await;
}

#[tokio::test]
async fn retries_succeed_on_the_third_attempt() {
    run_embedded("retries").await;
}

#[tokio::test]
async fn timeout_kills_the_step_and_fails_the_run() {
    let started = std::time::Instant::now();
    run_embedded("timeout").await;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the 30s sleeps were not killed"
    );
}

#[tokio::test]
async fn weft_run_refuses_workflows_only_a_server_can_run() {
    let data = tempfile::tempdir().unwrap();
    let out = weft(&["run", "workflows/approval.toml"], data.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("step `gate` waits for a person's approval, which needs a server"),
        "{}",
        text(&out)
    );
    let out = weft(&["run", "workflows/sub-workflow.toml"], data.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("step `etl` runs a saved workflow, which a server keeps"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn etl_runs_as_a_workflow_of_its_own() {
    run_embedded("etl").await;
}

#[tokio::test]
async fn when_false_skips_a_step() {
    run_embedded("when-skip").await;
}

#[tokio::test]
async fn plugins_check_measure_and_redact_around_a_step_and_run_as_one() {
    run_embedded("plugins").await;
}

#[tokio::test]
async fn a_step_may_fail_and_a_cleanup_step_runs_whatever_happened() {
    run_embedded("cleanup").await;
}

#[tokio::test]
async fn the_on_exit_step_runs_last_and_knows_the_run_failed() {
    run_embedded("on-exit").await;
}

#[tokio::test]
async fn failing_step_skips_its_dependents() {
    run_embedded("failure").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_has_the_same_outcome_in_distributed_mode() {
    let cluster = Cluster::start(2);
    for name in EXAMPLE_PLUGINS {
        cluster
            .client()
            .push_plugin(name, "0.1.0", plugin_wasm(name))
            .await
            .expect("push");
    }
    // Sub-workflows need the workflows they run saved first.
    for name in examples() {
        for saved in saves_of(&name) {
            let path = repo().join("workflows").join(format!("{saved}.toml"));
            let source = std::fs::read_to_string(path).unwrap();
            cluster
                .client()
                .save_workflow(&source, None)
                .await
                .expect("save");
        }
    }
    let mut runs = Vec::new();
    for name in examples() {
        let id = cluster.submit(&format!("workflows/{name}.toml"), &[]).await;
        runs.push((name, id));
    }
    // Examples that wait for a person get the decision their expected
    // outcome gives.
    for (name, id) in &runs {
        if let Some((step, inputs)) = approval_of(name) {
            cluster.approve_when_waiting(id, &step, inputs).await;
        }
    }
    for (name, id) in runs {
        let view = cluster.wait(&id, Duration::from_secs(60)).await;
        check_outcome(&name, &view, &format!("distributed run {id}"));
    }
}

/// The workflows an example's expected outcome says to save first (`save`).
fn saves_of(name: &str) -> Vec<String> {
    let path = repo()
        .join("workflows/expected")
        .join(format!("{name}.toml"));
    let raw: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    raw.get("save")
        .and_then(|s| s.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The `[approve]` table of an example's expected outcome: the step a test
/// approves, and the inputs it gives.
fn approval_of(name: &str) -> Option<(String, Json)> {
    let path = repo()
        .join("workflows/expected")
        .join(format!("{name}.toml"));
    let raw: toml::Table = toml::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let approve = raw.get("approve")?.as_table()?;
    Some((
        approve.get("step")?.as_str()?.to_string(),
        serde_json::to_value(approve.get("inputs")?).ok()?,
    ))
}
