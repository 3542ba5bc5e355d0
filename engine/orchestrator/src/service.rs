//! The orchestrator service: many runs, one report router, leases.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;
use weft_core::plugins::ResolvedPlugin;
use weft_core::ports::{Clock, Fence, JobQueue, RunRecord, RunStore};
use weft_core::run::{Event, Plan, RunState, RunStatus, TaskId};
use weft_core::spec::Workflow;

use crate::driver::{Driver, Progress};
use crate::{Error, Options};

/// Stops an attempt wherever it runs: `(run_id, task, attempt)`.
pub type AbortFn = Arc<dyn Fn(&str, &TaskId, u32) + Send + Sync>;

/// A run to start.
pub struct NewRun {
    pub workflow: Workflow,
    pub source: String,
    pub file: String,
    pub params: Map<String, Json>,
    /// Recorded before `Started`: what admission decided (`Admitted`),
    /// and, for a retry, the `StepReused` events of the steps not to run
    /// again.
    pub prelude: Vec<Event>,
    /// What each plugin reference resolved to (see `resolve_plugins`).
    pub plugins: BTreeMap<String, ResolvedPlugin>,
    /// Who asked for it, for display.
    pub submitted_by: Option<String>,
    /// The server's policy for the submitter's role (none: no policy).
    pub policy: Option<weft_core::policy::RunPolicy>,
    /// `--no-cache`, `--refresh STEP`.
    pub cache: weft_core::cache::RunCacheChoice,
    /// Its place among runs waiting for a concurrency key's slots
    /// (`MIN_PRIORITY..=MAX_PRIORITY`, higher first; 0 by default).
    pub priority: i32,
}

impl NewRun {
    /// A run of `workflow` with nothing around it: no prelude, plugins,
    /// submitter or policy, the cache used as it says, priority 0 (the
    /// tests', benchmarks' and simulation's).
    pub fn plain(
        workflow: Workflow,
        source: String,
        file: String,
        params: Map<String, Json>,
    ) -> Self {
        Self {
            workflow,
            source,
            file,
            params,
            prelude: Vec::new(),
            plugins: BTreeMap::new(),
            submitted_by: None,
            policy: None,
            cache: Default::default(),
            priority: 0,
        }
    }
}

/// Who starts a run again, and the policy for their role.
#[derive(Debug, Clone, Default)]
pub struct Submitter {
    pub name: Option<String>,
    pub policy: Option<weft_core::policy::RunPolicy>,
}

/// The limits of a new run: the server's, with a policy's fan-out ceiling.
fn run_limits(
    mut limits: weft_core::run::RunLimits,
    policy: Option<&weft_core::policy::RunPolicy>,
) -> weft_core::run::RunLimits {
    if let Some(max) = policy.and_then(|p| p.max_fan_out) {
        limits.max_tasks_per_step = limits.max_tasks_per_step.min(max);
    }
    limits
}

/// What the service keeps per run it drives.
pub(crate) struct Live {
    pub(crate) inbox: crate::inbox::InboxSender,
    /// Why the run is to be cancelled, once someone asks.
    pub(crate) cancel: watch::Sender<Option<String>>,
}

pub(crate) struct Shared {
    pub queue: Arc<dyn JobQueue>,
    pub store: Arc<dyn RunStore>,
    pub clock: Arc<dyn Clock>,
    pub abort: AbortFn,
    pub options: Options,
    pub(crate) live: Mutex<HashMap<String, Live>>,
    /// Runs being submitted or adopted here right now: one start at a
    /// time per run, so a run never gets two drivers in one service.
    starting: Mutex<HashSet<String>>,
    /// Every event applied to a run driven here, for live watchers.
    pub changes: broadcast::Sender<RunChange>,
    /// Names new runs.
    run_ids: RunIds,
    /// Jobs published since start, for metrics.
    pub published: std::sync::atomic::AtomicU64,
    /// Results kept for later runs (`cache = true`); none: every step runs.
    pub cache: Option<StepCaching>,
    /// The cluster's concurrency keys; none: a workflow with
    /// `concurrency` is refused.
    pub slots: Option<Arc<dyn weft_core::ports::ConcurrencySlots>>,
    /// Starts sub-workflow steps' child runs (set by the API, which reads
    /// saved workflows); none: such a step fails.
    pub children: std::sync::OnceLock<Arc<dyn crate::ChildRuns>>,
    /// The plans of the runs driven here, by workflow text: runs of one
    /// workflow share one (a thousand waiting runs, one parsed workflow).
    plans: Mutex<HashMap<String, std::sync::Weak<Plan>>>,
    /// Told when a run driven here gives up a key's slot, so the runs
    /// waiting here ask again at once rather than at their next poll.
    pub slot_freed: tokio::sync::Notify,
    /// Where a finished run's spans go (its own and its steps'); none: no
    /// traces.
    pub spans: Option<Arc<dyn weft_core::ports::SpanSink>>,
    /// This server's mailbox on the queue, once opened
    /// ([`Service::open_mailbox`]): the `reply_to` of every job it
    /// publishes.
    pub reply_to: std::sync::OnceLock<String>,
}

