//! The worker loop: one taker per pool, at most `concurrency` attempts at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use weft_core::ports::{
    Claim, Clock, Delivery, JobQueue, LogKey, Report, ReportKind, RunStore, WorkerRegistry,
};
use weft_core::run::{Job, Outcome};
use weft_core::spec::StepAction;

use std::sync::atomic::Ordering;

use crate::heartbeat::{beat, Running};
use crate::{shell, Aborts, Error, Options, Stats};

/// A worker bound to a queue and a store.
pub struct Worker {
    queue: Arc<dyn JobQueue>,
    store: Arc<dyn RunStore>,
    clock: Arc<dyn Clock>,
    options: Arc<Options>,
    aborts: Aborts,
    stats: Arc<Stats>,
    registry: Option<(Arc<dyn WorkerRegistry>, Option<String>)>,
    running: Running,
}

impl Worker {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        store: Arc<dyn RunStore>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Self {
        Self {
            queue,
            store,
            clock,
            options: Arc::new(options),
            aborts: Aborts::default(),
            stats: Arc::default(),
            registry: None,
            running: Running::default(),
        }
    }

    /// Reports this worker to `registry` every heartbeat; `status_url` is
    /// where its `/healthz` and `/metrics` are.
    pub fn with_registry(
        mut self,
        registry: Arc<dyn WorkerRegistry>,
        status_url: Option<String>,
    ) -> Self {
        self.registry = Some((registry, status_url));
        self
    }

    /// Live counters, for the status endpoint.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The handle the orchestrator uses to stop attempts running here.
    pub fn aborts(&self) -> Aborts {
        self.aborts.clone()
    }

