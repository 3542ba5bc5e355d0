//! One module per command group.

pub mod artifacts;
pub mod audit;
pub mod check;
pub mod gc;
pub mod gpus;
pub mod inspect;
pub mod plugin;
pub mod progress_remote;
pub mod run;
pub mod secret;
pub mod serve;
pub mod submit;
pub mod token;
pub mod worker;
pub mod workers;
pub mod workflows;

/// A workflow file and its parameter overrides (`run`, `submit`).
#[derive(clap::Args)]
pub struct WorkflowArgs {
    /// The workflow file.
    pub file: std::path::PathBuf,
    /// Override a parameter: `--param epochs=5` (repeatable).
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Run every step, reusing no cached result (results are still saved).
    #[arg(long)]
    pub no_cache: bool,
    /// Run this step even if a result is cached (repeatable).
    #[arg(long = "refresh", value_name = "STEP")]
    pub refresh: Vec<String>,
    /// -1000 to 1000, higher first: its place among runs waiting for a
    /// `[workflow] concurrency` key's slots, and its jobs' band in their
    /// pools' queues (above 0 before 0 before below 0).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-1000..=1000))]
    pub priority: i32,
}

impl WorkflowArgs {
    /// What the run chooses about the cache; an unknown step is an error.
    pub fn cache_choice(
        &self,
        workflow: &weft_core::spec::Workflow,
    ) -> anyhow::Result<weft_core::cache::RunCacheChoice> {
        let choice = weft_core::cache::RunCacheChoice {
            no_cache: self.no_cache,
            refresh: self.refresh.iter().cloned().collect(),
        };
        choice.check(workflow).map_err(|e| anyhow::anyhow!(e))?;
        Ok(choice)
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
