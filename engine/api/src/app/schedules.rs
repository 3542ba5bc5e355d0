//! The scheduler: starts the runs of saved workflows' `[[triggers.schedule]]`
//! as they fall due, on every `weft serve` at once. Each fire has one run
//! id everywhere (`weft_core::schedule::fire_run_id`), and the store refuses
//! a second run with an id, so a fire starts one run however many servers
//! see it, and a server that restarts within a schedule's `catch-up` window
//! starts what it missed (what another server started is found, not
//! started again). `weft backfill` uses the same ids.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_core::ports::{Role, SavedWorkflow};
use weft_core::run::Millis;
use weft_core::schedule::{fire_run_id, submitter, Overlap, Timing, MAX_FIRES_AT_ONCE};
use weft_core::spec::triggers::ScheduleSpec;

use crate::auth::Caller;
use crate::routes::ApiState;

/// `[scheduler]` in the server's configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SchedulerOptions {
    /// Whether this server starts scheduled runs (every server may: each
    /// fire starts one run).
    pub enabled: bool,
    /// How often due schedules are looked for; a fire starts at most this
    /// late.
    pub tick_ms: u64,
    /// How often saved workflows are read again for new versions.
    pub refresh_ms: u64,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            tick_ms: 250,
            refresh_ms: 2_000,
        }
    }
}

/// Fires waiting (`overlap = "queue"`) for a schedule's earlier run, at most.
const MAX_QUEUED: usize = 100;

/// One schedule of the latest version of a saved workflow, armed.
struct Armed {
    /// The saved version whose schedule this is.
    saved: Arc<SavedWorkflow>,
    index: usize,
    spec: ScheduleSpec,
    timing: Timing,
    /// Fires up to here have been dealt with.
    watermark: Millis,
    /// The next fire after the watermark.
    next: Option<Millis>,
    /// Fires waiting for the earlier run to end (`queue`).
    queued: VecDeque<Millis>,
    /// The newest run this schedule started (here or elsewhere).
    last_run: Option<String>,
    /// Whether the fires before this server armed the schedule were
    /// looked at for `last_run` (done at the first overlap check, not at
    /// start-up, and never for `overlap = "allow"`).
    probed: bool,
}

impl Armed {
    /// Fires due at `now`, oldest first: queued ones, then new ones.
    fn due(&mut self, now: Millis) -> Vec<Millis> {
        if self.next.is_none_or(|n| n > now) {
            return Vec::new();
        }
        let fires = self.timing.fires(self.watermark, now, MAX_FIRES_AT_ONCE);
        self.watermark = now;
        self.next = self.timing.next_after(now);
        fires
    }
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub workflow: String,
    pub version: u32,
    /// Its place among the workflow's `[[triggers.schedule]]`, from 0.
    pub index: usize,
    pub cron: String,
    pub timezone: String,
    pub overlap: String,
    /// Seconds back a restarted server starts what it missed.
    pub catch_up_secs: u64,
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The next fire times, ms since the epoch (at most 5).
    pub next: Vec<Millis>,
}

/// The schedules of saved workflows (their latest versions), with their
/// next fire times after `now`.
pub async fn schedule_views(
    api: &ApiState,
    now: Millis,
) -> Result<Vec<ScheduleView>, crate::Error> {
    let mut views = Vec::new();
    for saved in api.workflows.workflows().await? {
        let Ok(workflow) = weft_core::spec::load(&saved.source) else {
            continue;
        };
        for (index, spec) in workflow.schedules.iter().enumerate() {
            let Ok(timing) = spec.timing() else { continue };
            views.push(ScheduleView {
                workflow: saved.name.clone(),
                version: saved.version,
                index,
                cron: spec.cron.value.clone(),
                timezone: spec
                    .timezone
                    .as_ref()
                    .map_or_else(|| "UTC".to_string(), |z| z.value.clone()),
                overlap: spec.overlap.as_str().to_string(),
                catch_up_secs: spec.catch_up.as_secs(),
                params: spec.params.clone(),
                next: timing.fires(now, Millis::MAX, 5),
            });
        }
    }
    Ok(views)
}

