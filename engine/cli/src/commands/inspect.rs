//! `weft runs`, `weft show`, `weft logs`: history from the embedded store,
//! or from a server when one is configured.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use weft_api::app;
use weft_api::views::{RunSummary, RunView};
use weft_api::Client;
use weft_core::ports::{RunIndex, RunRecord, StepLogs, WorkerRegistry};
use weft_core::run::RunState;
use weft_core::spec::units::format_duration;

use weft_store_embedded::EmbeddedRunStore;

use crate::{embedded, table};

/// Where history is read from.
pub enum Source {
    Server(Client),
    Embedded(std::path::PathBuf),
}

pub(crate) fn ago(ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!(
        "{} ago",
        format_duration(Duration::from_millis(now.saturating_sub(ms)))
    )
}

/// A run by its id or a unique prefix of it: the server, or the embedded
/// store through the same application layer, finds it and builds its view.
pub async fn view(source: &Source, run: &str) -> anyhow::Result<RunView> {
    match source {
        Source::Server(c) => Ok(c.run(run).await?),
        Source::Embedded(dir) => {
            let store = embedded::open_store(dir)?;
            let (record, state) = load_embedded(&store, run).await?;
            let workers = match app::needs_workers(&state) {
                true => store.workers(now()).await?,
                false => Vec::new(),
            };
            Ok(app::run_view(&record, &state, &workers))
        }
    }
}

