//! `weft submit`: send a workflow to a server, optionally wait for it.

use std::process::ExitCode;
use std::time::Duration;

use weft_api::views::SubmitRequest;
use weft_api::Client;

use super::check::load_or_report;
use crate::table;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    workflow: super::WorkflowArgs,
    /// Wait for the run to finish; exit 0 only if it succeeded.
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
    // Checked here first, so mistakes show with colour and context.
    let Some((source, _)) = load_or_report(&args.workflow.file)? else {
        return Ok(ExitCode::FAILURE);
    };
    let request = SubmitRequest {
        workflow: source,
        file: Some(args.workflow.file.display().to_string()),
        params: parse_params(&args.workflow.params)?.into_iter().collect(),
    };
    let run = client.submit(&request).await?;
    println!("submitted run {} of {}", run.id, run.workflow);
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait_and_report(&client, &run.id).await
}

/// Waits for run `id` to finish, prints its steps; the exit code follows its status.
pub async fn wait_and_report(client: &Client, id: &str) -> anyhow::Result<ExitCode> {
    let mut delay = Duration::from_millis(100);
    let view = loop {
        let view = client.run(id).await?;
        if view.is_finished() {
            break view;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    };
    print!("{}", table::steps(&view));
    println!("\nrun {} {}", view.run.id, view.run.status);
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
    let new = client.retry(run, from).await?;
    println!("retrying {run} as run {}", new.id);
    if wait {
        return wait_and_report(&client, &new.id).await;
    }
    Ok(ExitCode::SUCCESS)
}
