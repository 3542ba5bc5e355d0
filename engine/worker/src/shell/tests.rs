//! The shell executor against real processes: preparing behind the
//! start gate, running in the attempt's own directory, leaving nothing.

use super::*;
use crate::gate::{GateKey, StartGate};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weft_core::ports::AttemptId;

/// A job of run `r` whose step runs `script`.
fn job(script: &str) -> Job {
    let mut job = weft_testkit::job("r", "one", "default");
    job.action = weft_core::spec::StepAction::Run {
        command: Command::Shell(script.into()),
    };
    job
}

/// `job`'s attempt in `options`'s work directory behind `gate`,
/// logging to `log`, with no spare directories.
fn attempt<'a>(
    job: &'a Job,
    options: &'a Options,
    log: Arc<StepLog>,
    gate: StartGate,
    spares: &'a SpareDirs,
) -> Attempt<'a> {
    Attempt {
        inputs: InputsText::of(job, None),
        job,
        options,
        log,
        gpus: &[],
        gate,
        spares,
        note: None,
    }
}

/// Runs `job` in `options`'s work directory behind `gate`.
async fn run_behind(job: Job, options: Options, gate: StartGate) -> Outcome {
    let store = Arc::new(weft_testkit::MemoryRunStore::new());
    let log = StepLog::new(store, AttemptId::of(&job), 1 << 20);
    let command = match &job.action {
        weft_core::spec::StepAction::Run { command } => command.clone(),
        _ => unreachable!(),
    };
    let spares = SpareDirs::default();
    run(attempt(&job, &options, log, gate, &spares), &command, None).await
}

/// The directories in the run's scratch directory, by name.
fn in_run(options: &Options, job: &Job) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(options.run_dir(job))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn options(root: &Path) -> Options {
    Options {
        work_dir: root.join("work"),
        ..Options::default()
    }
}

