//! The `weft` binary: parses the command line, wires concrete adapters to
//! the engine, and prints results. No engine logic lives here.

mod commands;
mod embedded;
mod progress;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "A WebAssembly-extensible workflow engine",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct DataDir {
    /// Where the embedded store keeps runs and logs.
    #[arg(long, env = "WEFT_DATA_DIR", default_value = ".weft", global = true)]
    pub data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workflow in-process (embedded queue and store) and watch it.
    Run(commands::run::Args),
    /// Check workflow files and report every problem with file, line and column.
    Check {
        /// Workflow files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the workflow format (for editors).
    Schema,
    /// List past runs, newest first.
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        data: DataDir,
    },
    /// Show a run: its steps, states, attempts, durations and outputs.
    Show {
        /// Run id (or a unique prefix of one).
        run: String,
        #[command(flatten)]
        data: DataDir,
    },
    /// Print the log of one step attempt.
    Logs {
        /// Run id (or a unique prefix of one).
        run: String,
        /// Step id; `step[2]` for an instance of a for-each step.
        step: String,
        /// Attempt number; the last attempt by default.
        #[arg(long)]
        attempt: Option<u32>,
        #[command(flatten)]
        data: DataDir,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => commands::run::run(args).await,
            Command::Check { files } => commands::check::check(&files),
            Command::Schema => {
                println!("{:#}", weft_core::spec::json_schema());
                Ok(ExitCode::SUCCESS)
            }
            Command::Runs { limit, data } => commands::inspect::runs(&data, limit).await,
            Command::Show { run, data } => commands::inspect::show(&data, &run).await,
            Command::Logs {
                run,
                step,
                attempt,
                data,
            } => commands::inspect::logs(&data, &run, &step, attempt).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