/// Starts the scheduler on `api`'s stores; it runs until the server stops.
pub fn spawn_scheduler(api: ApiState, options: SchedulerOptions) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut scheduler = Scheduler {
            api,
            armed: BTreeMap::new(),
            versions: BTreeMap::new(),
        };
        let tick = Duration::from_millis(options.tick_ms.max(10));
        let refresh = options.refresh_ms.max(options.tick_ms);
        let mut refreshed_at: Option<Millis> = None;
        loop {
            let now = crate::routes::now();
            if refreshed_at.is_none_or(|at| now >= at + refresh) {
                match scheduler.refresh(now).await {
                    Ok(()) => refreshed_at = Some(now),
                    Err(e) => tracing::warn!("reading saved workflows for their schedules: {e}"),
                }
            }
            scheduler.tick(now).await;
            tokio::time::sleep(tick).await;
        }
    })
}

struct Scheduler {
    api: ApiState,
    /// By (workflow, schedule index).
    armed: BTreeMap<(String, usize), Armed>,
    /// The version of each saved workflow armed.
    versions: BTreeMap<String, u32>,
}

impl Scheduler {
    /// Arms the schedules of new versions of saved workflows.
    async fn refresh(&mut self, now: Millis) -> Result<(), crate::Error> {
        for (name, version) in self.api.workflows.latest_versions().await? {
            if self.versions.get(&name) == Some(&version) {
                continue;
            }
            let Some(saved) = self.api.workflows.workflow(&name, Some(version)).await? else {
                continue;
            };
            let saved = Arc::new(saved);
            self.versions.insert(saved.name.clone(), saved.version);
            let old: BTreeMap<usize, Armed> = {
                let keys: Vec<_> = self
                    .armed
                    .keys()
                    .filter(|(w, _)| *w == saved.name)
                    .cloned()
                    .collect();
                keys.into_iter()
                    .filter_map(|k| self.armed.remove(&k).map(|a| (k.1, a)))
                    .collect()
            };
            let workflow = match weft_core::spec::load(&saved.source) {
                Ok(w) => w,
                Err(_) => continue,
            };
            for (index, spec) in workflow.schedules.iter().enumerate() {
                let Ok(timing) = spec.timing() else { continue };
                let back = now.saturating_sub(spec.catch_up.as_millis() as Millis);
                // A version's schedule does not fire for times before it
                // was saved; one already armed keeps its place.
                let previous = old.get(&index);
                let watermark = back
                    .max(saved.saved_at)
                    .max(previous.map_or(0, |p| p.watermark));
                tracing::info!(
                    workflow = %saved.name,
                    version = saved.version,
                    schedule = index,
                    cron = %spec.cron.value,
                    "schedule armed"
                );
                self.armed.insert(
                    (saved.name.clone(), index),
                    Armed {
                        saved: saved.clone(),
                        index,
                        spec: spec.clone(),
                        next: timing.next_after(watermark),
                        timing,
                        watermark,
                        queued: previous.map(|p| p.queued.clone()).unwrap_or_default(),
                        last_run: previous.and_then(|p| p.last_run.clone()),
                        probed: previous.is_some_and(|p| p.probed),
                    },
                );
            }
        }
        Ok(())
    }

    /// The newest of the last few fires before `before` that has a run.
    async fn newest_run(
        &self,
        workflow: &str,
        index: usize,
        timing: &Timing,
        before: Millis,
    ) -> Option<String> {
        for fire in timing.fires_before(before, 5) {
            let id = fire_run_id(workflow, index, fire);
            if let Ok(Some(_)) = self.api.store.get_run(&id).await {
                return Some(id);
            }
        }
        None
    }

