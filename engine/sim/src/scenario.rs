//! What one seed simulates: a workflow, a cluster, and the faults that hit
//! it and when. Drawn from the seed alone, so a seed names a scenario.

use std::fmt::Write;
use std::time::Duration;

use crate::broker::BrokerFaults;
use crate::rng::Rng;
use crate::steps::StepsSpec;

/// Which faults a scenario draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Only the store fails (it stops for a while, is slow, loses replies)
    /// under one orchestrator: every attempt's effect must happen at most once.
    StoreOutages,
    /// Everything fails: processes are killed and starved, the broker
    /// restarts, messages come late and twice, clocks disagree, runs are
    /// cancelled. Executions may repeat, but each must be shown.
    Chaos,
    /// Chaos with steps that end within tens of milliseconds (most before
    /// a worker reports their start: their claims record it) and more
    /// cancels, so executions whose workers die unheard meet every way an
    /// attempt ends: a later execution, a cancel, a timeout, a dead letter.
    QuickSteps,
}

impl Profile {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "store-outages" => Some(Profile::StoreOutages),
            "chaos" => Some(Profile::Chaos),
            "quick-steps" => Some(Profile::QuickSteps),
            _ => None,
        }
    }
}

/// One fault, at a time from the start.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    StoreDown(Duration),
    BrokerRestart(Duration),
    KillOrchestrator {
        index: usize,
        down: Duration,
    },
    KillWorker {
        index: usize,
        down: Duration,
    },
    PauseOrchestrator {
        index: usize,
        pause: Duration,
    },
    PauseWorker {
        index: usize,
        pause: Duration,
    },
    /// The broker takes a held delivery back (a consumer timeout).
    Redeliver,
    /// Someone cancels the first run.
    Cancel,
}

/// Everything a seed decides.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub profile: Profile,
    pub workflow: String,
    pub runs: usize,
    pub orchestrators: usize,
    pub workers: usize,
    pub concurrency: usize,
    pub lease_ttl_ms: u64,
    pub heartbeat_ms: u64,
    pub steps: StepsSpec,
    pub store_latency: Duration,
    pub lost_reply: f64,
    pub broker: BrokerFaults,
    /// Clock skew of each process, by start order.
    pub skew_ms: i64,
    pub faults: Vec<(Duration, Fault)>,
    /// After this, no more faults: what was killed is started again.
    pub calm_after: Duration,
    /// Jobs of one run queued at once (0: no window).
    pub dispatch_window: u32,
    /// Pool queues that count no returns (a single node's classic queues):
    /// poison jobs are caught by their claims alone.
    pub classic_jobs: bool,
    /// Workers claim and prepare jobs ahead of a free slot, as the
    /// embedded worker does (`weft_worker::Options::prepare_ahead`).
    pub prepare_ahead: bool,
}

impl Scenario {
    pub fn draw(seed: u64, profile: Profile) -> Self {
        let mut r = Rng::new(seed ^ 0x005E_ED0F_5CE4_A210_u64);
        // Quick steps draw what chaos does, so chaos seeds keep their scenarios.
        let quick = profile == Profile::QuickSteps;
        let chaos = profile != Profile::StoreOutages;
        let workflow = workflow(&mut r);
        let orchestrators = if chaos { r.range(1, 2) as usize } else { 1 };
        let workers = r.range(1, 3) as usize;
        let lease_ttl_ms = *r.pick(&[2_000, 5_000, 15_000]);
        let heartbeat_ms = *r.pick(&[500, 1_000, 3_000]);
        let mut steps = StepsSpec {
            min_ms: 50,
            max_ms: *r.pick(&[500, 2_000, 6_000]),
            fail: *r.pick(&[0.0, 0.05, 0.2]),
        };
        if quick {
            // 20, 80 or 240 ms at most.
            steps.min_ms = 0;
            steps.max_ms /= 25;
        }
        let calm_after = Duration::from_secs(r.range(20, 90));
        let mut faults = Vec::new();
        for _ in 0..r.range(1, if chaos { 8 } else { 4 }) {
            let at = Duration::from_millis(r.range(200, calm_after.as_millis() as u64));
            let fault = if chaos {
                match r.range(0, 8) {
                    0 => Fault::StoreDown(Duration::from_millis(r.range(500, 30_000))),
                    1 => Fault::BrokerRestart(Duration::from_millis(r.range(500, 20_000))),
                    2 => Fault::KillOrchestrator {
                        index: r.range(0, orchestrators as u64 - 1) as usize,
                        down: Duration::from_millis(r.range(0, 20_000)),
                    },
                    3 => Fault::KillWorker {
                        index: r.range(0, workers as u64 - 1) as usize,
                        down: Duration::from_millis(r.range(0, 20_000)),
                    },
                    4 => Fault::PauseOrchestrator {
                        index: r.range(0, orchestrators as u64 - 1) as usize,
                        pause: Duration::from_millis(r.range(500, 30_000)),
                    },
                    5 => Fault::PauseWorker {
                        index: r.range(0, workers as u64 - 1) as usize,
                        pause: Duration::from_millis(r.range(500, 30_000)),
                    },
                    6 => Fault::Redeliver,
                    7 if quick || r.chance(0.3) => Fault::Cancel,
                    _ => Fault::StoreDown(Duration::from_millis(r.range(500, 10_000))),
                }
            } else {
                Fault::StoreDown(Duration::from_millis(r.range(500, 30_000)))
            };
            faults.push((at, fault));
        }
        faults.sort_by_key(|(at, _)| *at);
        let mut scenario = Scenario {
            seed,
            profile,
            workflow,
            runs: if chaos { r.range(1, 2) as usize } else { 1 },
            orchestrators,
            workers,
            concurrency: r.range(1, 3) as usize,
            lease_ttl_ms,
            heartbeat_ms,
            steps,
            store_latency: Duration::from_millis(*r.pick(&[0, 5, 50])),
            lost_reply: *r.pick(&[0.0, 0.01, 0.05]),
            broker: if chaos {
                BrokerFaults {
                    max_delay: Duration::from_millis(*r.pick(&[0, 20, 500])),
                    duplicate: *r.pick(&[0.0, 0.02, 0.1]),
                }
            } else {
                BrokerFaults::default()
            },
            skew_ms: if chaos {
                r.range(0, 10_000) as i64 - 5_000
            } else {
                0
            },
            faults,
            calm_after,
            dispatch_window: *r.pick(&[0, 1, 3, 1_000]),
            // Drawn last: every seed keeps the scenario it had.
            classic_jobs: false,
            prepare_ahead: false,
        };
        scenario.classic_jobs = r.chance(0.5);
        scenario.prepare_ahead = r.chance(0.5);
        scenario
    }
}