/// The step cache and what its keys need besides the job.
#[derive(Clone)]
pub struct StepCaching {
    pub cache: Arc<dyn weft_core::ports::StepCache>,
    /// When each secret was last set: part of the key of a step using it.
    pub secrets: Option<Arc<dyn weft_core::ports::SecretStore>>,
}

/// Makes the id of each new run.
pub type RunIds = Box<dyn Fn() -> String + Send + Sync>;

/// Run ids by default: ULIDs, lower case, so they sort by creation time.
fn ulid_run_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// A run being started by this service (see `Service::starting`).
pub(crate) struct Starting<'a> {
    service: &'a Service,
    run_id: String,
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.service
            .shared
            .starting
            .lock()
            .expect("starting lock")
            .remove(&self.run_id);
    }
}

/// One event applied to a run, with the run's status after it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunChange {
    pub run_id: String,
    pub status: RunStatus,
    /// This change ended the run.
    pub finished: bool,
    pub event: Event,
    /// For a finished attempt: how long it took from start (or queueing) to finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// The orchestrator. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub(crate) shared: Arc<Shared>,
}

/// A run being driven here; `join` yields its final state.
pub type RunHandle = JoinHandle<Result<RunState, Error>>;

impl Service {
    pub fn new(
        queue: Arc<dyn JobQueue>,
        store: Arc<dyn RunStore>,
        clock: Arc<dyn Clock>,
        abort: AbortFn,
        options: Options,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                queue,
                store,
                clock,
                abort,
                options,
                live: Mutex::new(HashMap::new()),
                starting: Mutex::new(HashSet::new()),
                changes: broadcast::channel(4096).0,
                run_ids: Box::new(ulid_run_id),
                published: Default::default(),
                cache: None,
                slots: None,
                children: std::sync::OnceLock::new(),
                plans: Mutex::new(HashMap::new()),
                slot_freed: tokio::sync::Notify::new(),
                spans: None,
                reply_to: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Names new runs with `ids` instead of ULIDs (a deterministic
    /// simulation needs ids that do not depend on the machine). Call it
    /// before the service is cloned.
    pub fn with_run_ids(mut self, ids: RunIds) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("with_run_ids is called before the service is cloned")
            .run_ids = ids;
        self
    }

    /// Lets steps with `cache` reuse results kept in `caching`. Call it
    /// before the service is cloned.
    pub fn with_step_cache(mut self, caching: StepCaching) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("with_step_cache is called before the service is cloned")
            .cache = Some(caching);
        self
    }

