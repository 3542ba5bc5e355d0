//! The simulated cluster: real `weft_orchestrator::Service`s and
//! `weft_worker::Worker`s, each a process of the world over its own
//! handles on the simulated store and broker, started, killed, paused and
//! started again as a scenario says.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use weft_core::ports::{Clock, JobQueue, RunStore};
use weft_orchestrator::Service;
use weft_worker::Worker;

use crate::broker::SimQueue;
use crate::scenario::Scenario;
use crate::steps::SimSteps;
use crate::store::SimStore;
use crate::world::{Proc, SkewedClock, World};

/// A started orchestrator.
pub struct Orchestrator {
    pub process: Proc,
    pub service: Service,
}

/// A started worker.
pub struct WorkerProcess {
    pub process: Proc,
    /// Kept so the worker is not told to stop.
    _stop: watch::Sender<bool>,
}

pub struct Cluster {
    pub world: Arc<World>,
    scenario: Scenario,
    pub orchestrators: Vec<Orchestrator>,
    pub workers: Vec<WorkerProcess>,
    lives: u64,
    run_ids: Arc<AtomicU64>,
}

impl Cluster {
    pub fn new(world: Arc<World>, scenario: Scenario) -> Self {
        Self {
            world,
            scenario,
            orchestrators: Vec::new(),
            workers: Vec::new(),
            lives: 0,
            run_ids: Arc::default(),
        }
    }

    fn skew(&mut self) -> i64 {
        // Alternate ahead and behind, so clocks disagree with each other.
        self.lives += 1;
        if self.lives % 2 == 0 {
            self.scenario.skew_ms
        } else {
            -self.scenario.skew_ms / 2
        }
    }

    /// Starts orchestrator `index` (again): a new process with a new owner
    /// name, as a restarted `weft serve` has a new pid.
    pub fn start_orchestrator(&mut self, index: usize) {
        let skew = self.skew();
        let name = format!("orch{index}.{}", self.lives);
        let process = self.world.process(name.clone(), skew);
        let store: Arc<dyn RunStore> = Arc::new(SimStore::new(process.clone()));
        let queue: Arc<dyn JobQueue> = Arc::new(SimQueue::new(process.clone()));
        let clock: Arc<dyn Clock> = Arc::new(SkewedClock(process.clone()));
        let abort = weft_orchestrator::abort_through_claims(store.clone());
        let options = weft_orchestrator::Options {
            owner: name.clone(),
            lease_ttl_ms: self.scenario.lease_ttl_ms,
            deadline_grace_ms: 2_000,
            dispatch_window: self.scenario.dispatch_window,
            ..weft_orchestrator::Options::default()
        };
        let ids = self.run_ids.clone();
        let service = Service::new(queue, store, clock, abort, options)
            .with_run_ids(Box::new(move || {
                format!("run{}", ids.fetch_add(1, Ordering::Relaxed) + 1)
            }))
            // One cache for every orchestrator, as Redis is (not faulted).
            .with_step_cache(weft_orchestrator::StepCaching {
                cache: Arc::new(self.world.store.clone()),
                secrets: None,
            })
            // As the cache: one line per key for every orchestrator.
            .with_concurrency_slots(Arc::new(self.world.store.clone()));
        service.spawn_router();
        service.spawn_adopter();
        service.spawn_dead_letters();
        let resumer = service.clone();
        tokio::spawn(async move {
            while resumer.resume_unfinished().await.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
        self.world.trace(format!("start {name}"));
        let started = Orchestrator { process, service };
        if index < self.orchestrators.len() {
            self.orchestrators[index] = started;
        } else {
            self.orchestrators.push(started);
        }
    }

    /// Starts worker `index` (again), under the same name, as a worker
    /// restarted with `--name` is.
    pub fn start_worker(&mut self, index: usize) {
        let skew = self.skew();
        let name = format!("w{index}");
        let process = self.world.process(name.clone(), skew);
        let store: Arc<dyn RunStore> = Arc::new(SimStore::new(process.clone()));
        let queue: Arc<dyn JobQueue> = Arc::new(SimQueue::new(process.clone()));
        let clock: Arc<dyn Clock> = Arc::new(SkewedClock(process.clone()));
        let options = weft_worker::Options {
            name: name.clone(),
            concurrency: self.scenario.concurrency,
            work_dir: std::env::temp_dir().join("weft-sim"),
            heartbeat_ms: self.scenario.heartbeat_ms,
            gpus: Some(Vec::new()),
            prepare_ahead: self.scenario.prepare_ahead,
            ..Default::default()
        };
        let steps = SimSteps {
            process: process.clone(),
            spec: self.scenario.steps,
        };
        let worker =
            Worker::new(queue, store, clock, options).with_command_executor(Arc::new(steps));
        let (stop, stopped) = watch::channel(false);
        let world = self.world.clone();
        let who = name.clone();
        tokio::spawn(async move {
            if let Err(e) = worker.run(stopped).await {
                world.trace(format!("{who}: worker ended: {e}"));
            }
        });
        self.world.trace(format!("start {name}"));
        let started = WorkerProcess {
            process,
            _stop: stop,
        };
        if index < self.workers.len() {
            self.workers[index] = started;
        } else {
            self.workers.push(started);
        }
    }

    pub fn kill_orchestrator(&mut self, index: usize) {
        let p = &self.orchestrators[index].process;
        if p.is_alive() {
            self.world.trace(format!("KILL {}", p.name));
            p.kill();
        }
    }

    pub fn kill_worker(&mut self, index: usize) {
        let p = &self.workers[index].process;
        if p.is_alive() {
            self.world.trace(format!("KILL {}", p.name));
            p.kill();
        }
    }

    /// A live orchestrator, if any.
    pub fn live_service(&self) -> Option<&Service> {
        self.orchestrators
            .iter()
            .find(|o| o.process.is_alive())
            .map(|o| &o.service)
    }
}