/// A workflow of simulated steps: a fan-out with a join, a chain, or a
/// diamond around a fan-out, with retries and sometimes a timeout. Its
/// steps but the fan-outs are cacheable, so a later run of it may reuse an
/// earlier's results. Its `on-exit` step, `finally`, must run once in
/// every run that started, whatever happened.
fn workflow(r: &mut Rng) -> String {
    // Drawn from nothing: every seed keeps the scenario it had.
    let mut text = String::from(
        "[workflow]\nname = \"sim\"\non-exit = \"finally\"\n\n[steps.finally]\nrun = \"sim\"\n\n",
    );
    let step = |text: &mut String, r: &mut Rng, id: &str, needs: &[&str], items: u64| {
        let _ = writeln!(text, "[steps.{id}]\nrun = \"sim\"");
        if items == 0 {
            // Drawn from nothing: every seed keeps the scenario it had.
            let _ = writeln!(text, "cache = true");
        }
        if !needs.is_empty() {
            let needs: Vec<String> = needs.iter().map(|n| format!("\"{n}\"")).collect();
            let _ = writeln!(text, "needs = [{}]", needs.join(", "));
        }
        if items > 0 {
            let list: Vec<String> = (0..items).map(|i| i.to_string()).collect();
            let _ = writeln!(text, "for-each = [{}]", list.join(", "));
        }
        let _ = writeln!(
            text,
            "retries = {{ limit = {}, delay = \"1s\" }}",
            r.range(0, 3)
        );
        if r.chance(0.2) {
            let _ = writeln!(text, "timeout = \"{}s\"", r.range(2, 20));
        }
        text.push('\n');
    };
    match r.range(0, 2) {
        0 => {
            let n = r.range(3, 30);
            step(&mut text, r, "prep", &[], 0);
            step(&mut text, r, "fan", &["prep"], n);
            step(&mut text, r, "join", &["fan"], 0);
        }
        1 => {
            let n = r.range(2, 8);
            for i in 0..n {
                let id = format!("s{i}");
                let prev = format!("s{}", i.wrapping_sub(1));
                let needs: Vec<&str> = if i == 0 { vec![] } else { vec![prev.as_str()] };
                step(&mut text, r, &id, &needs, 0);
            }
        }
        _ => {
            let n = r.range(2, 12);
            step(&mut text, r, "a", &[], 0);
            step(&mut text, r, "b", &["a"], 0);
            step(&mut text, r, "c", &["a"], n);
            step(&mut text, r, "d", &["b", "c"], 0);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_one_scenario_and_its_workflow_is_valid() {
        for seed in 0..200 {
            for profile in [Profile::StoreOutages, Profile::Chaos] {
                let a = Scenario::draw(seed, profile);
                let b = Scenario::draw(seed, profile);
                assert_eq!(a.workflow, b.workflow);
                assert_eq!(a.faults, b.faults);
                if let Err(e) = weft_core::spec::load(&a.workflow) {
                    panic!("seed {seed}: {e:?}\n{}", a.workflow);
                }
            }
        }
    }
}
