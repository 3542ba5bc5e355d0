//! The simulation in CI: sweeps of seeds for each profile, the seeds that
//! found bugs kept as regressions, and exact replay.
//!
//! `WEFT_SIM_SEEDS=N` sweeps N seeds per profile instead of the default
//! (for a deeper search); every failure prints its seed and how to replay it.

use weft_sim::{simulate, Profile};

/// Seeds per sweep test; each profile's sweep is split over several tests
/// so the runner spreads them over the machine's cores.
const CHUNK: u64 = 500;
const CHUNKS: u64 = 4;

fn seeds_per_profile() -> u64 {
    std::env::var("WEFT_SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CHUNK * CHUNKS)
}

fn sweep(profile: Profile, chunk: u64) {
    let per_chunk = seeds_per_profile().div_ceil(CHUNKS);
    let mut failures = Vec::new();
    for seed in chunk * per_chunk..(chunk + 1) * per_chunk {
        let outcome = simulate(seed, profile);
        if !outcome.violations.is_empty() {
            failures.push(outcome.report(40));
        }
    }
    assert!(
        failures.is_empty(),
        "{} seed(s) broke a property:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn store_outages_0() {
    sweep(Profile::StoreOutages, 0);
}
#[test]
fn store_outages_1() {
    sweep(Profile::StoreOutages, 1);
}
#[test]
fn store_outages_2() {
    sweep(Profile::StoreOutages, 2);
}
#[test]
fn store_outages_3() {
    sweep(Profile::StoreOutages, 3);
}
#[test]
fn chaos_0() {
    sweep(Profile::Chaos, 0);
}
#[test]
fn chaos_1() {
    sweep(Profile::Chaos, 1);
}
#[test]
fn chaos_2() {
    sweep(Profile::Chaos, 2);
}
#[test]
fn chaos_3() {
    sweep(Profile::Chaos, 3);
}

#[test]
fn quick_steps_0() {
    sweep(Profile::QuickSteps, 0);
}
#[test]
fn quick_steps_1() {
    sweep(Profile::QuickSteps, 1);
}
#[test]
fn quick_steps_2() {
    sweep(Profile::QuickSteps, 2);
}
#[test]
fn quick_steps_3() {
    sweep(Profile::QuickSteps, 3);
}

fn passes(seed: u64, profile: Profile) {
    let outcome = simulate(seed, profile);
    assert!(outcome.violations.is_empty(), "{}", outcome.report(200));
    assert!(outcome.effects > 0, "the seed ran steps");
}

/// Found the reported Redis-outage double run on the code before fencing:
/// a worker's "claim done" write failed during the outage and was ignored,
/// the claim lapsed, and a duplicate copy of attempt 1 (republished by a
/// driver that had died on a failed append and been adopted again) ran
/// again after the outage, while the run showed one attempt.
#[test]
fn regression_redis_outage_double_run() {
    passes(51, Profile::StoreOutages);
}

/// Found reports that came after their run ended (a step that finished
/// after its attempt timed out during an outage) dropped, so the run hid
/// an execution.
#[test]
fn regression_a_report_after_the_run_ended_is_recorded() {
    passes(780, Profile::StoreOutages);
}

/// Found the router dropping a report while the adopter was starting the
/// same run: the run never ended.
#[test]
fn regression_a_report_during_adoption_is_not_lost() {
    passes(39, Profile::Chaos);
}

/// Found a starved execution that lost its claim finishing first while the
/// claim stayed held by the newer one, so a third copy ran a step whose
/// success was recorded.
#[test]
fn regression_the_first_execution_to_finish_wins() {
    passes(2345, Profile::Chaos);
    passes(1950, Profile::Chaos);
}

/// Found a resumed run looking its queued attempt up in the step cache: a
/// hit recorded the success while the job published before the restart
/// was still in the queue, and that copy then ran.
#[test]
fn regression_a_resumed_attempt_is_not_taken_from_the_cache() {
    passes(776, Profile::Chaos);
}

/// Found a start reported beside the running step with nothing else
/// recording it: with the broker down the start was lost, the worker was
/// killed before it could report the end, and the run never showed that
/// execution. The claim records it now, and the next execution's reports
/// tell of it (with that part of `report_events` removed, this fails).
#[test]
fn regression_an_execution_whose_start_was_lost_is_shown() {
    passes(1400, Profile::Chaos);
}

/// Found a step that ran with no report sent: its worker was killed before
/// reporting a start it no longer reports up front, and the run was
/// cancelled before any copy of the job came back, so only the claim knew.
/// The copy that comes back tells of it (`Worker::settle`).
#[test]
fn regression_a_cancel_records_the_executions_only_the_claim_saw() {
    passes(633, Profile::QuickSteps);
    passes(2794, Profile::QuickSteps);
}

/// Found an execution whose start report was lost (the broker down), its
/// worker killed, and its attempt then timed out: the server that aborted
/// the claim, and learned of the execution from it, was killed before it
/// could tell anyone. A copy of the job that finds its claim settled now
/// tells of every execution the claim remembers before it is acked.
#[test]
fn regression_a_settled_claim_tells_of_its_executions_to_the_last_copy_of_its_job() {
    passes(46118, Profile::Chaos);
}

/// Found a copy of a job, taken again after its worker was killed (the
/// broker down, so the execution before it had told no one), holding its
/// claim while it waited for a slot and aborted there by its attempt's
/// timeout: it was acked without a word, and the run hid the execution
/// before it. A copy aborted before its step starts now tells of the
/// executions its claim knew (`Worker::settle_unstarted`).
#[test]
fn regression_a_copy_aborted_before_its_step_starts_tells_of_the_executions_before_it() {
    passes(45029, Profile::Chaos);
}

#[test]
fn a_seed_replays_exactly() {
    for (seed, profile) in [(51, Profile::StoreOutages), (2345, Profile::Chaos)] {
        let (a, b) = (simulate(seed, profile), simulate(seed, profile));
        assert!(a.trace.len() > 20, "a trace worth comparing");
        assert_eq!(a.trace, b.trace, "seed {seed} replayed differently");
    }
}
