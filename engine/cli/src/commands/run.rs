//! `weft run`, and `weft retry` without a server: a run in this process,
//! on the embedded store, watched until it ends.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::watch;
use weft_core::run::{resolve_params, RunStatus};
use weft_core::spec::Workflow;
use weft_orchestrator::NewRun;
use weft_store_embedded::EmbeddedRunStore;

use super::check::load_or_report;
use crate::progress::{say, Reporter};
use crate::{embedded, log_tail, table, DataDir};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    workflow: super::WorkflowArgs,
    #[command(flatten)]
    watch: Watch,
    #[command(flatten)]
    data: DataDir,
}

/// How a run in this process runs and is shown.
#[derive(clap::Args)]
pub struct Watch {
    /// Steps run at once. Default: the number of CPUs. For many short steps,
    /// one more than the CPUs keeps them busy through each step's start
    /// and end (`docs/performance.md`).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Plain line output even on a terminal.
    #[arg(long)]
    plain: bool,
    /// Print each step's output as it runs, every line prefixed with the
    /// step's id.
    #[arg(long)]
    logs: bool,
    /// A host directory container steps may mount (they get none unless
    /// given); repeat for more.
    #[arg(long = "allow-mount", value_name = "DIR")]
    allow_mounts: Vec<PathBuf>,
}

/// What to start: a new run, or a retry of a finished one.
enum Start {
    New(NewRun),
    Retry { run: String, from: Option<String> },
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some((source, workflow)) = load_or_report(&args.workflow.file)? else {
        return Ok(ExitCode::FAILURE);
    };
    let overrides = super::submit::parse_params(&args.workflow.params)?;
    let params = resolve_params(&workflow, &overrides).map_err(|e| anyhow::anyhow!(e))?;
    // Nobody could approve it here, and no saved workflow is kept here.
    for step in &workflow.steps {
        let why = match step.action {
            weft_core::spec::StepAction::Approve { .. } => format!(
                "step `{}` waits for a person's approval, which needs a server: \
                 start `weft serve --embedded`, then `weft submit {}` and `weft approve RUN {}`",
                step.id,
                args.workflow.file.display(),
                step.id
            ),
            weft_core::spec::StepAction::Workflow { .. } => format!(
                "step `{}` runs a saved workflow, which a server keeps: \
                 start `weft serve --embedded`, `weft workflows save` it, then `weft submit {}`",
                step.id,
                args.workflow.file.display()
            ),
            _ => continue,
        };
        eprintln!("error: {}: {why}", args.workflow.file.display());
        return Ok(ExitCode::FAILURE);
    }

    let store = embedded::open_store(&args.data.data_dir)?;
    let file = args.workflow.file.display().to_string();
    let dir = workflow_dir(&args.workflow.file);
    let plugins =
        match weft_orchestrator::resolve_plugins(&workflow, store.as_ref(), Some(&dir)).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
    let new = NewRun {
        workflow: workflow.clone(),
        source,
        file,
        params,
        prelude: Vec::new(),
        plugins,
        submitted_by: user(),
        policy: None,
        cache: args.workflow.cache_choice(&workflow)?,
        priority: args.workflow.priority,
    };
    watch_here(
        store,
        &args.data,
        &args.watch,
        &workflow,
        dir,
        Start::New(new),
    )
    .await
}