/// Polls until the run's directory holds an entry `pred` likes.
async fn until_in_run(options: &Options, job: &Job, pred: impl Fn(&str) -> bool) -> String {
    for _ in 0..500 {
        if let Some(name) = in_run(options, job).into_iter().find(|n| pred(n)) {
            return name;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing of that name came: {:?}", in_run(options, job));
}

/// A work directory (kept while it is held), a marker's path in it,
/// and a job whose step runs `script` of that path, with its options.
fn with_marker(script: impl Fn(&Path) -> String) -> (tempfile::TempDir, PathBuf, Job, Options) {
    let root = tempfile::tempdir().unwrap();
    let marker = root.path().join("ran");
    let job = job(&script(&marker));
    let options = options(root.path());
    (root, marker, job, options)
}

/// Starts `job` behind a closed gate, and waits until it has prepared
/// its directory aside.
async fn start_behind_gate(job: &Job, options: &Options) -> (GateKey, JoinHandle<Outcome>) {
    let (key, gate) = StartGate::closed();
    let step = tokio::spawn(run_behind(job.clone(), options.clone(), gate));
    until_in_run(options, job, |n| n.starts_with(".one@1.")).await;
    (key, step)
}

#[tokio::test]
async fn a_step_prepares_aside_behind_its_gate_and_runs_in_its_own_directory_once_it_opens() {
    let (_root, ran, job, options) =
        with_marker(|ran| format!("pwd > {}; cat inputs.json", ran.display()));
    let (key, step) = start_behind_gate(&job, &options).await;
    let aside = until_in_run(&options, &job, |n| n.starts_with(".one@1.")).await;
    let aside = options.run_dir(&job).join(aside);
    assert!(
        aside.join("inputs.json").is_file(),
        "its inputs are written while the claim is asked"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !ran.exists(),
        "nothing of the step runs before the gate opens"
    );
    assert!(!options.attempt_dir(&job).exists());

    let (_abort_tx, abort) = watch::channel(false);
    key.open(abort);
    let outcome = step.await.unwrap();
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    let cwd = std::fs::read_to_string(&ran).unwrap();
    assert_eq!(
        Path::new(cwd.trim()),
        options.attempt_dir(&job).canonicalize().unwrap(),
        "it ran in the attempt's own directory"
    );
    assert_eq!(
        in_run(&options, &job),
        vec!["one@1".to_string()],
        "nothing left aside"
    );
}

/// A step whose inputs are too big for the environment (every task of
/// a `for-each` over a big params list) is prepared behind its gate as
/// any other, so it is prepared ahead of its slot and takes a spare
/// directory; the log's line saying `$WEFT_INPUTS` is unset comes once
/// the gate opens, not before its claim is held.
#[tokio::test]
async fn a_step_with_inputs_too_big_for_the_environment_prepares_behind_its_gate_too() {
    use crate::outputs::MAX_INPUTS_ENV;
    use weft_core::ports::StepLogs as _;
    let (_root, ran, mut job, options) =
        with_marker(|ran| format!("echo \"[${{WEFT_INPUTS+set}}]\" > {}", ran.display()));
    job.inputs = serde_json::json!({"blob": "x".repeat(MAX_INPUTS_ENV)});
    let store = Arc::new(weft_testkit::MemoryRunStore::new());
    let log = StepLog::new(store.clone(), AttemptId::of(&job), 1 << 20);
    let (key, gate) = StartGate::closed();
    let step = {
        let (job, options, log) = (job.clone(), options.clone(), log.clone());
        tokio::spawn(async move {
            let (executors, spares) = (crate::executor::Executors::default(), SpareDirs::default());
            let attempt = attempt(&job, &options, log, gate, &spares);
            executors.run(attempt, &job.action).await
        })
    };
    let aside = until_in_run(&options, &job, |n| n.starts_with(".one@1.")).await;
    let aside = options.run_dir(&job).join(aside);
    let written = std::fs::metadata(aside.join("inputs.json")).map_or(0, |m| m.len());
    assert!(written > MAX_INPUTS_ENV as u64);
    let attempt_id = AttemptId::of(&job);
    let read = || store.read_log_from(&attempt_id, 0, 1 << 20);
    assert!(read().await.unwrap().bytes.is_empty(), "nothing logged yet");

    let (_abort_tx, abort) = watch::channel(false);
    key.open(abort);
    let outcome = step.await.unwrap();
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    log.finish().await;
    let said = String::from_utf8(read().await.unwrap().bytes).unwrap();
    assert!(said.contains("$WEFT_INPUTS is not set"), "{said}");
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "[]\n");
}

#[tokio::test]
async fn a_step_whose_gate_is_shut_runs_nothing_and_leaves_nothing() {
    let (_root, ran, job, options) = with_marker(|ran| format!("touch {}", ran.display()));
    let (key, step) = start_behind_gate(&job, &options).await;

    drop(key);
    let outcome = step.await.unwrap();
    assert!(
        matches!(&outcome, Outcome::Failed { kind: FailureKind::Cancelled, reason, .. } if reason.contains("not started")),
        "{outcome:?}"
    );
    assert!(!ran.exists(), "the step never ran");
    assert!(
        in_run(&options, &job).is_empty(),
        "{:?}",
        in_run(&options, &job)
    );
}

#[tokio::test]
async fn the_directory_an_earlier_execution_left_is_used_once_the_gate_opens_without_its_outputs() {
    let root = tempfile::tempdir().unwrap();
    let job = job("echo hello > kept; test ! -e outputs.json");
    let options = options(root.path());
    let dir = options.make_attempt_dir(&job).unwrap();
    std::fs::write(dir.join("outputs.json"), r#"{"stale": true}"#).unwrap();
    std::fs::write(dir.join("left"), "by the execution before").unwrap();
    let (key, step) = start_behind_gate(&job, &options).await;
    assert!(
        dir.join("outputs.json").exists(),
        "what is there is not touched before the gate opens"
    );

    let (_abort_tx, abort) = watch::channel(false);
    key.open(abort);
    let outcome = step.await.unwrap();
    let Outcome::Succeeded { outputs, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        outputs,
        &serde_json::json!({}),
        "the stale outputs are not read"
    );
    assert!(dir.join("left").is_file() && dir.join("kept").is_file());
    assert_eq!(
        in_run(&options, &job),
        vec!["one@1".to_string()],
        "nothing left aside"
    );
}