    /// Takes and runs jobs until `shutdown` turns true; then waits for
    /// running attempts to finish.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        std::fs::create_dir_all(&self.options.work_dir).map_err(|source| Error::WorkDir {
            path: self.options.work_dir.display().to_string(),
            source,
        })?;
        let slots = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        self.stats
            .slots
            .store(self.options.concurrency.max(1) as u64, Ordering::Relaxed);
        let this = Arc::new(self);
        let heartbeat = this.registry.clone().map(|(registry, url)| {
            tokio::spawn(beat(
                registry.clone(),
                this.clock.clone(),
                this.options.clone(),
                this.running.clone(),
                url,
            ))
        });
        let mut takers = tokio::task::JoinSet::new();
        for pool in this.options.pools.clone() {
            let (this, slots) = (this.clone(), slots.clone());
            takers.spawn(async move {
                loop {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return Ok::<_, Error>(());
                    };
                    let delivery = this.queue.take(&pool).await?;
                    let this = this.clone();
                    tokio::spawn(async move {
                        this.execute(delivery).await;
                        drop(permit);
                    });
                }
            });
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => {}
            Some(Ok(Err(e))) = takers.join_next() => return Err(e),
        }
        takers.abort_all();
        if let Some(h) = heartbeat {
            h.abort();
        }
        // Drain: wait until every slot is free again.
        let _ = slots
            .acquire_many(this.options.concurrency.max(1) as u32)
            .await;
        if let Some((registry, _)) = &this.registry {
            let _ = registry.leave(&this.options.name).await;
        }
        Ok(())
    }

    /// How long a claim on a running attempt lasts without renewal.
    fn claim_ttl(&self) -> Duration {
        Duration::from_millis(self.options.heartbeat_ms.saturating_mul(3).max(300))
    }

    /// Claims the attempt: `true` to run it, `false` if it is finished or
    /// aborted (the delivery is then settled). While another live worker
    /// holds it (the broker redelivered a job that is still running, e.g.
    /// past its consumer timeout), waits holding the delivery.
    async fn claim(&self, key: &LogKey, delivery: &mut Option<Box<dyn Delivery>>) -> bool {
        let ttl = self.claim_ttl();
        let mut deferred = false;
        loop {
            match self
                .store
                .claim(
                    key,
                    &self.options.name,
                    self.clock.now(),
                    ttl.as_millis() as u64,
                )
                .await
            {
                Ok(Claim::Held) => return true,
                Ok(Claim::Done | Claim::Aborted) => {
                    if let Some(d) = delivery.take() {
                        let _ = d.ack().await;
                    }
                    return false;
                }
                Ok(Claim::HeldBy(_)) => {
                    if !std::mem::replace(&mut deferred, true) {
                        self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(ttl / 3).await;
                }
                Err(e) => {
                    eprintln!(
                        "weft: claiming {}/{}#{}: {e}; retrying",
                        key.run_id, key.task, key.attempt
                    );
                    tokio::time::sleep(ttl / 3).await;
                }
            }
        }
    }

    async fn execute(&self, delivery: Box<dyn Delivery>) {
        let job = delivery.job().clone();
        let key = LogKey {
            run_id: job.run_id.clone(),
            task: job.task.clone(),
            attempt: job.attempt,
        };
        let mut delivery = Some(delivery);
        if !self.claim(&key, &mut delivery).await {
            return;
        }
        let Some(delivery) = delivery else { return };
        let abort = self.aborts.watch(&job.run_id, &job.task, job.attempt);
        if *abort.borrow() {
            self.aborts.forget(&job.run_id, &job.task, job.attempt);
            let _ = delivery.ack().await;
            return;
        }
        // Renew the claim while the step runs; stop the step if the claim
        // is aborted or lost to another worker.
        let renewal = {
            let (store, clock, aborts, name, key, ttl) = (
                self.store.clone(),
                self.clock.clone(),
                self.aborts.clone(),
                self.options.name.clone(),
                key.clone(),
                self.claim_ttl(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    match store
                        .claim(&key, &name, clock.now(), ttl.as_millis() as u64)
                        .await
                    {
                        Ok(Claim::Held) | Err(_) => {}
                        Ok(_) => {
                            aborts.abort(&key.run_id, &key.task, key.attempt);
                            return;
                        }
                    }
                }
            })
        };
        let report = |kind| Report {
            run_id: job.run_id.clone(),
            task: job.task.clone(),
            attempt: job.attempt,
            worker: self.options.name.clone(),
            at: self.clock.now(),
            kind,
        };
        if self
            .queue
            .report(&report(ReportKind::Started))
            .await
            .is_err()
        {
            renewal.abort();
            let _ = delivery.reject(true).await;
            return;
        }
        let label = format!("{}/{}#{}", job.run_id, job.task, job.attempt);
        self.running
            .lock()
            .expect("running lock")
            .insert(label.clone());
        self.stats.running.fetch_add(1, Ordering::Relaxed);
        let outcome = self.attempt(&job, abort).await;
        renewal.abort();
        self.stats.running.fetch_sub(1, Ordering::Relaxed);
        self.running.lock().expect("running lock").remove(&label);
        let counter = match &outcome {
            Outcome::Succeeded { .. } => &self.stats.succeeded,
            Outcome::Failed { .. } => &self.stats.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.aborts.forget(&job.run_id, &job.task, job.attempt);
        match self
            .queue
            .report(&report(ReportKind::Finished { outcome }))
            .await
        {
            Ok(()) => {
                // Recorded: a redelivered copy of this job will find it done.
                let _ = self.store.finish_claim(&key).await;
                let _ = delivery.ack().await;
            }
            // Not recorded: let the job come back rather than lose its result.
            Err(_) => {
                let _ = delivery.reject(true).await;
            }
        }
    }

    async fn attempt(&self, job: &Job, abort: watch::Receiver<bool>) -> Outcome {
        let unsupported = |what: &str, with: &str| Outcome::Failed {
            reason: format!("{what} steps are not supported yet: they arrive with {with}"),
            exit_code: None,
            retryable: false,
        };
        if !job.pre_hooks.is_empty() || !job.post_hooks.is_empty() {
            return Outcome::Failed {
                reason: "plugin hooks are not supported yet: they arrive with the WASM plugin host"
                    .into(),
                exit_code: None,
                retryable: false,
            };
        }
        match &job.action {
            StepAction::Run { command } => {
                shell::run(job, command, &self.options, &self.store, abort).await
            }
            StepAction::Container { .. } => unsupported("container", "the Docker executor"),
            StepAction::Cuda { .. } => unsupported("cuda", "the CUDA executor"),
            StepAction::Wasm { .. } => unsupported("wasm", "the WASM plugin host"),
            StepAction::Join => Outcome::Succeeded {
                outputs: serde_json::json!({}),
            },
        }
    }
}