    /// Keeps concurrency keys' slots in `slots`, so workflows with
    /// `[workflow] concurrency` may run. Call it before the service is
    /// cloned.
    pub fn with_concurrency_slots(
        mut self,
        slots: Arc<dyn weft_core::ports::ConcurrencySlots>,
    ) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("with_concurrency_slots is called before the service is cloned")
            .slots = Some(slots);
        self
    }

    /// Sends each finished run's spans (`weft_core::trace`) to `spans`.
    /// Call it before the service is cloned.
    pub fn with_spans(mut self, spans: Arc<dyn weft_core::ports::SpanSink>) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("with_spans is called before the service is cloned")
            .spans = Some(spans);
        self
    }

    /// Opens this server's mailbox on the queue, named by its owner name
    /// in leases: the jobs it publishes from now on name it, and their
    /// reports come to it rather than to the queue every server reads, so
    /// servers sharing a broker do not pass each other's reports around.
    /// Queues of one reader do nothing. Before the router starts.
    pub async fn open_mailbox(&self) -> Result<(), Error> {
        let owner = &self.shared.options.owner;
        if let Some(name) = self.shared.queue.open_mailbox(owner).await? {
            let _ = self.shared.reply_to.set(name);
        }
        Ok(())
    }

    /// Lets sub-workflow steps start child runs through `children`. Once;
    /// later calls change nothing.
    pub fn set_children(&self, children: Arc<dyn crate::ChildRuns>) {
        let _ = self.shared.children.set(children);
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.shared.store
    }

    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.shared.queue
    }

    /// Jobs this orchestrator has published since it started.
    pub fn jobs_published(&self) -> u64 {
        self.shared
            .published
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs driven by this orchestrator right now.
    pub fn active_runs(&self) -> usize {
        self.shared.live.lock().expect("live lock").len()
    }

    /// Changes of the runs this orchestrator drives, as they are applied.
    /// A watcher that falls behind by more than 4096 changes skips ahead.
    pub fn watch(&self) -> broadcast::Receiver<RunChange> {
        self.shared.changes.subscribe()
    }

    /// Creates a run and starts driving it.
    pub async fn submit(
        &self,
        run: NewRun,
        progress: Box<dyn Progress>,
    ) -> Result<(RunRecord, RunHandle), Error> {
        self.submit_as(run, None, progress).await
    }

    /// [`submit`](Self::submit), under run id `id` when given (a scheduled
    /// fire's, the same on every server): `Conflict` from the store if a
    /// run has it already.
    pub async fn submit_as(
        &self,
        run: NewRun,
        id: Option<String>,
        progress: Box<dyn Progress>,
    ) -> Result<(RunRecord, RunHandle), Error> {
        self.shared
            .options
            .check_size(&run.workflow)
            .map_err(Error::TooLarge)?;
        let mut prelude = run.prelude;
        if let Some(spot) = self.queue_spot(&run.workflow, &run.params, run.priority)? {
            prelude.push(Event::Queued {
                at: spot.queued_at,
                spot,
            });
        }
        let record = RunRecord {
            id: id.unwrap_or_else(|| (self.shared.run_ids)()),
            workflow: run.workflow.name.clone(),
            file: run.file,
            source: run.source,
            params: run.params,
            status: RunStatus::Running,
            created_at: self.shared.clock.now(),
            finished_at: None,
            summary: None,
            plugins: run.plugins,
            submitted_by: run.submitted_by,
            limits: run_limits(self.shared.options.run_limits(), run.policy.as_ref()),
            policy: run.policy,
            cache: run.cache,
            priority: run.priority,
        };
        // A fresh id is unique; a given one (a fire's) may be starting here.
        let Some(_starting) = self.starting(&record.id) else {
            return Err(Error::Port(weft_core::Error::Conflict(format!(
                "run {} is being started already",
                record.id
            ))));
        };
        self.shared.store.create_run(&record).await?;
        let Some(fence) = self.take_lease(&record.id).await? else {
            return Err(Error::NotOwner(record.id));
        };
        let lease = crate::lease::LeaseKeeper::start(&self.shared, &record.id, fence.clone());
        // As a server taking it over would build it: from its record.
        let plan = self.plan_for(&record.source, run.workflow);
        let state = RunState::of_record(&record, plan, []);
        let handle = self.start(record.clone(), state, 0, (fence, lease), prelude, progress);
        Ok((record, handle))
    }

    /// Where a new run of `workflow` stands in its concurrency key's line,
    /// if it has a key: `Invalid` if the key renders badly, the priority is
    /// out of range, or this engine keeps no keys.
    fn queue_spot(
        &self,
        workflow: &Workflow,
        params: &Map<String, Json>,
        priority: i32,
    ) -> Result<Option<weft_core::concurrency::QueueSpot>, Error> {
        use weft_core::concurrency::{MAX_PRIORITY, MIN_PRIORITY};
        if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&priority) {
            return Err(Error::Invalid(format!(
                "priority {priority} is out of range: from {MIN_PRIORITY} to {MAX_PRIORITY}"
            )));
        }
        let Some(c) = &workflow.concurrency else {
            return Ok(None);
        };
        if self.shared.slots.is_none() {
            return Err(Error::Invalid(
                "`[workflow] concurrency` needs a store that keeps concurrency keys, and this engine has none".into(),
            ));
        }
        let key = c
            .key_for(&workflow.name, params)
            .map_err(|e| Error::Invalid(format!("`[workflow] concurrency`: {e}")))?;
        Ok(Some(weft_core::concurrency::QueueSpot {
            key,
            limit: c.limit,
            policy: c.policy,
            priority,
            queued_at: self.shared.clock.now(),
        }))
    }

    /// The plan of a run of `source` (parsed as `workflow`): the one runs
    /// of the same text driven here share, or a new one.
    pub(crate) fn plan_for(&self, source: &str, workflow: Workflow) -> Arc<Plan> {
        let mut plans = self.shared.plans.lock().expect("plans lock");
        if let Some(plan) = plans.get(source).and_then(std::sync::Weak::upgrade) {
            return plan;
        }
        let plan = Plan::new(workflow);
        plans.insert(source.to_string(), Arc::downgrade(&plan));
        // Forget the plans no run holds any more, now and then.
        if plans.len() >= 64 && plans.len().is_power_of_two() {
            plans.retain(|_, p| p.strong_count() > 0);
        }
        plan
    }

    /// Marks `run_id` as being started here; `None` if it is driven or
    /// being started here already. Dropping the guard clears the mark.
    pub(crate) fn starting(&self, run_id: &str) -> Option<Starting<'_>> {
        let live = self.shared.live.lock().expect("live lock");
        let mut starting = self.shared.starting.lock().expect("starting lock");
        if live.contains_key(run_id) || !starting.insert(run_id.to_string()) {
            return None;
        }
        Some(Starting {
            service: self,
            run_id: run_id.to_string(),
        })
    }

    pub(crate) fn start(
        &self,
        record: RunRecord,
        state: RunState,
        logged: u64,
        (fence, lease): (Fence, crate::lease::LeaseKeeper),
        prelude: Vec<Event>,
        progress: Box<dyn Progress>,
    ) -> RunHandle {
        let (inbox_tx, inbox) = crate::inbox::inbox();
        let (cancel_tx, cancel) = watch::channel(None);
        let id = record.id.clone();
        self.shared.live.lock().expect("live lock").insert(
            id.clone(),
            Live {
                inbox: inbox_tx,
                cancel: cancel_tx,
            },
        );
        let driver = Driver {
            shared: self.shared.clone(),
            record,
            state,
            logged,
            fence,
            inbox,
            cancel,
            prelude,
            window: crate::window::Window::new(self.shared.options.dispatch_window),
            lease,
        };
        let shared = self.shared.clone();
        // Everything logged while driving the run names it.
        let span = tracing::info_span!("run", run = %id);
        // Boxed on its own: the task then holds a pointer, not the driver
        // twice (once to call `drive` with, once inside its future).
        let drive = Box::pin(driver.drive(progress));
        tokio::spawn(
            async move {
                let result = drive.await;
                shared.live.lock().expect("live lock").remove(&id);
                if let Err(e) = &result {
                    tracing::warn!("{e}");
                }
                result
            }
            .instrument(span),
        )
    }

    /// Starts a new run of `run_id`'s workflow and params that reuses the
    /// outputs of its succeeded steps, except `from` and what is downstream
    /// of it, and runs the rest.
    pub async fn retry(
        &self,
        run_id: &str,
        from: Option<&str>,
        by: Submitter,
    ) -> Result<(RunRecord, RunHandle), Error> {
        let progress = Box::new(|_: &RunState, _: &Event| {});
        self.retry_watched(run_id, from, by, progress).await
    }

    /// [`Service::retry`], with `progress` told of every event of the new run.
    pub async fn retry_watched(
        &self,
        run_id: &str,
        from: Option<&str>,
        by: Submitter,
        progress: Box<dyn Progress>,
    ) -> Result<(RunRecord, RunHandle), Error> {
        let (record, previous) = crate::load_run(self.shared.store.as_ref(), run_id)
            .await?
            .ok_or_else(|| Error::NoSuchRun(run_id.to_string()))?;
        if !previous.status.is_terminal() {
            return Err(Error::Invalid(format!(
                "run {run_id} is still {}; retry it when it has finished",
                previous.status.as_str()
            )));
        }
        let reused = weft_core::run::reuse_events(&previous, from, self.shared.clock.now())
            .map_err(Error::Invalid)?;
        // The patches admission made apply to the retry as they did to the run.
        let admitted = (!previous.admission.is_empty()).then(|| Event::Admitted {
            decisions: previous.admission.clone(),
            at: self.shared.clock.now(),
        });
        let prelude = admitted.into_iter().chain(reused).collect();
        let workflow = previous.plan.workflow.clone();
        let run = NewRun {
            workflow,
            source: record.source,
            file: record.file,
            params: record.params,
            prelude,
            // The same plugin versions as the run it retries.
            plugins: record.plugins,
            // Held to the policy of whoever retries it, not of the first run.
            submitted_by: by.name,
            policy: by.policy,
            cache: Default::default(),
            // Its place as the run it retries had it.
            priority: record.priority,
        };
        self.submit(run, progress).await
    }
}