    async fn tick(&mut self, now: Millis) {
        let keys: Vec<_> = self.armed.keys().cloned().collect();
        for key in keys {
            let Some(mut armed) = self.armed.remove(&key) else {
                continue;
            };
            let due = armed.due(now);
            armed.queued.extend(due);
            while armed.queued.len() > MAX_QUEUED {
                let dropped = armed.queued.pop_front();
                tracing::warn!(workflow = %armed.saved.name, schedule = armed.index, ?dropped, "more than {MAX_QUEUED} fires wait for an earlier run: the oldest is dropped");
            }
            while let Some(&fire) = armed.queued.front() {
                match self.fire(&mut armed, fire).await {
                    Fired::Done => {
                        armed.queued.pop_front();
                    }
                    Fired::Wait => break,
                }
            }
            self.armed.insert(key, armed);
        }
    }

    /// Starts the run of `fire`, as its overlap policy says.
    async fn fire(&self, armed: &mut Armed, fire: Millis) -> Fired {
        let id = fire_run_id(&armed.saved.name, armed.index, fire);
        match self.api.store.get_run(&id).await {
            Ok(Some(_)) => {
                armed.last_run = Some(id);
                return Fired::Done;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(workflow = %armed.saved.name, "schedule: reading run {id}: {e}; trying again");
                return Fired::Wait;
            }
        }
        if armed.spec.overlap != Overlap::Allow {
            if let Some(previous) = self.running(armed, fire).await {
                match armed.spec.overlap {
                    Overlap::Skip => {
                        tracing::info!(workflow = %armed.saved.name, schedule = armed.index, fire, "skipped: run {previous} of this schedule still runs (overlap = \"skip\")");
                        return Fired::Done;
                    }
                    Overlap::Queue => return Fired::Wait,
                    Overlap::CancelPrevious => {
                        if let Err(e) = self.api.service.cancel(&previous).await {
                            tracing::warn!(workflow = %armed.saved.name, "cancelling run {previous} before the next fire: {e}");
                        }
                    }
                    Overlap::Allow => {}
                }
            }
        }
        let caller = Caller {
            role: Role::Operator,
            token_id: None,
            name: Some(submitter(&armed.saved.name, armed.index)),
        };
        let started = crate::routes::start_saved(
            &self.api,
            &armed.saved,
            armed.spec.overrides().into_iter().collect(),
            id.clone(),
            crate::routes::RunChoices {
                priority: armed.spec.priority,
                ..Default::default()
            },
            &caller,
        )
        .await;
        match started {
            Ok(_) => {
                tracing::info!(workflow = %armed.saved.name, schedule = armed.index, fire, run = %id, "scheduled run started");
                armed.last_run = Some(id);
                Fired::Done
            }
            // Another server started it meanwhile.
            Err(_) if matches!(self.api.store.get_run(&id).await, Ok(Some(_))) => {
                armed.last_run = Some(id);
                Fired::Done
            }
            Err(crate::Error::Api {
                status, message, ..
            }) if (400..500).contains(&status) => {
                // The workflow cannot start (a policy, a secret gone): said
                // once per fire, not retried.
                tracing::warn!(workflow = %armed.saved.name, schedule = armed.index, fire, "scheduled run refused: {message}");
                Fired::Done
            }
            Err(e) => {
                tracing::warn!(workflow = %armed.saved.name, schedule = armed.index, fire, "starting a scheduled run: {e}; trying again");
                Fired::Wait
            }
        }
    }

    /// The schedule's newest run before `fire`, if it has not ended.
    async fn running(&self, armed: &mut Armed, fire: Millis) -> Option<String> {
        if !std::mem::replace(&mut armed.probed, true) && armed.last_run.is_none() {
            armed.last_run = self
                .newest_run(&armed.saved.name, armed.index, &armed.timing, fire)
                .await;
        }
        let id = armed.last_run.as_ref()?;
        match self.api.store.get_run(id).await {
            Ok(Some(r)) if !r.status.is_terminal() => Some(id.clone()),
            _ => None,
        }
    }
}

enum Fired {
    /// Started, found started, skipped or refused: the fire is dealt with.
    Done,
    /// To try again at the next tick (an earlier run to wait for, a store
    /// that failed).
    Wait,
}