/// `weft retry RUN [--from STEP]` without a server: the run again, here,
/// reusing the outputs of its succeeded steps.
pub async fn retry(
    data: &DataDir,
    watch: &Watch,
    run: &str,
    from: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let store = embedded::open_store(&data.data_dir)?;
    let id = weft_api::app::resolve_run(store.as_ref(), run).await?;
    let (record, previous) = weft_orchestrator::load_run(store.as_ref(), &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no run `{run}`"))?;
    // Relative paths in its steps were the workflow file's, as for `weft run`.
    let dir = workflow_dir(Path::new(&record.file));
    let dir = if dir.is_dir() {
        dir
    } else {
        eprintln!(
            "warning: {} (the directory of {}) is not here; its steps run in this one",
            dir.display(),
            record.file
        );
        PathBuf::from(".")
    };
    let workflow = previous.plan.workflow.clone();
    let start = Start::Retry {
        run: id,
        from: from.map(str::to_string),
    };
    watch_here(store, data, watch, &workflow, dir, start).await
}

/// Where a workflow's steps run and its relative paths start: its file's
/// directory.
fn workflow_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn user() -> Option<String> {
    std::env::var("USER").ok().filter(|u| !u.is_empty())
}

/// Runs the engine in this process until the run ends, showing it.
async fn watch_here(
    store: Arc<EmbeddedRunStore>,
    data: &DataDir,
    args: &Watch,
    workflow: &Workflow,
    dir: PathBuf,
    start: Start,
) -> anyhow::Result<ExitCode> {
    // Steps run in the workflow's directory: every path handed to them is absolute.
    let data_dir = std::path::absolute(&data.data_dir)?;
    let mut options = weft_worker::Options::default();
    if let Some(n) = args.concurrency {
        options.concurrency = n.max(1);
    }
    let mut pools: Vec<String> = workflow.steps.iter().map(|s| s.pool.clone()).collect();
    pools.sort();
    pools.dedup();
    options.pools = pools;
    options.work_dir = data_dir.join("work");
    // Its own name: a worker removes containers left under its name, and
    // another `weft run` may be running beside this one.
    options.name = format!("local-{}", std::process::id());
    options.cwd = Some(dir);
    // A local run is its user's own command, in the workflow's directory:
    // its steps run as that user, as `make` would run them.
    options.run_as = weft_worker::RunAs::Worker;
    options.allowed_mounts = args
        .allow_mounts
        .iter()
        .map(std::path::absolute)
        .collect::<Result<_, _>>()?;
    let uses_containers = workflow
        .steps
        .iter()
        .any(|s| matches!(s.action, weft_core::spec::StepAction::Container { .. }));
    let containers = if uses_containers {
        match embedded::docker().await {
            Ok(runtime) => Some(runtime),
            Err(e) => {
                eprintln!("warning: container steps will fail: {e}");
                None
            }
        }
    } else {
        None
    };
    // `weft run` reads no configuration: `$WEFT_SECRET_KEY`, else the
    // store's own key file, if secrets were set in it.
    let keyring = embedded::keyring(&crate::config::Config::default(), &data_dir, false)?;
    let (service, worker) = embedded::engine(
        store.clone(),
        options,
        containers,
        weft_orchestrator::Options::default(),
        keyring,
        crate::config::Config::default().artifact_store(Some(&data_dir.join("artifacts")))?,
    )?;
    let (stop_worker, worker_stop) = watch::channel(false);
    let worker_task = tokio::spawn(worker.run(worker_stop));
    let router = service.spawn_router();

    let live = std::io::stdout().is_terminal() && !args.plain;
    let mut reporter = Reporter::new(live, workflow);
    if let Start::Retry { run, .. } = &start {
        reporter = reporter.retrying(run);
    }
    let mut printer = None;
    if args.logs {
        // Room for the id of a for-each instance, `step[12]`.
        let width = workflow
            .steps
            .iter()
            .map(|s| s.id.len() + if s.for_each.is_some() { 4 } else { 0 })
            .max()
            .unwrap_or(4)
            .min(30);
        let (tail, task) = log_tail::spawn(store.clone(), reporter.printer(), width);
        reporter = reporter.with_tail(tail);
        printer = Some(task);
    }
    let (record, handle) = match start {
        Start::New(new) => service.submit(new, Box::new(reporter)).await?,
        Start::Retry { run, from } => {
            service
                .retry_watched(
                    &run,
                    from.as_deref(),
                    weft_orchestrator::Submitter {
                        name: user(),
                        policy: None,
                    },
                    Box::new(reporter),
                )
                .await?
        }
    };

    let canceller = service.clone();
    let run_id = record.id.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ncancelling (press Ctrl-C again to exit at once)");
            let _ = canceller.cancel(&run_id).await;
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let state = handle
        .await
        .map_err(|e| anyhow::anyhow!("run driver: {e}"))??;
    if let Some(printer) = printer {
        // It has been told the run ended; the bound is for a store that hangs.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), printer).await;
    }
    router.abort();
    let _ = stop_worker.send(true);
    if let Ok(Err(e)) = worker_task.await {
        eprintln!("warning: worker: {e}");
    }

    let view = weft_api::views::RunView::new(&record, &state);
    let mut report = table::steps(&view);
    let took = state
        .finished_at
        .unwrap_or(0)
        .saturating_sub(state.started_at.unwrap_or(0));
    report += &format!(
        "\nrun {} {} in {}\n",
        state.run_id,
        state.status.as_str(),
        weft_core::spec::units::format_duration(std::time::Duration::from_millis(took))
    );
    if let Some(summary) = state.failure_summary() {
        report += &format!("  {summary}\n");
    }
    if let Some(failed) = &view.failed {
        let lines = crate::failure::lines_from_store(store.as_ref(), &state.run_id, failed).await;
        for line in
            crate::failure::describe(failed, &lines, state.failure_summary().is_some()).lines()
        {
            report += &format!("  {line}\n");
        }
    }
    report += &format!(
        "  details: weft show {}   logs: weft logs {} <step>",
        state.run_id, state.run_id
    );
    say(&report);
    Ok(match state.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Cancelled => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    })
}
