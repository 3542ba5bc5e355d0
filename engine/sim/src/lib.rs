//! A deterministic simulation of distributed weft.
//!
//! The real orchestrator ([`weft_orchestrator::Service`]) and the real
//! worker ([`weft_worker::Worker`]) run as processes of one simulated
//! world: over a simulated store (the in-memory store behind the faults of
//! a networked one) and a simulated broker, on one thread, with tokio's
//! clock paused so time jumps to the next timer whenever every task waits.
//! Every draw of chance comes from one generator seeded by the seed (and,
//! with `--cfg tokio_unstable`, set in `.cargo/config.toml`, tokio's own
//! choice among ready `select!` branches too), so a seed replays exactly.
//!
//! A seed draws a [`Scenario`]: a workflow, a cluster, and faults (the
//! store stopped for a while, slow, losing replies; the broker restarted,
//! messages late and twice, deliveries taken back; processes killed at any
//! await point and started again, or starved; clocks skewed; runs
//! cancelled). The properties ([`check`]) are checked as each step's side
//! effect happens and when the simulation ends: no step that succeeded runs
//! again, every execution of a step is shown in its run, every run ends,
//! and no attempt is left open.
//!
//! `cargo run -p weft-sim -- --profile chaos --seed 42 --trace` replays one seed.

mod broker;
pub mod check;
mod cluster;
mod rng;
mod scenario;
mod steps;
mod store;
mod world;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use weft_orchestrator::NewRun;

pub use broker::BrokerFaults;
pub use cluster::Cluster;
pub use rng::Rng;
pub use scenario::{Fault, Profile, Scenario};
pub use steps::StepsSpec;
pub use world::{Effect, World};

/// How long a simulation may take, in simulated time, after its faults end.
const SETTLE_LIMIT: Duration = Duration::from_secs(900);
/// How long it goes on after every run ended, to catch late executions.
const AFTERMATH: Duration = Duration::from_secs(60);

/// What one simulation found.
#[derive(Debug)]
pub struct SimOutcome {
    pub scenario: Scenario,
    /// Broken properties; empty when the seed passed.
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    /// Each run's id and final status.
    pub runs: BTreeMap<String, String>,
    pub effects: usize,
    /// Simulated time the whole simulation took.
    pub simulated: Duration,
}

impl SimOutcome {
    /// A report for a failed test: the seed, how to replay it, what broke,
    /// and the end of the trace.
    pub fn report(&self, trace_lines: usize) -> String {
        let s = &self.scenario;
        let profile = match s.profile {
            Profile::StoreOutages => "store-outages",
            Profile::Chaos => "chaos",
            Profile::QuickSteps => "quick-steps",
        };
        let skip = self.trace.len().saturating_sub(trace_lines);
        format!(
            "seed {} ({profile}) broke {} propert{}:\n  {}\nreplay: cargo run -p weft-sim -- --profile {profile} --seed {} --trace\n\
             scenario: {} orchestrator(s), {} worker(s) x{}, lease {} ms, heartbeat {} ms, faults {:?}\n{}\n\
             last {} trace lines:\n{}",
            s.seed,
            self.violations.len(),
            if self.violations.len() == 1 { "y" } else { "ies" },
            self.violations.join("\n  "),
            s.seed,
            s.orchestrators,
            s.workers,
            s.concurrency,
            s.lease_ttl_ms,
            s.heartbeat_ms,
            s.faults,
            s.workflow,
            self.trace.len() - skip,
            self.trace[skip..].join("\n")
        )
    }
}

/// Simulates one seed.
pub fn simulate(seed: u64, profile: Profile) -> SimOutcome {
    let scenario = Scenario::draw(seed, profile);
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().start_paused(true);
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
    let runtime = builder.build().expect("a current-thread runtime");
    let world = World::new(scenario.seed);
    // What the engine logs goes into the trace, at the simulated time.
    let logs = tracing_subscriber::fmt()
        .with_writer(world::TraceWriter(world.clone()))
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let outcome =
        tracing::subscriber::with_default(logs, || runtime.block_on(run(world, scenario)));
    // Dropping the runtime drops the frozen tasks of killed processes.
    drop(runtime);
    outcome
}

/// What happens at a time: a fault, or a killed process coming back.
enum Due {
    Fault(Fault),
    RestartOrchestrator(usize),
    RestartWorker(usize),
}

