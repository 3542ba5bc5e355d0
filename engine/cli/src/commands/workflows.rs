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
}

pub async fn workflows(client: weft_api::Client, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Save { file, name } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let saved = client.save_workflow(&text, name.as_deref()).await?;
            println!("saved {} version {}", saved.name, saved.version);
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
