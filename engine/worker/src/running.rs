//! One attempt on this worker, from while its claim is asked: the GPUs it
//! asks for held, its secrets opened, its run's shared params fetched, its
//! pre hooks, the step in its scratch directory, its post hooks. Each of
//! them that acts (holds, opens, runs) passes the start gate first (see
//! [`crate::gate`]); a shell step without them is prepared before it.

use std::sync::Arc;

use tokio::sync::oneshot;
use weft_core::run::{FailureKind, HookRun, Job, Outcome};

use crate::gate::StartGate;
use crate::gpus::HeldGpus;
use crate::plugins::{self, PostHooks};
use crate::secrets::{Resolved, Secrets};
use crate::steplog::StepLog;
use crate::worker::Worker;

impl Worker {
    /// Holds the GPUs the step asks for while it runs; they are named to it
    /// in `CUDA_VISIBLE_DEVICES` and `WEFT_GPUS`, and given to its container.
    pub(crate) async fn attempt(
        &self,
        job: &Job,
        held: oneshot::Sender<()>,
        hooks: &mut Vec<HookRun>,
        holding: &mut Option<HeldGpus>,
        log: &Arc<StepLog>,
        mut gate: StartGate,
    ) -> Outcome {
        let need = job.resources.gpus as usize;
        if need == 0 {
            drop(held);
            return self.run_attempt(job, &[], hooks, log, gate).await;
        }
        if !gate.pass().await {
            return crate::gate::not_started();
        }
        if need > self.gpus.total() {
            return Outcome::Failed {
                reason: format!(
                    "unschedulable: the step asks for {need} GPU(s); no live worker has that many \
                     (this one, {}, has {})",
                    self.options.name,
                    self.gpus.total()
                ),
                exit_code: None,
                retryable: false,
                kind: FailureKind::Policy,
            };
        }
        let ids = self.gpus.acquire(need).await;
        let _ = held.send(());
        let devices = self.gpus.device_ids(&ids);
        let mut job = job.clone();
        let indices = ids.iter().map(u32::to_string).collect::<Vec<_>>();
        job.env
            .insert("CUDA_VISIBLE_DEVICES".into(), devices.join(","));
        job.env.insert("WEFT_GPUS".into(), indices.join(","));
        *holding = Some(self.gpus.hold(ids));
        self.run_attempt(&job, &devices, hooks, log, gate).await
    }

    /// Opens the step's secrets, runs it, and masks them in what it
    /// leaves: its outcome and its hooks' errors (its log is masked as it
    /// is written).
    async fn run_attempt(
        &self,
        job: &Job,
        gpus: &[String],
        hooks: &mut Vec<HookRun>,
        log: &Arc<StepLog>,
        mut gate: StartGate,
    ) -> Outcome {
        if job.secrets.is_empty() {
            return self
                .run_hooked(job, &Resolved::none(), gpus, hooks, log, gate)
                .await;
        }
        if !gate.pass().await {
            return crate::gate::not_started();
        }
        let resolved =
            match Secrets::resolve_for(self.secrets.as_ref(), job, &self.options.name).await {
                Ok(resolved) => resolved,
                Err(outcome) => return outcome,
            };
        log.set_masker(resolved.masker.clone());
        let mut job = job.clone();
        resolved.fill_configs(&mut job);
        let outcome = self
            .run_hooked(&job, &resolved, gpus, hooks, log, gate)
            .await;
        resolved.mask_hooks(hooks);
        resolved.mask_outcome(outcome)
    }

    /// Pre hooks, the step, post hooks.
    async fn run_hooked(
        &self,
        job: &Job,
        secrets: &Resolved,
        gpus: &[String],
        hooks: &mut Vec<HookRun>,
        log: &Arc<StepLog>,
        mut gate: StartGate,
    ) -> Outcome {
        // What this worker lacks is not the step's fault, and trying again here cannot help.
        let cannot = |reason: String| Outcome::Failed {
            reason,
            exit_code: None,
            retryable: false,
            kind: FailureKind::Infrastructure,
        };
        let plugins = match (&self.plugins, plugins::needs_plugins(job)) {
            (Some(p), true) => Some(p),
            (None, true) => {
                return cannot(format!(
                    "worker {} has no plugin host, and this step uses plugins",
                    self.options.name
                ))
            }
            (_, false) => None,
        };
        let params = match self.params.of(job).await {
            Ok(params) => params,
            Err(outcome) => return outcome,
        };
        let (mut job, post) = match plugins {
            Some(_) if !gate.pass().await => return crate::gate::not_started(),
            Some(p) => {
                let mut job = job.clone();
                if let Some(params) = &params {
                    // Plugins read inputs as values: they get the params in them.
                    crate::params::fill(&mut job, params);
                }
                let job = &job;
                let readable = plugins::HookArtifacts::new(self.artifacts.store.clone(), job);
                let job = match plugins::pre_process(p, log, job.clone(), hooks, &readable).await {
                    Ok(job) => job,
                    Err(outcome) => return outcome,
                };
                match PostHooks::start(p, &job, &readable).await {
                    Ok(post) => (job, post.map(Arc::new)),
                    Err(outcome) => return outcome,
                }
            }
            None => (job.clone(), None),
        };
        if !secrets.is_empty() {
            // At the last moment: the pre hooks saw the references only.
            secrets.fill_env(&mut job);
        }
        if let Some(post) = &post {
            log.set_filter(post.clone());
        }
        let outcome = self
            .artifacts
            .run_in_scratch(
                &self.options,
                &self.executors,
                &mut job,
                params,
                gpus,
                log,
                gate,
            )
            .await;
        match post {
            // The post hooks are given the outcome masked.
            Some(post) => post.finish(secrets.mask_outcome(outcome), hooks, log).await,
            None => outcome,
        }
    }
}
