//! `workflows/gpu/saxpy.toml`, as its GPU test checks it, on the CPU kernel
//! runtime: templates rendered into kernel arguments, buffers in and out,
//! outputs inline and as artifacts (or, on a worker without an artifact
//! store, as files), and a value that renders wrong.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value as Json};
use weft_core::ports::{Clock, GpuSlot, JobQueue, RunStore};
use weft_core::run::{RunState, RunStatus};
use weft_orchestrator::SystemClock;
use weft_testkit::kernels::CpuKernels;
use weft_testkit::MemoryRunStore;
use weft_worker::Worker;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `source` (with `params`) to its end on one worker holding one
/// stand-in GPU and an artifact store; the final state, and the work
/// directory it wrote in (the store is under it).
async fn run(source: &str, params: &[(&str, Json)]) -> (RunState, tempfile::TempDir) {
    run_with(source, params, true).await
}

/// [`run`], with or without an artifact store.
async fn run_with(
    source: &str,
    params: &[(&str, Json)],
    with_store: bool,
) -> (RunState, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let store: Arc<dyn RunStore> = Arc::new(MemoryRunStore::new());
    let queue: Arc<dyn JobQueue> = Arc::new(weft_queue_local::LocalJobQueue::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = weft_worker::Options {
        name: "cpu".into(),
        concurrency: 2,
        work_dir: work.path().to_path_buf(),
        cwd: Some(repo().join("workflows/gpu")),
        gpus: Some(vec![GpuSlot {
            index: 0,
            name: "a CPU standing in".into(),
            memory_bytes: 0,
            uuid: None,
            busy: false,
        }]),
        ..Default::default()
    };
    let mut worker = Worker::new(queue.clone(), store.clone(), clock.clone(), options)
        .with_kernels(Arc::new(CpuKernels));
    if with_store {
        let artifacts =
            weft_artifacts_object::ObjectArtifactStore::local(&work.path().join("artifacts"))
                .unwrap();
        worker = worker.with_artifacts(Arc::new(artifacts));
    }
    let params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let state = crate::harness::run_to_end(
        worker,
        (queue, store, clock),
        (source, "saxpy.toml"),
        params,
        std::time::Duration::from_secs(120),
    )
    .await;
    (state, work)
}

fn outputs(state: &RunState, step: &str) -> Json {
    let i = state.step_index(step).unwrap();
    state.steps[i].outputs.clone().unwrap_or(Json::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saxpy_example_runs_on_the_cpu_kernel_runtime() {
    let source = std::fs::read_to_string(repo().join("workflows/gpu/saxpy.toml")).unwrap();
    let (state, _work) = run(&source, &[]).await;
    assert_eq!(
        state.status,
        RunStatus::Succeeded,
        "{:?}",
        state.failure_summary()
    );
    // y = 2x + 1 over x = 0..1024, x from the upstream step's outputs and
    // the length from a param, both through templates.
    let y = outputs(&state, "small")["y"].as_array().unwrap().clone();
    assert_eq!(y.len(), 1024);
    for (i, v) in y.iter().enumerate() {
        assert_eq!(v.as_f64(), Some(2.0 * i as f64 + 1.0), "y[{i}]");
    }
    // A million elements came back as an artifact, which the reduction
    // fetched; no file of it stays in the work directory.
    let big = outputs(&state, "big")["y"].clone();
    assert_eq!(big, json!({"artifact": "y", "type": "f32", "len": 1 << 20}));
    let i = state.step_index("big").unwrap();
    let artifact = state.steps[i].artifacts["y"].clone();
    assert_eq!(artifact.size, 4 << 20);
    let store =
        weft_artifacts_object::ObjectArtifactStore::local(&_work.path().join("artifacts")).unwrap();
    let copy = _work.path().join("y.f32");
    weft_core::ports::ArtifactStore::get_file(&store, &artifact, &copy)
        .await
        .unwrap();
    let bytes = std::fs::read(&copy).unwrap();
    assert!(bytes
        .chunks_exact(4)
        .all(|c| f32::from_le_bytes(c.try_into().unwrap()) == 4.0));
    assert_eq!(
        outputs(&state, "total")["sum"],
        json!([4.0 * (1 << 20) as f64])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_argument_that_renders_wrong_fails_its_step_naming_it() {
    let source = std::fs::read_to_string(repo().join("workflows/gpu/saxpy.toml")).unwrap();
    // `xs` takes -1 (an empty list); the kernel's `len` cannot.
    let (state, _work) = run(&source, &[("n", json!(-1))]).await;
    assert_eq!(state.status, RunStatus::Failed);
    let summary = state.failure_summary().unwrap();
    assert!(
        summary.contains("small") && summary.contains("the `cuda` table as rendered"),
        "{summary}"
    );
}

/// Every scalar type and every kind of buffer (zeros, filled, listed,
/// from an upstream output, from JSON text, from an upstream output file),
/// written out and through templates, reach the kernel as typed bytes.
const EVERY_KIND: &str = r#"
[workflow]
name = "every-kind"
[params]
i = -7
u = 7
n = 7
f = 2.5
[steps.xs]
run = "echo '{\"x\": [1, 2, 3]}' > \"$WEFT_OUTPUTS\""
[steps.wide.cuda]
ptx = "// describe"
entry = "describe"
args = [{ buffer = "out", type = "f64", len = 10000, output = true }]
[steps.every]
needs = ["xs", "wide"]
[steps.every.cuda]
ptx = "// describe"
entry = "describe"
args = [
  { scalar = "{{ params.f }}", type = "f32" },
  { scalar = 0.25, type = "f64" },
  { scalar = "{{ params.i }}", type = "i32" },
  { scalar = "{{ params.u }}", type = "u32" },
  { scalar = -9, type = "i64" },
  { scalar = "{{ params.u }}", type = "u64" },
  { scalar = 255, type = "u8" },
  { buffer = "zeros", type = "u8", len = 5 },
  { buffer = "filled", type = "i64", len = "{{ params.n }}", fill = "{{ params.i }}" },
  { buffer = "listed", type = "u32", values = [1, 2, 3] },
  { buffer = "upstream", type = "f64", values = "{{ steps.xs.outputs.x }}" },
  { buffer = "text", type = "i32", values = "[{{ params.i }}, 1]" },
  { buffer = "filed", type = "f64", file = "{{ steps.wide.outputs.out.file }}" },
  { buffer = "out", type = "f64", len = 32, output = true },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scalar_type_and_buffer_kind_reaches_the_kernel_through_a_step() {
    // Without an artifact store: a large output stays a file on the worker.
    let (state, _work) = run_with(EVERY_KIND, &[], false).await;
    assert_eq!(
        state.status,
        RunStatus::Succeeded,
        "{:?}",
        state.failure_summary()
    );
    // 80,000 bytes: the upstream output came back as a file.
    assert_eq!(outputs(&state, "wide")["out"]["len"], json!(10000));
    let out: Vec<f64> = outputs(&state, "every")["out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut want = vec![2.5, 0.25, -7.0, 7.0, -9.0, 7.0, 255.0];
    // (count, sum) of each input buffer, in order.
    for (n, sum) in [
        (5, 0.0),
        (7, -49.0),
        (3, 6.0),
        (3, 6.0),
        (2, -6.0),
        (10000, 0.0),
    ] {
        want.extend([n as f64, sum]);
    }
    want.resize(32, 0.0);
    assert_eq!(out, want);
    // Each value that renders wrong fails the step, naming the key and value.
    for (param, value, says) in [
        ("u", json!([1, 2]), "`scalar` rendered to [1,2]"),
        ("n", json!("many"), "`len` rendered to \"many\""),
        ("i", json!(1.5), "1.5 is not a whole number"),
        ("u", json!(300), "300 does not fit in u8"),
    ] {
        let source = if says.contains("u8") {
            EVERY_KIND.replace(
                "{ scalar = 255, type = \"u8\" }",
                "{ scalar = \"{{ params.u }}\", type = \"u8\" }",
            )
        } else {
            EVERY_KIND.to_string()
        };
        let (state, _work) = run_with(&source, &[(param, value.clone())], false).await;
        assert_eq!(state.status, RunStatus::Failed, "{param}={value}");
        let summary = state.failure_summary().unwrap();
        assert!(
            summary.contains("every") && summary.contains(says),
            "{param}={value}: {summary}"
        );
    }
}
