//! The worker loop: one taker per pool, at most `concurrency` attempts at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch, Semaphore};
use tracing::Instrument;
use weft_core::ports::{
    ArtifactStore, AttemptId, ClaimedExecution, Clock, ContainerRuntime, Delivery, JobQueue,
    KernelRuntime, Report, ReportKind, RunStore, WorkerRegistry,
};
use weft_core::run::Outcome;
use weft_core::spec::{gpu_pool, Command};

use std::sync::atomic::Ordering;

use crate::claim::{label, HeldClaim, Recorded};
use crate::executor::{ContainerExecutor, Executor, Executors, KernelExecutor, WasmExecutor};
use crate::gate::StartGate;
use crate::gpus::{self, Gpus};
use crate::heartbeat::{beat, Running};
use crate::plugins::Plugins;
use crate::room::{gpu_room, room, Free, Slot};
use crate::secrets::Secrets;
use crate::steplog::StepLog;
use crate::{Aborts, Error, Options, Stats};

/// How long a step runs before its `Started` report is sent; one that ends
/// sooner has its start told in its end.
const START_REPORT_AFTER: Duration = Duration::from_millis(50);

/// A worker bound to a queue and a store.
pub struct Worker {
    pub(crate) queue: Arc<dyn JobQueue>,
    pub(crate) store: Arc<dyn RunStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) options: Arc<Options>,
    aborts: Aborts,
    pub(crate) stats: Arc<Stats>,
    registry: Option<(Arc<dyn WorkerRegistry>, Option<String>)>,
    running: Running,
    pub(crate) plugins: Option<Plugins>,
    pub(crate) secrets: Option<Secrets>,
    /// Where steps' artifacts are kept, and this worker's cache of them.
    pub(crate) artifacts: crate::scratch::ArtifactsHere,
    /// Kept beside its executor to remove an earlier life's containers.
    containers: Option<Arc<dyn ContainerRuntime>>,
    pub(crate) executors: Executors,
    pub(crate) gpus: Arc<Gpus>,
    claimants: Arc<weft_core::ports::Claimants>,
    /// Runs' params that their jobs carry by reference.
    pub(crate) params: crate::params::SharedParams,
    /// Where each execution's span goes; none: no traces.
    spans: Option<Arc<dyn weft_core::ports::SpanSink>>,
}

impl Worker {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        store: Arc<dyn RunStore>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Self {
        let gpus = Arc::new(Gpus::new(gpus::detect(options.gpus.as_deref())));
        let claimants = Arc::new(weft_core::ports::Claimants::new(&options.name, clock.now()));
        Self {
            params: crate::params::SharedParams::new(store.clone()),
            queue,
            store,
            clock,
            options: Arc::new(options),
            aborts: Aborts::default(),
            stats: Arc::default(),
            registry: None,
            running: Running::default(),
            plugins: None,
            secrets: None,
            artifacts: Default::default(),
            containers: None,
            executors: Executors::default(),
            gpus,
            claimants,
            spans: None,
        }
    }

