//! `weft gc [--dry-run]`: `[retention]` applied once to the embedded store
//! and its artifacts (a server applies it on its own, every `every`).

use std::process::ExitCode;

use weft_core::ports::Clock;

use crate::config::Config;
use crate::{embedded, DataDir};

pub async fn gc(config: &Config, data: &DataDir, dry_run: bool) -> anyhow::Result<ExitCode> {
    let Some(options) = &config.retention else {
        anyhow::bail!(
            "no `[retention]` in the configuration: nothing says what to remove \
             (see docs/configuration.md, for example `[retention]\\nruns = \"30d\"`)"
        );
    };
    let store = embedded::open_store(&data.data_dir)?;
    let artifacts = config.artifact_store(Some(&data.data_dir.join("artifacts")))?;
    let stores = weft_api::app::RetentionStores {
        runs: store.as_ref(),
        removal: store.as_ref(),
        cache: Some(store.as_ref()),
        artifacts: artifacts.as_deref(),
    };
    let now = weft_orchestrator::SystemClock.now();
    let report = weft_api::app::apply_retention(&stores, options, now, dry_run).await?;
    let verb = if dry_run { "would remove" } else { "removed" };
    println!("{verb} {report}");
    for id in &report.runs_removed {
        println!("  run {id}");
    }
    Ok(ExitCode::SUCCESS)
}
