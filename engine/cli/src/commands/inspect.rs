//! `weft runs`, `weft show`, `weft logs`: history from the embedded store,
//! or from a server when one is configured.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use weft_api::views::{RunSummary, RunView};
use weft_api::Client;
use weft_core::ports::{AttemptId, RunIndex, RunQuery, StepLogs};
use weft_core::run::RunStatus;
use weft_core::spec::units::format_duration;

use weft_store_embedded::EmbeddedRunStore;

use crate::{embedded, table};

/// Where history is read from.
pub enum Source {
    Server(Client),
    Embedded(std::path::PathBuf),
}

fn ago(ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!(
        "{} ago",
        format_duration(Duration::from_millis(now.saturating_sub(ms)))
    )
}

/// The one run whose id starts with `prefix`.
fn by_prefix(runs: Vec<RunSummary>, prefix: &str) -> anyhow::Result<String> {
    let matches: Vec<String> = runs
        .into_iter()
        .map(|r| r.id)
        .filter(|id| id.starts_with(prefix))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("no run `{prefix}`; `weft runs` lists them"),
        _ => anyhow::bail!("`{prefix}` matches more than one run; give more of the id"),
    }
}

/// A run by its id or a unique prefix of it: the exact id is tried first,
/// so only a shortened id costs a listing.
pub async fn view(source: &Source, run: &str) -> anyhow::Result<RunView> {
    match source {
        Source::Server(c) => match c.run(run).await {
            Ok(v) => Ok(v),
            Err(weft_api::Error::Api { status: 404, .. }) => {
                // Found by the server, however old the run: two answers
                // are enough to tell that a prefix is not unique.
                Ok(c.run(&by_prefix(c.runs_with_prefix(run, 2).await?, run)?)
                    .await?)
            }
            Err(e) => Err(e.into()),
        },
        Source::Embedded(dir) => {
            let store = embedded::open_store(dir)?;
            let id = find_embedded(&store, run).await?;
            let found = weft_orchestrator::load_run(store.as_ref(), &id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no run `{run}`"))?;
            Ok(RunView::new(&found.0, &found.1))
        }
    }
}

/// The id of the embedded store's run `run`, or of the one run whose id
/// starts with it.
pub async fn find_embedded(store: &EmbeddedRunStore, run: &str) -> anyhow::Result<String> {
    if store.get_run(run).await?.is_some() {
        return Ok(run.to_string());
    }
    let query = RunQuery {
        id_prefix: Some(run.to_string()),
        limit: 2,
        ..RunQuery::default()
    };
    let runs = store
        .query_runs(&query)
        .await?
        .iter()
        .map(RunSummary::from)
        .collect();
    by_prefix(runs, run)
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
            let status = status
                .map(|s| {
                    RunStatus::parse(s).ok_or_else(|| anyhow::anyhow!("`{s}` is not a run status"))
                })
                .transpose()?;
            let query = RunQuery {
                status,
                workflow: workflow.map(str::to_string),
                limit,
                ..RunQuery::default()
            };
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

pub async fn show(source: &Source, run: &str) -> anyhow::Result<ExitCode> {
    let v = view(source, run).await?;
    println!("run       {}", v.run.id);
    println!("workflow  {} ({})", v.run.workflow, v.run.file);
    println!("status    {}", v.run.status);
    println!("started   {}", ago(v.run.created_at));
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
    if let Some(s) = &v.run.summary {
        println!("summary   {s}");
    }
    println!();
    print!("{}", table::steps(&v));
    let attempts = table::attempts(&v);
    if !attempts.is_empty() {
        println!();
        print!("{attempts}");
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
    let v = view(source, run).await?;
    let Some(s) = v.steps.iter().find(|s| s.id == task.step) else {
        anyhow::bail!("run {} has no step `{}`", v.run.id, task.step)
    };
    if s.fan_out && task.index.is_none() {
        anyhow::bail!(
            "`{}` is a for-each step: name an instance, e.g. `{}[0]`",
            task.step,
            task.step
        );
    }
    let Some(t) = s.tasks.iter().find(|t| t.id == task.to_string()) else {
        anyhow::bail!("`{task}` never ran in run {}", v.run.id)
    };
    let last = t.attempts.len() as u32;
    let attempt = attempt.unwrap_or(last);
    if attempt == 0 || attempt > last {
        anyhow::bail!("`{task}` has attempts 1 to {last}");
    }
    // Page by page, so a log of many megabytes is never held whole.
    let mut out = std::io::stdout().lock();
    match source {
        Source::Server(c) => {
            c.logs_each(&v.run.id, &task.to_string(), Some(attempt), |page| {
                out.write_all(page)
            })
            .await?
        }
        Source::Embedded(dir) => {
            let store = embedded::open_store(dir)?;
            let key = AttemptId {
                run_id: v.run.id.clone(),
                task,
                attempt,
            };
            let mut offset = 0;
            loop {
                let page = store
                    .read_log_from(&key, offset, weft_core::ports::LOG_PAGE_BYTES)
                    .await?;
                out.write_all(&page.bytes)?;
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
                out.write_all(&slice.bytes)?;
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
