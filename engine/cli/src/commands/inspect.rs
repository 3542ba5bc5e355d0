//! `weft runs`, `weft show`, `weft logs`: reading history from the store.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use weft_core::ports::{LogKey, RunStore};
use weft_core::run::TaskId;
use weft_core::spec::units::format_duration;

use crate::{embedded, table, DataDir};

fn ago(ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!(
        "{} ago",
        format_duration(Duration::from_millis(now.saturating_sub(ms)))
    )
}

/// Finds a run by id or unique id prefix.
async fn resolve(store: &dyn RunStore, run: &str) -> anyhow::Result<String> {
    if store.get_run(run).await?.is_some() {
        return Ok(run.to_string());
    }
    let matches: Vec<String> = store
        .list_runs(usize::MAX)
        .await?
        .into_iter()
        .map(|r| r.id)
        .filter(|id| id.starts_with(run))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("no run `{run}`; `weft runs` lists them"),
        many => anyhow::bail!("`{run}` matches {} runs; give more of the id", many.len()),
    }
}

pub async fn runs(data: &DataDir, limit: usize) -> anyhow::Result<ExitCode> {
    let store = embedded::open_store(&data.data_dir)?;
    let runs = store.list_runs(limit).await?;
    if runs.is_empty() {
        println!("no runs yet in {}", data.data_dir.display());
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
                r.status.as_str().into(),
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

pub async fn show(data: &DataDir, run: &str) -> anyhow::Result<ExitCode> {
    let store = embedded::open_store(&data.data_dir)?;
    let id = resolve(store.as_ref(), run).await?;
    let Some((record, state)) = weft_orchestrator::load_run(store.as_ref(), &id).await? else {
        anyhow::bail!("no run `{run}`")
    };
    println!("run       {}", record.id);
    println!("workflow  {} ({})", record.workflow, record.file);
    println!("status    {}", state.status.as_str());
    println!("started   {}", ago(record.created_at));
    if !record.params.is_empty() {
        println!(
            "params    {}",
            serde_json::Value::Object(record.params.clone())
        );
    }
    if let Some(s) = &record.summary {
        println!("summary   {s}");
    }
    println!();
    print!("{}", table::steps(&state));
    let mut rows = Vec::new();
    for step in &state.steps {
        for task in &step.tasks {
            for a in &task.attempts {
                let took = match (a.started_at.or(Some(a.queued_at)), a.finished_at) {
                    (Some(s), Some(f)) => {
                        format_duration(Duration::from_millis(f.saturating_sub(s)))
                    }
                    _ => "-".into(),
                };
                let result = match &a.error {
                    None => "running".to_string(),
                    Some(e) if e.is_empty() => "ok".to_string(),
                    Some(e) => e.clone(),
                };
                rows.push(vec![
                    task.id.to_string(),
                    a.number.to_string(),
                    a.worker.clone().unwrap_or_else(|| "-".into()),
                    took,
                    result,
                ]);
            }
        }
    }
    if !rows.is_empty() {
        println!();
        print!(
            "{}",
            table::render(&["TASK", "ATTEMPT", "WORKER", "TIME", "RESULT"], &rows)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_task(step: &str) -> anyhow::Result<TaskId> {
    match step.split_once('[') {
        Some((name, rest)) => {
            let index = rest
                .trim_end_matches(']')
                .parse()
                .map_err(|_| anyhow::anyhow!("`{step}`: write an instance as `step[2]`"))?;
            Ok(TaskId::new(name, Some(index)))
        }
        None => Ok(TaskId::new(step, None)),
    }
}

pub async fn logs(
    data: &DataDir,
    run: &str,
    step: &str,
    attempt: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let store = embedded::open_store(&data.data_dir)?;
    let id = resolve(store.as_ref(), run).await?;
    let Some((_, state)) = weft_orchestrator::load_run(store.as_ref(), &id).await? else {
        anyhow::bail!("no run `{run}`")
    };
    let task = parse_task(step)?;
    let Some(t) = state.task(&task) else {
        if state.step_index(&task.step).is_none() {
            anyhow::bail!("run {id} has no step `{}`", task.step);
        }
        if task.index.is_none() && state.steps[state.step_index(&task.step).unwrap_or(0)].fan_out {
            anyhow::bail!(
                "`{}` is a for-each step: name an instance, e.g. `{}[0]`",
                task.step,
                task.step
            );
        }
        anyhow::bail!("`{task}` never ran in run {id}");
    };
    let attempt = attempt.unwrap_or_else(|| t.attempt());
    if attempt == 0 || attempt > t.attempt() {
        anyhow::bail!("`{task}` has attempts 1 to {}", t.attempt());
    }
    let log = store
        .read_log(&LogKey {
            run_id: id,
            task,
            attempt,
        })
        .await?;
    std::io::stdout().write_all(&log)?;
    Ok(ExitCode::SUCCESS)
}
