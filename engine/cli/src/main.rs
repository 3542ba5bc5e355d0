//! The `weft` binary: parses the command line, loads the configuration,
//! wires concrete adapters to the engine, and prints results. No engine
//! logic lives here.

mod commands;
mod config;
mod embedded;
mod failure;
mod log_tail;
mod logging;
mod memory;
mod progress;
mod run_bar;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::inspect::Source;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "A WebAssembly-extensible workflow engine",
    propagate_version = true
)]
struct Cli {
    /// Configuration file. Default: `WEFT_CONFIG`, else `./weft.toml` if present.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A `weft serve` URL for `submit`, `retry`, `cancel`, `workers`, `token`,
    /// `runs`, `show`, `logs` and `plugin` (also `WEFT_SERVER`, or `[client]
    /// server`). Without one, `runs`, `show`, `logs`, `retry` and `plugin`
    /// use the embedded store.
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// Bearer token for the server (also `WEFT_TOKEN`, or `[client] token`).
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,
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
        /// Workflow files to check; a directory means every `*.toml` under
        /// it but `weft.toml` and `Cargo.toml`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        data: DataDir,
    },
    /// Print the JSON Schema of the workflow format (for editors).
    Schema,
    /// Start the orchestrator, its HTTP API and the dashboard (RabbitMQ +
    /// Redis; or `--embedded`, with a worker in this process and no servers).
    Serve {
        /// Address to listen on (overrides `[server] listen`).
        #[arg(long)]
        listen: Option<String>,
        /// Serve the embedded store (`--data-dir`) with a worker in this
        /// process: the API and the dashboard with no RabbitMQ or Redis.
        #[arg(long)]
        embedded: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Start a worker that takes jobs from RabbitMQ.
    Worker(commands::worker::Args),
    /// The kernel process a worker starts per GPU (internal: speaks a
    /// binary protocol on stdin and stdout).
    #[command(hide = true)]
    CudaHost,
    /// What this machine gives a worker for kernel steps: the CUDA
    /// driver's GPUs, and whether NVRTC compiles a kernel (no server asked).
    Gpus(commands::gpus::Args),
    /// List live workers: pools, resource slots, running attempts.
    Workers,
    /// Manage plugins: push, list, show, rm (on a server: admins push and remove).
    Plugin {
        #[command(subcommand)]
        command: commands::plugin::Command,
        #[command(flatten)]
        data: DataDir,
    },
    /// Manage API tokens (needs an admin token).
    #[command(subcommand)]
    Token(commands::token::Command),
    /// Saved workflows on a server: save a version, list them.
    #[command(subcommand)]
    Workflows(commands::workflows::Command),
    /// The schedules of saved workflows, with their next fire times.
    Schedules,
    /// Start one run per fire time of a saved workflow's schedule between
    /// two times (each fire's run once: fire times that had a run are left).
    Backfill {
        /// The saved workflow.
        workflow: String,
        /// First fire time: RFC 3339 (2026-01-10T02:00:00Z) or a day (2026-01-10).
        #[arg(long)]
        from: String,
        /// Last fire time (included).
        #[arg(long)]
        to: String,
        /// Which `[[triggers.schedule]]`, from 0.
        #[arg(long, default_value_t = 0)]
        schedule: usize,
    },
    /// Secrets workflows use as `{{ secrets.NAME }}`: set, list, rm,
    /// rotate (admins, on a server; or in the embedded store), keygen.
    Secret {
        #[command(subcommand)]
        command: commands::secret::Command,
        #[command(flatten)]
        data: DataDir,
    },
    /// Run a finished run again, reusing the outputs of its succeeded
    /// steps: from the steps that did not succeed, or from `--from`. On a
    /// server with `--server`; otherwise here, as `weft run` runs.
    Retry {
        /// The run to retry (its id, or a unique prefix of it).
        run: String,
        /// Run again from this step and everything downstream of it.
        #[arg(long)]
        from: Option<String>,
        /// Wait for the new run to finish (on a server; here, it always does).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        watch: commands::run::Watch,
        #[command(flatten)]
        data: DataDir,
    },
    /// Cancel a run on a server: its running steps are stopped, nothing
    /// else starts.
    Cancel {
        /// The run (its id, or a unique prefix of it).
        run: String,
        /// Wait until the run has ended; exit 0 once it is cancelled.
        #[arg(long)]
        wait: bool,
    },
    /// Approve a step that waits for a person (`approve = {...}`), giving
    /// its inputs, or reject it (`--reject`): on a server.
    Approve {
        /// The run (its id, or a unique prefix of it).
        run: String,
        /// The approval step.
        step: String,
        /// Reject it: the step fails.
        #[arg(long)]
        reject: bool,
        /// One of the step's inputs: `--input reason="hotfix"` (repeatable).
        #[arg(long = "input", short = 'i', value_name = "KEY=VALUE")]
        inputs: Vec<String>,
        /// Why, in a few words.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Send a workflow to a server.
    Submit(commands::submit::Args),
    /// Who did what on a server, newest first (admins): runs submitted,
    /// cancelled and retried, workflows saved, plugins pushed and removed,
    /// tokens created and revoked.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// List past runs, newest first.
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only runs with this status (running, succeeded, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only runs of this workflow (its `[workflow] name`).
        #[arg(long)]
        workflow: Option<String>,
        #[command(flatten)]
        data: DataDir,
    },
    /// A run's artifacts: list them, or download one.
    Artifacts {
        #[command(subcommand)]
        command: commands::artifacts::Command,
        #[command(flatten)]
        data: DataDir,
    },
    /// Apply `[retention]` to the embedded store once: remove old finished
    /// runs, logs and artifacts no kept run or cache entry refers to.
    Gc {
        /// Say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        data: DataDir,
    },
    /// Show a run: its steps, states, attempts, durations and outputs.
    Show {
        /// Run id (or a unique prefix of one).
        run: String,
        /// Print the run as JSON, everything the API answers (steps,
        /// tasks, attempts, outputs in full).
        #[arg(long)]
        json: bool,
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
        /// Keep printing as the log grows, until the attempt finishes (needs a server).
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        data: DataDir,
    },
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let needs_config = !matches!(
        cli.command,
        Command::Run(_) | Command::Schema | Command::Gpus(_)
    );
    let config = if needs_config {
        config::Config::load(cli.config.as_deref())?
    } else {
        config::Config::default()
    };
    let server = cli.server.clone().or(config.client.server.clone());
    let token = cli.token.clone().or(config.client.token.clone());
    let client = |url: &str| weft_api::Client::new(url).with_token(token.clone());
    let source = |data: &DataDir| match &server {
        Some(url) => Source::Server(client(url)),
        None => commands::inspect::embedded_source(&data.data_dir),
    };
    match cli.command {
        Command::Run(args) => commands::run::run(args).await,
        Command::Check { files, data } => {
            // Plugins are checked against the server's registry, or the
            // embedded store's when it exists; never create one here.
            let registry = match &server {
                Some(url) => Some(commands::plugin::Registry::Server(client(url))),
                None if data.data_dir.join("weft.redb").exists() => {
                    Some(commands::plugin::Registry::Embedded(data.data_dir.clone()))
                }
                None => None,
            };
            // The plugin cache `weft run` reads, where its data directory is.
            let plugin_cache = data
                .data_dir
                .is_dir()
                .then(|| data.data_dir.join("work").join("plugin-cache"));
            commands::check::check(&files, registry.as_ref(), plugin_cache).await
        }
        Command::Schema => {
            println!("{:#}", weft_core::spec::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            listen,
            embedded,
            data,
        } => {
            let data_dir = embedded.then_some(data.data_dir.as_path());
            commands::serve::serve(config, listen, data_dir).await
        }
        Command::Worker(args) => commands::worker::worker(config, args).await,
        Command::CudaHost => unreachable!("handled before the runtime starts"),
        Command::Gpus(args) => Ok(commands::gpus::gpus(&args)),
        Command::Workers => {
            commands::workers::workers(config, server.map(|url| client(&url))).await
        }
        Command::Plugin { command, data } => {
            let registry = match &server {
                Some(url) => commands::plugin::Registry::Server(client(url)),
                None => commands::plugin::Registry::Embedded(data.data_dir.clone()),
            };
            let compile_ms = config.worker.plugins.max_compile_ms;
            commands::plugin::plugin(registry, command, compile_ms).await
        }
        Command::Workflows(command) => {
            commands::workflows::workflows(client(&needs_server(&server, "workflows")?), command)
                .await
        }
        Command::Schedules => {
            commands::workflows::schedules(client(&needs_server(&server, "schedules")?)).await
        }
        Command::Backfill {
            workflow,
            from,
            to,
            schedule,
        } => {
            commands::workflows::backfill(
                client(&needs_server(&server, "backfill")?),
                &workflow,
                schedule,
                &from,
                &to,
            )
            .await
        }
        Command::Token(commands::token::Command::Recover {
            name,
            embedded,
            data,
        }) => {
            let data_dir = embedded.then_some(data.data_dir.as_path());
            commands::token::recover(&config, &name, data_dir).await
        }
        Command::Token(command) => {
            let url = server.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "`weft token` needs a server: --server URL, WEFT_SERVER, or `[client] server`"
                )
            })?;
            commands::token::token(client(&url), command).await
        }
        Command::Secret { command, data } => {
            let target = match &server {
                Some(url) => commands::secret::Target::Server(client(url)),
                None => commands::secret::Target::Embedded(data.data_dir.clone()),
            };
            commands::secret::secret(target, &config, command).await
        }
        Command::Retry {
            run,
            from,
            wait,
            watch,
            data,
        } => match &server {
            Some(url) => commands::submit::retry(client(url), &run, from.as_deref(), wait).await,
            None => commands::run::retry(&data, &watch, &run, from.as_deref()).await,
        },
        Command::Cancel { run, wait } => {
            let url = server.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "`weft cancel` needs a server: --server URL, WEFT_SERVER, or `[client] server` \
                     (a run of `weft run` stops with Ctrl-C)"
                )
            })?;
            commands::submit::cancel(client(&url), &run, wait).await
        }
        Command::Approve {
            run,
            step,
            reject,
            inputs,
            comment,
        } => {
            let url = server.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "`weft approve` needs a server: --server URL, WEFT_SERVER, or `[client] server` \
                     (approval steps wait on a server: `weft serve`, or `weft serve --embedded`)"
                )
            })?;
            commands::submit::decide(client(&url), &run, &step, !reject, &inputs, comment).await
        }
        Command::Audit { limit } => {
            let url = server.ok_or_else(|| anyhow::anyhow!("`weft audit` needs a server: --server URL, WEFT_SERVER, or `[client] server` in weft.toml"))?;
            commands::audit::audit(client(&url), limit).await
        }
        Command::Submit(args) => {
            let url = server.ok_or_else(|| anyhow::anyhow!("`weft submit` needs a server: --server URL, WEFT_SERVER, or `[client] server` in weft.toml"))?;
            commands::submit::submit(client(&url), args).await
        }
        Command::Runs {
            limit,
            status,
            workflow,
            data,
        } => {
            commands::inspect::runs(
                &source(&data),
                limit,
                status.as_deref(),
                workflow.as_deref(),
            )
            .await
        }
        Command::Show { run, json, data } => {
            commands::inspect::show(&source(&data), &run, json).await
        }
        Command::Gc { dry_run, data } => commands::gc::gc(&config, &data, dry_run).await,
        Command::Artifacts { command, data } => {
            commands::artifacts::artifacts(&source(&data), command).await
        }
        Command::Logs {
            run,
            step,
            attempt,
            follow,
            data,
        } => commands::inspect::logs(&source(&data), &run, &step, attempt, follow).await,
    }
}

fn main() -> ExitCode {
    quiet_when_stdout_closes();
    let cli = Cli::parse();
    if let Command::CudaHost = cli.command {
        // Blocking CUDA calls, on a runtime of its own.
        return weft_gpu_cuda::host::main();
    }
    logging::init();
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
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `weft runs | head` ends quietly when `head` has read enough, as other
/// tools do, not with a panic: Rust ignores SIGPIPE, so `println!` to a
/// closed pipe panics. Exit status 141 is what a shell reports for SIGPIPE.
/// (`weft run` does not print through `println!`: its run goes on.)
fn quiet_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The server a command that only works on one talks to.
fn needs_server(server: &Option<String>, command: &str) -> anyhow::Result<String> {
    server.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "`weft {command}` needs a server (`weft serve`, or `weft serve --embedded`): \
             --server URL, WEFT_SERVER, or `[client] server`"
        )
    })
}