    /// Sends a span for each execution it runs (`weft_core::trace`), under
    /// its step's span in its run's trace, to `spans`.
    pub fn with_spans(mut self, spans: Arc<dyn weft_core::ports::SpanSink>) -> Self {
        self.spans = Some(spans);
        self
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

    /// Opens the secrets steps name from this store with this keyring; a
    /// worker without them fails steps that use secrets.
    pub fn with_secrets(mut self, secrets: Secrets) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Runs plugin hooks and `wasm` steps with this host and store; a
    /// worker without them fails steps that use plugins.
    pub fn with_plugins(mut self, plugins: Plugins) -> Self {
        self.executors.wasm = Some(Arc::new(WasmExecutor(plugins.clone())));
        self.plugins = Some(plugins);
        self
    }

    /// Runs container steps on this runtime; a worker without one fails them.
    pub fn with_containers(mut self, runtime: Arc<dyn ContainerRuntime>) -> Self {
        self.executors.containers = Some(Arc::new(ContainerExecutor(runtime.clone())));
        self.containers = Some(runtime);
        self
    }

    /// Runs CUDA steps on this runtime; a worker without one fails them.
    pub fn with_kernels(mut self, runtime: Arc<dyn KernelRuntime>) -> Self {
        self.executors.kernels = Some(Arc::new(KernelExecutor(runtime)));
        self
    }

    /// Runs `run` steps with `executor` instead of a local shell.
    /// Gives the worker an artifact store.
    pub fn with_artifacts(mut self, store: Arc<dyn ArtifactStore>) -> Self {
        self.artifacts.store = Some(store);
        self
    }

    pub fn with_command_executor(mut self, executor: Arc<dyn Executor<Command>>) -> Self {
        self.executors.shell = executor;
        self.executors.custom_shell = true;
        self
    }

    pub fn options(&self) -> &Options {
        &self.options
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
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        std::fs::create_dir_all(&self.options.work_dir).map_err(|source| Error::WorkDir {
            path: self.options.work_dir.display().to_string(),
            source,
        })?;
        let concurrency = self.options.concurrency.max(1);
        let (mut in_flight_most, waiting_most) =
            crate::room::in_flight(concurrency, self.options.prepare_ahead);
        // A step user's uid is held from an attempt's preparation to its
        // step's end: by one attempt a slot, or, where jobs are prepared
        // ahead of their slot, by one in flight (not only those running or
        // waiting: one cancelled while it waited gives up its place, then
        // undoes what it prepared).
        let holders = if self.options.prepare_ahead {
            in_flight_most
        } else {
            concurrency
        };
        // A shell executor given from outside (a simulation's) keeps its own
        // idea of users.
        let setup = if self.executors.custom_shell {
            crate::users::Setup::default()
        } else {
            crate::users::StepUsers::set_up(
                &self.options.name,
                &self.options.run_as,
                self.options.step_uids,
                concurrency,
                holders,
                &self.options.work_dir,
            )
            .map_err(Error::StepUsers)?
        };
        if let Some(users) = setup.users {
            if let Some(uids) = users.uids().filter(|_| self.options.prepare_ahead) {
                // A range of `step-uids` narrower than the jobs in flight
                // (it holds at least one a slot): fewer are prepared ahead.
                in_flight_most = in_flight_most.min(uids);
            }
            self.executors.shell = Arc::new(crate::executor::ShellExecutor { users: Some(users) });
        }
        // Kept until the worker stops, then removed with what is left in it.
        let scratch_root = setup.scratch;
        if let Some(scratch) = &scratch_root {
            Arc::make_mut(&mut self.options).scratch_dir = Some(scratch.path().to_path_buf());
        }
        if self.artifacts.store.is_some() && self.options.artifact_cache_bytes > 0 {
            self.artifacts.cache = Some(crate::artifact_cache::ArtifactCache::new(
                self.options.work_dir.join("artifact-cache"),
                self.options.artifact_cache_bytes,
            ));
        }
        if let Some(runtime) = &self.containers {
            // Containers of an earlier life of this worker have no one to report them.
            match runtime.remove_orphans(&self.options.name).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!("removed {n} container(s) left by an earlier run of this worker")
                }
                Err(e) => tracing::warn!("removing leftover containers: {e}"),
            }
        }
        let slots = Arc::new(Semaphore::new(concurrency));
        let in_flight = Arc::new(Semaphore::new(in_flight_most));
        let waiting = Arc::new(Semaphore::new(waiting_most));
        self.stats
            .slots
            .store(concurrency as u64, Ordering::Relaxed);
        let this = Arc::new(self);
        let heartbeat = this.registry.clone().map(|(registry, url)| {
            tokio::spawn(beat(
                registry.clone(),
                this.clock.clone(),
                this.options.clone(),
                this.running.clone(),
                this.gpus.clone(),
                url,
            ))
        });
        // Aborted when dropped, on every way out of here.
        let mut sweeper = tokio::task::JoinSet::new();
        let swept = this.clone();
        sweeper.spawn(async move {
            let idle = crate::scratch::ScratchDirs::IDLE;
            loop {
                tokio::time::sleep(idle).await;
                let this = swept.clone();
                let _ =
                    tokio::task::spawn_blocking(move || this.artifacts.scratch.sweep(idle)).await;
            }
        });
        let mut takers = tokio::task::JoinSet::new();
        // A worker with GPUs also takes its pools' GPU steps; so does a
        // worker on its own (embedded), to fail those it cannot run.
        let takes_gpu_steps = this.gpus.total() > 0 || this.registry.is_none();
        let queues = this.options.pools.iter().flat_map(|p| {
            let gpu = takes_gpu_steps.then(|| (gpu_pool(p), true));
            std::iter::once((p.clone(), false)).chain(gpu)
        });
        for (pool, needs_gpu) in queues.collect::<Vec<_>>() {
            let (this, slots, in_flight) = (this.clone(), slots.clone(), in_flight.clone());
            let waiting = waiting.clone();
            let stopping = shutdown.clone();
            takers.spawn(async move {
                loop {
                    if needs_gpu && this.gpus.total() > 0 {
                        // Take a GPU step only with a GPU free to run it.
                        gpu_room(this.queue.as_ref(), &this.gpus, &pool).await?;
                    }
                    // Room, then a job there, then a slot, then the job.
                    // A taker waits for jobs only with room for one (so
                    // the broker sends jobs to workers that can start
                    // them); it waits without holding a slot, since a taker
                    // on a quiet queue (the GPU queue, most of the time)
                    // must not sit on a slot a step from another queue
                    // could run in; and the job it takes is the best one
                    // waiting once it holds a slot (the highest priority
                    // band), not when it last looked.
                    // A worker that prepares ahead (`Options::prepare_ahead`)
                    // takes a job with room in flight alone; the job waits
                    // for its slot claimed and prepared (`execute`).
                    let ahead = this.options.prepare_ahead && !needs_gpu;
                    if !ahead {
                        let Some(free) = room(this.queue.as_ref(), &slots, &pool).await? else {
                            return Ok::<_, Error>(());
                        };
                        drop(free);
                    }
                    this.queue.wait_for_job(&pool).await?;
                    let Ok(flying) = in_flight.clone().acquire_owned().await else {
                        return Ok(());
                    };
                    let slot = if ahead {
                        // Its place among the jobs waiting for a slot,
                        // given up once it has one.
                        let Ok(place) = waiting.clone().acquire_owned().await else {
                            return Ok(());
                        };
                        Slot::Later(slots.clone(), stopping.clone(), place)
                    } else {
                        let Some(slot) = room(this.queue.as_ref(), &slots, &pool).await? else {
                            return Ok(());
                        };
                        Slot::Held(slot)
                    };
                    let Some(delivery) = this.queue.try_take(&pool).await? else {
                        // Another taker was first.
                        continue;
                    };
                    let (held, gpus_held) = oneshot::channel();
                    let this = this.clone();
                    // Everything logged about this attempt names it.
                    let job = delivery.job();
                    let span = tracing::info_span!(
                        "attempt",
                        run = %job.run_id,
                        task = %job.task,
                        attempt = job.attempt
                    );
                    tokio::spawn(
                        async move {
                            this.execute(delivery, held, slot).await;
                            drop(flying);
                        }
                        .instrument(span),
                    );
                    if needs_gpu {
                        // Until this job holds its GPUs, they still look
                        // free: wait, or the next one would be taken for
                        // the same GPU. (A job that ends before holding any
                        // drops the sender, which ends the wait too.)
                        let _ = gpus_held.await;
                    }
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
        // Drain: wait until every attempt has ended and settled.
        let _ = in_flight.acquire_many(in_flight_most as u32).await;
        sweeper.abort_all();
        this.artifacts.scratch.remove_all();
        if let Some((registry, _)) = &this.registry {
            let _ = registry.leave(&this.options.name).await;
        }
        Ok(())
    }

    /// Runs one copy of a job in `slot` (for a job taken ahead of one,
    /// the first free once it is claimed), which it frees as soon as its
    /// step has ended; `held` is told once the job holds its GPUs (or
    /// dropped, when it never will).
    async fn execute(&self, delivery: Box<dyn Delivery>, held: oneshot::Sender<()>, slot: Slot) {
        let job = delivery.job().clone();
        let key = AttemptId::of(&job);
        let need = job.resources.gpus as usize;
        if need > self.gpus.total() && self.bigger_worker(need).await {
            // Leave it to a worker with enough GPUs.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = delivery.reject(true).await;
            return;
        }
        let mut delivery = Some(delivery);
        let claimant = self.claimants.next();
        let mut hooks = Vec::new();
        let mut gpus = None;
        // The attempt's one log writer: executors, hooks and the notes below.
        let log = StepLog::new(self.store.clone(), key.clone(), self.options.max_log_bytes);
        // The attempt begins while its claim is asked: until the claim is
        // held it only prepares, at its start gate (see `gate`), through
        // which its abort signal then comes.
        let (gate_key, gate) = StartGate::closed();
        let mut attempt = Box::pin(self.attempt(&job, held, &mut hooks, &mut gpus, &log, gate));
        // What the attempt ended with before its gate opened (it could not
        // prepare, or the worker cannot run it).
        let mut ended_unstarted = None;
        let claimed = {
            let claim = self.claim(&key, &claimant, &mut delivery);
            tokio::pin!(claim);
            loop {
                tokio::select! {
                    // The claim first: its request goes out, then the
                    // attempt prepares while it is answered.
                    biased;
                    claimed = &mut claim => break claimed,
                    outcome = &mut attempt, if ended_unstarted.is_none() => {
                        ended_unstarted = Some(outcome);
                    }
                }
            }
        };
        // Held, not aborted meanwhile, and in a slot: the step may start.
        // A slot taken before the job is kept until an attempt that does
        // not start has undone what it prepared: until then it holds its
        // step user (see `StepUsers::uids`).
        let mut slot = Some(slot);
        let go = async {
            let (held, delivery) = claimed.zip(delivery).ok_or(NotStarted::Settled)?;
            let abort = self.aborts.watch(&job.run_id, &job.task, job.attempt);
            if *abort.borrow() {
                self.aborts.forget(&job.run_id, &job.task, job.attempt);
                return Err(NotStarted::Aborted(delivery, held.1));
            }
            let claim = Arc::new(HeldClaim {
                store: self.store.clone(),
                clock: self.clock.clone(),
                claimant,
                key: key.clone(),
                token: held.0,
                ttl: self.claim_ttl(),
            });
            // Renewed until the end is recorded (or while the job waits for
            // its slot); this execution is stopped if its attempt is
            // aborted or its claim lost to another execution.
            let (stop, stopped) = watch::channel(false);
            let renewal = claim.spawn_renewal(abort, stop);
            let free = slot.take().expect("taken once").when_free(stopped);
            tokio::pin!(free);
            let free = loop {
                tokio::select! {
                    // A job prepared ahead finishes preparing meanwhile.
                    biased;
                    free = &mut free => break free,
                    outcome = &mut attempt, if ended_unstarted.is_none() => {
                        ended_unstarted = Some(outcome);
                    }
                }
            };
            let Free::Slot(slot, abort) = free else {
                renewal.abort();
                self.aborts.forget(&job.run_id, &job.task, job.attempt);
                return Err(match free {
                    Free::Stopping => NotStarted::Stopping(delivery),
                    _ => NotStarted::Aborted(delivery, held.1),
                });
            };
            Ok((held, delivery, abort, claim, renewal, slot))
        }
        .await;
        let ((token, earlier), delivery, abort, claim, renewal, slot) = match go {
            Ok(go) => go,
            Err(not_started) => {
                // Shut: the attempt undoes what it prepared, then the job
                // is settled (by `claim`, or here).
                drop(gate_key);
                if ended_unstarted.is_none() {
                    attempt.await;
                }
                drop(slot);
                match not_started {
                    NotStarted::Settled => {}
                    NotStarted::Aborted(delivery, earlier) => {
                        self.settle_unstarted(&key, delivery, earlier).await;
                    }
                    // Its claim, never renewed again, lapses: the execution
                    // it began is told to the server as one that may have
                    // run when the job is taken again (after a restart).
                    NotStarted::Stopping(delivery) => {
                        let _ = delivery.reject(true).await;
                    }
                }
                return;
            }
        };
        // The step starts now, in its slot.
        let claimed_at = self.clock.now();
        let report = |kind| Report {
            run_id: job.run_id.clone(),
            task: job.task.clone(),
            attempt: job.attempt,
            worker: self.options.name.clone(),
            at: self.clock.now(),
            execution: token,
            earlier: earlier.clone(),
            kind,
        };
        // The claim recorded this execution's start, durably, before
        // anything runs: were the worker to die now, the next claim (or an
        // abort) tells the server of it. The `Started` report is for
        // people watching: sent once the step has run a while, and for a
        // shorter one folded into its end (one message instead of two).
        let (ended, ending) = oneshot::channel::<()>();
        let announcing = {
            let (queue, started) = (self.queue.clone(), report(ReportKind::Started));
            let to = job.reply_to.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = ending => false,
                    () = tokio::time::sleep(START_REPORT_AFTER) => {
                        queue.report(to.as_deref(), &started).await.is_ok()
                    }
                }
            })
        };
        let label = label(&key);
        self.running
            .lock()
            .expect("running lock")
            .insert(label.clone());
        self.stats.running.fetch_add(1, Ordering::Relaxed);
        if token > 1 {
            // An earlier execution of this attempt may have written some.
            let note = format!(
                "[weft] execution {token} of attempt {} of {}, on {}\n",
                job.attempt, job.task, self.options.name
            );
            log.push(note.as_bytes()).await;
        }
        gate_key.open(abort);
        let outcome = match ended_unstarted {
            Some(outcome) => {
                drop(attempt);
                outcome
            }
            None => attempt.await,
        };
        let _ = ended.send(());
        let announced = announcing.await.unwrap_or(false);
        let (outcome, hooks) = crate::steplog::bound_texts(outcome, hooks, &log).await;
        log.finish().await;
        // The step is over: its slot and GPUs go to the next one while this
        // one's end is recorded, reported and acked (two durable writes and
        // a broker round trip a slot would otherwise sit through).
        drop(slot);
        drop(gpus);
        self.stats.running.fetch_sub(1, Ordering::Relaxed);
        self.running.lock().expect("running lock").remove(&label);
        let counter = match &outcome {
            Outcome::Succeeded { .. } => &self.stats.succeeded,
            Outcome::Failed { .. } => &self.stats.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.aborts.forget(&job.run_id, &job.task, job.attempt);
        if let Some(spans) = &self.spans {
            let (name, now) = (&self.options.name, self.clock.now());
            let span =
                weft_core::trace::execution_span(&key, token, name, claimed_at, now, &outcome);
            spans.record(vec![span]);
        }
        let finished = report(ReportKind::Finished {
            outcome,
            hooks,
            unreported_start_ms: (!announced).then(|| self.clock.now().saturating_sub(claimed_at)),
        });
        // The end is durable before anything else: from here on a copy of
        // this job finds the attempt done and re-sends this report.
        let recorded = claim.finish(&finished).await;
        renewal.abort();
        if let Recorded::FinishedElsewhere(why) = recorded {
            tracing::warn!(
                attempt = %label,
                "another execution of this attempt, which took it over while this one could not renew its claim, finished first ({why}); this execution is reported as well"
            );
        }
        match self.queue.report(job.reply_to.as_deref(), &finished).await {
            Ok(()) => {
                let _ = delivery.ack().await;
            }
            // The claim holds the report: a copy delivered again sends it.
            Err(_) => {
                let _ = delivery.reject(true).await;
            }
        }
        // Off the step's way: the server has heard of its end by now.
        self.artifacts.scratch.remove_ended(&key);
    }

    /// Whether another live worker has at least `need` GPUs.
    async fn bigger_worker(&self, need: usize) -> bool {
        let Some((registry, _)) = &self.registry else {
            return false;
        };
        registry
            .workers(self.clock.now())
            .await
            .map(|all| {
                all.iter()
                    .any(|w| w.name != self.options.name && w.slots.gpus.len() >= need)
            })
            .unwrap_or(false)
    }
}

/// Why an attempt's step did not start.
enum NotStarted {
    /// Its claim was not held, and the job is settled.
    Settled,
    /// Aborted (cancelled, timed out, its claim lost) once claimed, with the
    /// executions its claim knew before it: done with once they are told.
    Aborted(Box<dyn Delivery>, Vec<ClaimedExecution>),
    /// Taken ahead of its slot as the worker stops: the job goes back.
    Stopping(Box<dyn Delivery>),
}
