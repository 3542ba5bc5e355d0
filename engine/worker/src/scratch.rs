//! An attempt in its scratch directory: the upstream artifacts it names
//! fetched into it first, what it declares collected from it when it
//! succeeds, and the directory removed at the end, whatever happened.

use std::sync::Arc;

use tokio::sync::watch;
use weft_core::ports::ArtifactStore;
use weft_core::run::{FailureKind, Job, Outcome};
use weft_core::spec::StepAction;

use crate::artifact_cache::ArtifactCache;
use crate::attempt::Attempt;
use crate::executor::Executors;
use crate::steplog::StepLog;
use crate::Options;

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
