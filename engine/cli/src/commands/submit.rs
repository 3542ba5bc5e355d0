//! `weft submit`, `weft retry`, `weft cancel`: start and stop runs on a
//! server, optionally waiting for them.

use std::process::ExitCode;
use std::time::Duration;

use weft_api::views::{RunView, SubmitRequest};
use weft_api::Client;

use super::check::load_or_report;
use crate::table;

#[derive(clap::Args)]
pub struct Args {
    /// The workflow file.
    #[arg(required_unless_present = "saved")]
    file: Option<std::path::PathBuf>,
    /// A workflow saved on the server instead of a file: `NAME` (its latest
    /// version) or `NAME@VERSION`.
    #[arg(long, conflicts_with = "file", value_name = "NAME[@VERSION]")]
    saved: Option<String>,
    /// Override a parameter: `--param epochs=5` (repeatable).
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Run every step, reusing no cached result (results are still saved).
    #[arg(long, conflicts_with = "saved")]
    no_cache: bool,
    /// Run this step even if a result is cached (repeatable).
    #[arg(long = "refresh", value_name = "STEP", conflicts_with = "saved")]
    refresh: Vec<String>,
    /// -1000 to 1000, higher first (see `weft run --priority`).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1000..=1000))]
    priority: i32,
    /// Wait for the run to finish, showing its progress; exit 0 only if it succeeded.
    #[arg(long)]
    wait: bool,
}

pub fn parse_params(params: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("`--param {p}`: write it as KEY=VALUE"))
        })
        .collect()
}

pub async fn submit(client: Client, args: Args) -> anyhow::Result<ExitCode> {
    let run = match (&args.saved, &args.file) {
        (Some(saved), _) => {
            let (name, version) = super::workflows::name_and_version(saved)?;
            let params = parse_params(&args.params)?.into_iter().collect();
            let run = client
                .run_saved(name, version, &params, args.priority)
                .await?;
            println!(
                "submitted run {} of {} ({})",
                run.id, run.workflow, run.file
            );
            run
        }
        (None, Some(file)) => {
            // Checked here first, so mistakes show with colour and context.
            let Some((source, workflow)) = load_or_report(file)? else {
                return Ok(ExitCode::FAILURE);
            };
            let args = super::WorkflowArgs {
                file: file.clone(),
                params: args.params.clone(),
                no_cache: args.no_cache,
                refresh: args.refresh.clone(),
                priority: args.priority,
            };
            let cache = args.cache_choice(&workflow)?;
            let request = SubmitRequest {
                workflow: source,
                file: Some(file.display().to_string()),
                params: parse_params(&args.params)?.into_iter().collect(),
                no_cache: cache.no_cache,
                refresh: cache.refresh.into_iter().collect(),
                priority: args.priority,
            };
            let run = client.submit(&request).await?;
            println!("submitted run {} of {}", run.id, run.workflow);
            run
        }
        (None, None) => anyhow::bail!("name a workflow file, or `--saved NAME[@VERSION]`"),
    };
    println!("dashboard: {}", dashboard_url(&client, &run.id));
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait_and_report(&client, &run.id).await
}

/// Where the run's page is in the dashboard.
pub fn dashboard_url(client: &Client, id: &str) -> String {
    format!("{}/#/runs/{id}", client.base())
}

/// Run `id` once it has finished, saying how it goes meanwhile (see
/// [`super::progress_remote`]).
async fn finished(client: &Client, id: &str) -> anyhow::Result<RunView> {
    let mut progress = super::progress_remote::Progress::new();
    let mut delay = Duration::from_millis(100);
    loop {
        let states = client.states(id).await?;
        progress.show(&states);
        if states.run.is_finished() {
            return Ok(client.run(id).await?);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

async fn report(client: &Client, view: &RunView) {
    print!("{}", table::steps(view));
    println!("\nrun {} {}", view.run.id, view.run.status);
    if let Some(summary) = &view.run.summary {
        println!("  {summary}");
    }
    if let Some(failed) = &view.failed {
        let lines = crate::failure::lines_from_server(client, view).await;
        for line in crate::failure::describe(failed, &lines, view.run.summary.is_some()).lines() {
            println!("  {line}");
        }
    }
}

/// Waits for run `id` to finish, prints its steps; the exit code follows its status.
pub async fn wait_and_report(client: &Client, id: &str) -> anyhow::Result<ExitCode> {
    let view = finished(client, id).await?;
    report(client, &view).await;
    Ok(match view.run.status.as_str() {
        "succeeded" => ExitCode::SUCCESS,
        "cancelled" => ExitCode::from(130),
        _ => ExitCode::FAILURE,
    })
}

/// `weft retry RUN [--from STEP] [--wait]`.
pub async fn retry(
    client: Client,
    run: &str,
    from: Option<&str>,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let run = find(&client, run).await?.run.id;
    let new = client.retry(&run, from).await?;
    println!("retrying {run} as run {}", new.id);
    println!("dashboard: {}", dashboard_url(&client, &new.id));
    if wait {
        return wait_and_report(&client, &new.id).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft cancel RUN [--wait]`: stops a run; with `--wait`, exits 0 once it
/// has ended cancelled.
pub async fn cancel(client: Client, run: &str, wait: bool) -> anyhow::Result<ExitCode> {
    let view = find(&client, run).await?;
    let id = view.run.id.clone();
    if view.is_finished() {
        eprintln!(
            "weft: run {id} has already finished ({}); nothing to cancel",
            view.run.status
        );
        return Ok(ExitCode::FAILURE);
    }
    client.cancel(&id).await?;
    println!("cancelling run {id}");
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let view = finished(&client, &id).await?;
    report(&client, &view).await;
    Ok(if view.run.status == "cancelled" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Approves (or rejects) `step` of `run`; inputs are given as text and
/// read as their declared types by the server.
pub async fn decide(
    client: Client,
    run: &str,
    step: &str,
    approve: bool,
    inputs: &[String],
    comment: Option<String>,
) -> anyhow::Result<ExitCode> {
    let id = find(&client, run).await?.run.id;
    let inputs = parse_params(inputs)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("--param", "--input")))?
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    let decision = weft_api::views::DecisionRequest {
        approve,
        inputs,
        comment,
    };
    client.decide(&id, step, &decision).await?;
    let verb = if approve { "approved" } else { "rejected" };
    println!("{verb} step {step} of run {id}");
    Ok(ExitCode::SUCCESS)
}

/// A run on the server by its id or a unique prefix of it.
async fn find(client: &Client, run: &str) -> anyhow::Result<RunView> {
    super::inspect::view(&super::inspect::Source::Server(client.clone()), run).await
}
