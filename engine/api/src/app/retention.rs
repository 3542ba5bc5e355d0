//! Applying `[retention]` to a store: removing the finished runs and logs
//! the plan lets go of, pruning expired cache entries, and sweeping the
//! artifact store of objects no kept run and no live cache entry refers to.
//! `weft serve` does it every `every`; `weft gc` once, on the embedded store.

use std::collections::BTreeSet;

use serde::Serialize;
use weft_core::artifacts::Digest;
use weft_core::ports::{ArtifactStore, AttemptId, RunRemoval, RunStore, StepCache};
use weft_core::retention::RetentionOptions;
use weft_core::run::{Event, Millis, Outcome};
use weft_core::Error;

/// The stores retention works on.
pub struct RetentionStores<'a> {
    pub runs: &'a dyn RunStore,
    pub removal: &'a dyn RunRemoval,
    pub cache: Option<&'a dyn StepCache>,
    pub artifacts: Option<&'a dyn ArtifactStore>,
}

/// What one pass removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub runs_removed: Vec<String>,
    /// Runs whose step logs were removed (the runs are kept).
    pub logs_removed: usize,
    pub artifacts_removed: usize,
    pub artifact_bytes_removed: u64,
    pub cache_entries_pruned: u64,
    /// Pieces of uploads that never finished (a worker killed mid-upload).
    pub stale_uploads_removed: u64,
}

impl std::fmt::Display for RetentionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} run(s), the logs of {} run(s), {} artifact(s) ({} MiB), {} expired cache entries, \
             {} piece(s) of unfinished uploads",
            self.runs_removed.len(),
            self.logs_removed,
            self.artifacts_removed,
            self.artifact_bytes_removed >> 20,
            self.cache_entries_pruned,
            self.stale_uploads_removed
        )
    }
}

/// One pass of `options` over `stores` at `now`; with `dry_run`, only
/// says what it would remove.
pub async fn apply_retention(
    stores: &RetentionStores<'_>,
    options: &RetentionOptions,
    now: Millis,
    dry_run: bool,
) -> Result<RetentionReport, Error> {
    let runs = stores.runs.list_runs(usize::MAX).await?;
    let plan = options.plan(&runs, now);
    let mut report = RetentionReport::default();
    for id in &plan.remove_runs {
        let attempts = attempts_of(&stores.runs.events(id).await?, id);
        // A run that another server removed first, or that is gone: fine.
        if dry_run || stores.removal.remove_run(id, &attempts).await? {
            report.runs_removed.push(id.clone());
        }
    }
    for id in &plan.drop_logs {
        let attempts = attempts_of(&stores.runs.events(id).await?, id);
        if !dry_run {
            stores.removal.remove_logs(&attempts).await?;
        }
        report.logs_removed += 1;
    }
    if let Some(cache) = stores.cache {
        if !dry_run {
            report.cache_entries_pruned = cache.prune_cached(now).await?;
        }
    }
    let Some(artifacts) = stores.artifacts else {
        return Ok(report);
    };
    let mut live: BTreeSet<Digest> = match stores.cache {
        Some(cache) => cache.cached_artifacts(now).await?,
        None => BTreeSet::new(),
    };
    for id in &plan.keep_artifacts_of {
        live.extend(artifacts_in(&stores.runs.events(id).await?));
    }
    let grace = options.upload_grace.as_millis() as u64;
    if !dry_run {
        report.stale_uploads_removed = artifacts
            .remove_stale_uploads(now.saturating_sub(grace))
            .await?;
    }
    for object in artifacts.list().await? {
        if live.contains(&object.digest) || object.stored_at.saturating_add(grace) > now {
            continue;
        }
        if dry_run || artifacts.remove(&object.digest).await? {
            report.artifacts_removed += 1;
            report.artifact_bytes_removed += object.size;
        }
    }
    Ok(report)
}

/// Every attempt a run's events name: whose claims and logs there may be.
fn attempts_of(events: &[Event], run_id: &str) -> Vec<AttemptId> {
    let mut seen = BTreeSet::new();
    for e in events {
        if let Event::TaskStarted { task, attempt, .. }
        | Event::TaskFinished { task, attempt, .. } = e
        {
            seen.insert((task.clone(), *attempt));
        }
    }
    seen.into_iter()
        .map(|(task, attempt)| AttemptId {
            run_id: run_id.to_string(),
            task,
            attempt,
        })
        .collect()
}

/// Every artifact a run's events refer to, whichever execution left it.
fn artifacts_in(events: &[Event]) -> impl Iterator<Item = Digest> + '_ {
    events.iter().flat_map(|e| {
        let found = match e {
            Event::TaskFinished {
                outcome: Outcome::Succeeded { artifacts, .. },
                ..
            }
            | Event::StepReused { artifacts, .. }
            | Event::TaskCached { artifacts, .. } => Some(artifacts),
            _ => None,
        };
        found
            .into_iter()
            .flat_map(|a| a.values().map(|r| r.digest.clone()))
    })
}

/// Applies `options` every `options.every` until the process ends; each
/// pass's failures are logged and the next pass tries again.
pub fn spawn_retention(
    owned: RetentionOwned,
    options: RetentionOptions,
    clock: std::sync::Arc<dyn weft_core::ports::Clock>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(options.every).await;
            let stores = owned.borrowed();
            match apply_retention(&stores, &options, clock.now(), false).await {
                Ok(report) => tracing::info!("retention removed {report}"),
                Err(e) => tracing::warn!(
                    "applying retention: {e}; trying again in {:?}",
                    options.every
                ),
            }
        }
    })
}

/// [`RetentionStores`] held by a background task.
#[derive(Clone)]
pub struct RetentionOwned {
    pub runs: std::sync::Arc<dyn RunStore>,
    pub removal: std::sync::Arc<dyn RunRemoval>,
    pub cache: Option<std::sync::Arc<dyn StepCache>>,
    pub artifacts: Option<std::sync::Arc<dyn ArtifactStore>>,
}

impl RetentionOwned {
    pub fn borrowed(&self) -> RetentionStores<'_> {
        RetentionStores {
            runs: self.runs.as_ref(),
            removal: self.removal.as_ref(),
            cache: self.cache.as_deref(),
            artifacts: self.artifacts.as_deref(),
        }
    }
}
