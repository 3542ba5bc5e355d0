//! One module per command group.

pub mod artifacts;
pub mod audit;
pub mod check;
pub mod inspect;
pub mod plugin;
pub mod run;
pub mod secret;
pub mod serve;
pub mod submit;
pub mod token;
pub mod worker;
pub mod workers;

/// A workflow file and its parameter overrides (`run`, `submit`).
#[derive(clap::Args)]
pub struct WorkflowArgs {
    /// The workflow file.
    pub file: std::path::PathBuf,
    /// Override a parameter: `--param epochs=5` (repeatable).
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    pub params: Vec<String>,
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
