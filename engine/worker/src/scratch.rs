//! An attempt in its scratch directory: the upstream artifacts it names
//! fetched into it first, what it declares collected from it when it
//! succeeds, and the directory removed at the end, whatever happened.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use weft_core::ports::ArtifactStore;
use weft_core::run::{FailureKind, Job, Outcome};
use weft_core::spec::StepAction;

use crate::artifact_cache::ArtifactCache;
use crate::attempt::Attempt;
use crate::executor::Executors;
use crate::steplog::StepLog;
use crate::Options;

/// Runs' scratch directories their attempts here have left, each removed
/// once no attempt of its run has ended here for [`IdleRuns::IDLE`] and
/// nothing is in it, rather than at each attempt's end: a chain's steps
/// would otherwise make and remove it at every step, one inode more each
/// (on ext4 without a journal, a scan past every recently freed one).
#[derive(Default)]
pub(crate) struct IdleRuns {
    left: Mutex<HashMap<PathBuf, Instant>>,
}

impl IdleRuns {
    /// How long a run's directory waits, idle, before it goes.
    pub(crate) const IDLE: Duration = Duration::from_secs(5);

    /// An attempt of the run whose directory is `run_dir` has ended here.
    pub(crate) fn left(&self, run_dir: PathBuf) {
        self.lock().insert(run_dir, Instant::now());
    }

    /// Removes the directories idle for `idle` or more that are empty. One
    /// that is not holds an attempt still running, whose end notes it
    /// again; one removed as an attempt starts in it is made again
    /// (`Options::make_attempt_dir`).
    pub(crate) fn sweep(&self, idle: Duration) {
        let due: Vec<PathBuf> = {
            let mut left = self.lock();
            let due = left
                .iter()
                .filter(|(_, at)| at.elapsed() >= idle)
                .map(|(dir, _)| dir.clone())
                .collect::<Vec<_>>();
            for dir in &due {
                left.remove(dir);
            }
            due
        };
        for dir in due {
            let _ = std::fs::remove_dir(dir);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Instant>> {
        self.left.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where this worker keeps artifacts: the store (none: a step that uses or
/// declares artifacts fails here) and its local cache.
#[derive(Default)]
pub(crate) struct ArtifactsHere {
    pub(crate) store: Option<Arc<dyn ArtifactStore>>,
    pub(crate) cache: Option<ArtifactCache>,
}

impl ArtifactsHere {
    /// Runs `job`'s action with `executors`, its artifacts around it.
    // The attempt's parts, each from another owner (the worker, the job,
    // its hooks): a struct for them would be built for this one call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run_in_scratch(
        &self,
        options: &Options,
        executors: &Executors,
        job: &mut Job,
        params: Option<Arc<str>>,
        abort: watch::Receiver<bool>,
        gpus: &[String],
        log: &Arc<StepLog>,
    ) -> Outcome {
        let dir = options.attempt_dir(job);
        let (store, cache) = (self.store.as_ref(), self.cache.as_ref());
        // Without a store a kernel's large outputs stay files on this
        // worker, read by later steps here, as before artifacts.
        let kernel_keeps_files = matches!(job.action, StepAction::Cuda { .. }) && store.is_none();
        if kernel_keeps_files {
            job.produces.clear();
        }
        if !job.artifacts.is_empty() {
            if let Err(e) = options.make_attempt_dir(job) {
                return Outcome::Failed {
                    reason: format!("preparing {}: {e}", dir.display()),
                    exit_code: None,
                    retryable: true,
                    kind: FailureKind::Infrastructure,
                };
            }
            if let Err(outcome) = crate::artifacts::fetch(store, cache, job, &dir).await {
                options.remove_attempt_dir(job);
                return outcome;
            }
        }
        let attempt = Attempt {
            inputs: crate::params::InputsText::of(job, params),
            job,
            options,
            log: log.clone(),
            abort,
            gpus,
        };
        let mut outcome = executors.run(attempt, &job.action).await;
        if let Outcome::Succeeded { artifacts, .. } = &mut outcome {
            // Declared paths are the step's working directory's.
            let base = match (&job.action, &options.cwd) {
                (StepAction::Run { .. }, Some(cwd)) => cwd.clone(),
                _ => dir.clone(),
            };
            let max = options.max_artifact_bytes;
            match crate::artifacts::collect(store, cache, job, &base, &dir, max).await {
                Ok(collected) => *artifacts = collected,
                Err(failed) => outcome = failed,
            }
        }
        if !kernel_keeps_files {
            options.remove_attempt_dir(job);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_directory_goes_once_idle_and_empty() {
        let root = tempfile::tempdir().unwrap();
        let (quiet, busy) = (root.path().join("quiet"), root.path().join("busy"));
        std::fs::create_dir(&quiet).unwrap();
        std::fs::create_dir_all(busy.join("a@1")).unwrap();
        let runs = IdleRuns::default();
        runs.left(quiet.clone());
        runs.left(busy.clone());
        runs.sweep(IdleRuns::IDLE);
        assert!(quiet.exists(), "kept while its run may go on here");
        runs.sweep(Duration::ZERO);
        assert!(!quiet.exists(), "removed once idle");
        assert!(busy.exists(), "one holding a running attempt stays");
        std::fs::remove_dir(busy.join("a@1")).unwrap();
        runs.sweep(Duration::ZERO);
        assert!(
            busy.exists(),
            "and is forgotten until an attempt ends again"
        );
        runs.left(busy.clone());
        runs.sweep(Duration::ZERO);
        assert!(!busy.exists());
    }
}
