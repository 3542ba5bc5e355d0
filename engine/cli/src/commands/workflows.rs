//! `weft workflows` (save, list), `weft schedules` and `weft backfill`:
//! saved workflows on a server, the schedules their latest versions carry,
//! and starting the runs of past fire times.

use std::path::PathBuf;
use std::process::ExitCode;

use weft_core::schedule::format_time;

use crate::table;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Save a workflow file as the next version of its name; its
    /// `[[triggers.schedule]]` start firing on the server.
    Save {
        file: PathBuf,
        /// The name to save it under; by default its `[workflow] name`.
        #[arg(long)]
        name: Option<String>,
    },
    /// The latest version of every saved workflow.
    List,
    /// Run a saved workflow: `NAME` (its latest version) or `NAME@VERSION`.
    Run {
        /// `NAME` or `NAME@VERSION`.
        workflow: String,
        /// Override a parameter: `--param epochs=5` (repeatable).
        #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// -1000 to 1000, higher first.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        priority: i32,
        /// Wait for the run to finish, showing its progress; exit 0 only if it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// Print a saved workflow's text (`NAME` or `NAME@VERSION`) and its parameters.
    Show { workflow: String },
}

/// `NAME` or `NAME@VERSION`.
pub(crate) fn name_and_version(text: &str) -> anyhow::Result<(&str, Option<u32>)> {
    match text.split_once('@') {
        None => Ok((text, None)),
        Some((name, v)) => Ok((
            name,
            Some(v.parse().map_err(|_| {
                anyhow::anyhow!(
                    "`{text}`: write a saved workflow as NAME or NAME@VERSION (a number)"
                )
            })?),
        )),
    }
}

pub async fn workflows(client: weft_api::Client, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Save { file, name } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let saved = client.save_workflow(&text, name.as_deref()).await?;
            println!("saved {} version {}", saved.name, saved.version);
        }
        Command::Run {
            workflow,
            params,
            priority,
            wait,
        } => {
            let (name, version) = name_and_version(&workflow)?;
            let params = super::submit::parse_params(&params)?.into_iter().collect();
            let run = client.run_saved(name, version, &params, priority).await?;
            println!(
                "submitted run {} of {} ({})",
                run.id, run.workflow, run.file
            );
            println!(
                "dashboard: {}",
                super::submit::dashboard_url(&client, &run.id)
            );
            if wait {
                return super::submit::wait_and_report(&client, &run.id).await;
            }
        }
        Command::Show { workflow } => {
            let (name, version) = name_and_version(&workflow)?;
            let saved = client.saved_workflow(name, version).await?;
            println!(
                "# {} version {} saved {}",
                saved.name,
                saved.version,
                format_time(saved.saved_at)
            );
            for (param, default) in saved.params.iter().flatten() {
                println!("# param {param} (default {default})");
            }
            print!("{}", saved.source.unwrap_or_default());
        }
        Command::List => {
            let rows: Vec<Vec<String>> = client
                .saved_workflows()
                .await?
                .into_iter()
                .map(|w| vec![w.name, w.version.to_string(), format_time(w.saved_at)])
                .collect();
            print!(
                "{}",
                table::render(&["WORKFLOW", "VERSION", "SAVED"], &rows)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft schedules`: every schedule with its next fire times.
pub async fn schedules(client: weft_api::Client) -> anyhow::Result<ExitCode> {
    let rows: Vec<Vec<String>> = client
        .schedules()
        .await?
        .into_iter()
        .map(|s| {
            vec![
                format!("{}#{}", s.workflow, s.index),
                s.version.to_string(),
                s.cron,
                s.timezone,
                s.overlap,
                s.next
                    .iter()
                    .take(2)
                    .map(|t| format_time(*t))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no saved workflow has a schedule");
    } else {
        print!(
            "{}",
            table::render(
                &["SCHEDULE", "VERSION", "CRON", "TIMEZONE", "OVERLAP", "NEXT"],
                &rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft backfill`: one run per fire time in a range.
pub async fn backfill(
    client: weft_api::Client,
    workflow: &str,
    schedule: usize,
    from: &str,
    to: &str,
) -> anyhow::Result<ExitCode> {
    let answer = client.backfill(workflow, schedule, from, to).await?;
    for id in &answer.started {
        println!("started {id}");
    }
    println!(
        "{} run(s) started, {} fire time(s) already had one",
        answer.started.len(),
        answer.existing.len()
    );
    Ok(ExitCode::SUCCESS)
}