/// Milliseconds since the epoch, as runs record times.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The embedded store's run `run` (its id or a unique prefix), as a record
/// and its state.
async fn load_embedded(
    store: &EmbeddedRunStore,
    run: &str,
) -> anyhow::Result<(RunRecord, RunState)> {
    let id = app::resolve_run(store, run).await?;
    weft_orchestrator::load_run(store, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no run `{run}`"))
}

pub async fn runs(
    source: &Source,
    limit: usize,
    status: Option<&str>,
    workflow: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let runs = match source {
        Source::Server(c) => c.runs_page(status, workflow, limit, None).await?.0,
        Source::Embedded(dir) => {
            let query = app::run_query(&app::RunFilter {
                status,
                workflow,
                limit: Some(limit),
                ..app::RunFilter::default()
            })?;
            embedded::open_store(dir)?
                .query_runs(&query)
                .await?
                .iter()
                .map(RunSummary::from)
                .collect()
        }
    };
    if runs.is_empty() {
        println!("no runs yet");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let took = r.finished_at.map_or_else(
                || "-".into(),
                |f| format_duration(Duration::from_millis(f.saturating_sub(r.created_at))),
            );
            vec![
                r.id.clone(),
                r.workflow.clone(),
                r.status.clone(),
                ago(r.created_at),
                took,
                r.summary.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["RUN", "WORKFLOW", "STATUS", "STARTED", "TOOK", "SUMMARY"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// The last lines of the failed attempt's log, wherever the run is kept.
pub async fn failure_lines(source: &Source, v: &RunView) -> Vec<String> {
    match (source, &v.failed) {
        (_, None) => Vec::new(),
        (Source::Server(c), Some(_)) => crate::failure::lines_from_server(c, v).await,
        (Source::Embedded(dir), Some(failed)) => match embedded::open_store(dir) {
            Ok(store) => crate::failure::lines_from_store(store.as_ref(), &v.run.id, failed).await,
            Err(_) => Vec::new(),
        },
    }
}

pub async fn show(source: &Source, run: &str, json: bool) -> anyhow::Result<ExitCode> {
    let v = view(source, run).await?;
    if json {
        // Everything the API answers, as it answers it.
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("run       {}", v.run.id);
    println!("workflow  {} ({})", v.run.workflow, v.run.file);
    println!("status    {}", v.run.status);
    println!("started   {}", ago(v.run.created_at));
    if v.run.priority != 0 {
        let band = weft_core::ports::PriorityBand::of(v.run.priority);
        println!("priority  {} ({} band)", v.run.priority, band.as_str());
    }
    if !v.params.is_empty() {
        println!("params    {}", serde_json::Value::Object(v.params.clone()));
    }
    for p in &v.plugins {
        println!(
            "plugin    {} -> {}@{} (sha256 {})",
            p.reference,
            p.name,
            p.version,
            p.sha256.chars().take(12).collect::<String>()
        );
    }
    for d in &v.admission {
        let reasons: Vec<String> = d
            .reasons
            .iter()
            .map(|r| match &r.step {
                Some(step) => format!("{step}: {}", r.message),
                None => r.message.clone(),
            })
            .collect();
        let patched: Vec<&str> = d.patches.iter().map(|p| p.step.as_str()).collect();
        let mut line = format!(
            "admission {} {} ({:.1} ms)",
            d.plugin,
            d.verdict.as_str(),
            d.ms
        );
        if !patched.is_empty() {
            line.push_str(&format!("; patched {}", patched.join(", ")));
        }
        if !reasons.is_empty() {
            line.push_str(&format!(": {}", reasons.join("; ")));
        }
        println!("{line}");
    }
    if let Some(c) = &v.flow.concurrency {
        println!(
            "key       {} (limit {}, {}, priority {})",
            c.key,
            c.limit,
            c.policy.as_str(),
            c.priority
        );
    }
    if let Some(w) = &v.flow.waiting {
        println!("waiting   {w}");
    }
    if let Some(p) = &v.flow.parent {
        println!(
            "parent    run {} step {} (attempt {})",
            p.run, p.task, p.attempt
        );
    }
    if let Some(s) = &v.run.summary {
        println!("summary   {s}");
    }
    if let Some(failed) = &v.failed {
        let lines = failure_lines(source, &v).await;
        print!(
            "{}",
            crate::failure::describe(failed, &lines, v.run.summary.is_some())
        );
    }
    println!();
    print!("{}", table::steps(&v));
    let attempts = table::attempts(&v);
    if !attempts.is_empty() {
        println!();
        print!("{attempts}");
    }
    let artifacts: Vec<_> = v.steps.iter().flat_map(|s| &s.artifacts).collect();
    if !artifacts.is_empty() {
        println!();
        for a in artifacts {
            println!(
                "artifact  {}/{}  {} bytes{}  sha256 {}",
                a.step,
                a.name,
                a.size,
                if a.dir { " (directory)" } else { "" },
                &a.digest[..12.min(a.digest.len())]
            );
        }
        println!(
            "          (weft artifacts get {} STEP/NAME -o PATH)",
            v.run.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn logs(
    source: &Source,
    run: &str,
    step: &str,
    attempt: Option<u32>,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let task = weft_api::parse_task(step)
        .ok_or_else(|| anyhow::anyhow!("`{step}`: write an instance as `step[2]`"))?;
    if follow {
        let Source::Server(client) = source else {
            anyhow::bail!("following a log needs a server (--server URL): an embedded run's store is held by the `weft run` that runs it, which prints progress itself");
        };
        return follow_log(
            client,
            &view(source, run).await?.run.id,
            &task.to_string(),
            attempt,
        )
        .await;
    }
    // Page by page, so a log of many megabytes is never held whole; the
    // marks of stderr lines taken out (`weft_core::log_format`). Which
    // attempt, and why there is none, is the application layer's to say,
    // on the server or here.
    let mut out = std::io::stdout().lock();
    match source {
        Source::Server(c) => {
            c.logs_each(run, &task.to_string(), attempt, |page| {
                out.write_all(&weft_core::log_format::strip_marks(page))
            })
            .await?
        }
        Source::Embedded(dir) => {
            let store = embedded::open_store(dir)?;
            let (_, state) = load_embedded(&store, run).await?;
            let key = app::pick_attempt(&state, &task, attempt)?.attempt;
            let mut offset = 0;
            loop {
                let page = store
                    .read_log_from(&key, offset, weft_core::ports::LOG_PAGE_BYTES)
                    .await?;
                out.write_all(&weft_core::log_format::strip_marks(&page.bytes))?;
                if !page.more() || page.bytes.is_empty() {
                    break;
                }
                offset = page.end();
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a log as it grows, until its attempt finishes; waits for the
/// step to start if it has not yet.
async fn follow_log(
    client: &Client,
    run_id: &str,
    task: &str,
    attempt: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let mut offset = 0;
    let mut out = std::io::stdout();
    loop {
        match client.logs_from(run_id, task, attempt, offset).await {
            Ok((slice, finished)) => {
                if slice.start > offset {
                    eprintln!(
                        "weft: {} bytes of this log were dropped here: the store keeps a bounded log",
                        slice.start - offset
                    );
                }
                offset = slice.end();
                out.write_all(&weft_core::log_format::strip_marks(&slice.bytes))?;
                out.flush()?;
                if finished && slice.bytes.is_empty() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            // Not started yet: keep waiting unless the run is over.
            Err(weft_api::Error::Api { status: 404, .. })
                if !client.run(run_id).await?.is_finished() => {}
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn embedded_source(dir: &Path) -> Source {
    Source::Embedded(dir.to_path_buf())
}