async fn run(world: Arc<World>, scenario: Scenario) -> SimOutcome {
    {
        let mut faults = world.store_faults.lock().expect("faults lock");
        faults.max_latency = scenario.store_latency;
        faults.lost_reply = scenario.lost_reply;
    }
    *world.broker.faults.lock().expect("faults lock") = scenario.broker.clone();
    world.broker.set_classic_jobs(scenario.classic_jobs);
    let mut cluster = Cluster::new(world.clone(), scenario.clone());
    for i in 0..scenario.orchestrators {
        cluster.start_orchestrator(i);
    }
    for i in 0..scenario.workers {
        cluster.start_worker(i);
    }
    let start = Instant::now();
    let mut submitted = Vec::new();
    for _ in 0..scenario.runs {
        let service = cluster.live_service().expect("an orchestrator").clone();
        loop {
            let run = NewRun::plain(
                weft_core::spec::load(&scenario.workflow).expect("a valid workflow"),
                scenario.workflow.clone(),
                "sim.toml".into(),
                Default::default(),
            );
            match service.submit(run, Box::new(|_: &_, _: &_| {})).await {
                Ok((record, _)) => {
                    world.trace(format!("submitted {}", record.id));
                    submitted.push(record.id);
                    break;
                }
                Err(e) => {
                    world.trace(format!("submit failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    let mut due: BTreeMap<(Duration, u64), Due> = BTreeMap::new();
    for (i, (at, fault)) in scenario.faults.iter().enumerate() {
        due.insert((*at, i as u64), Due::Fault(fault.clone()));
    }
    let mut seq = due.len() as u64;
    while let Some(((at, _), what)) = due.pop_first() {
        tokio::time::sleep_until(start + at).await;
        match what {
            Due::Fault(fault) => {
                world.trace(format!("FAULT {fault:?}"));
                match fault {
                    Fault::StoreDown(d) => {
                        let mut f = world.store_faults.lock().expect("faults lock");
                        let until = Instant::now() + d;
                        f.down_until = Some(f.down_until.map_or(until, |t| t.max(until)));
                    }
                    Fault::BrokerRestart(d) => world.broker.restart(&world, d),
                    Fault::KillOrchestrator { index, down } => {
                        cluster.kill_orchestrator(index);
                        seq += 1;
                        due.insert((at + down, seq), Due::RestartOrchestrator(index));
                    }
                    Fault::KillWorker { index, down } => {
                        cluster.kill_worker(index);
                        seq += 1;
                        due.insert((at + down, seq), Due::RestartWorker(index));
                    }
                    Fault::PauseOrchestrator { index, pause } => {
                        cluster.orchestrators[index]
                            .process
                            .pause(Instant::now() + pause);
                    }
                    Fault::PauseWorker { index, pause } => {
                        cluster.workers[index].process.pause(Instant::now() + pause);
                    }
                    Fault::Redeliver => world.broker.redeliver_one(&world),
                    Fault::Cancel => {
                        if let Some(run) = submitted.first() {
                            for o in cluster
                                .orchestrators
                                .iter()
                                .filter(|o| o.process.is_alive())
                            {
                                let _ = o.service.cancel(run).await;
                            }
                        }
                    }
                }
            }
            Due::RestartOrchestrator(i) => {
                if !cluster.orchestrators[i].process.is_alive() {
                    cluster.start_orchestrator(i);
                }
            }
            Due::RestartWorker(i) => {
                if !cluster.workers[i].process.is_alive() {
                    cluster.start_worker(i);
                }
            }
        }
    }
    world.trace("calm: no more faults");

    let calm = Instant::now();
    let all_ended = || {
        world
            .store
            .with(|s| !s.runs.is_empty() && s.runs.values().all(|r| r.status.is_terminal()))
    };
    while !all_ended() && calm.elapsed() < SETTLE_LIMIT {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(AFTERMATH).await;

    let runs: Vec<String> = world.store.with(|s| s.runs.keys().cloned().collect());
    check::at_the_end(&world, &runs);
    let statuses = world.store.with(|s| {
        s.runs
            .iter()
            .map(|(id, r)| (id.clone(), r.status.as_str().to_string()))
            .collect()
    });
    let violations = world.violations.lock().expect("violations lock").clone();
    let effects = world.effects.lock().expect("effects lock").len();
    SimOutcome {
        scenario,
        violations,
        trace: world.trace_lines(),
        runs: statuses,
        effects,
        simulated: start.elapsed(),
    }
}
