//! Replays simulation seeds: `weft-sim [--profile chaos|store-outages|quick-steps]
//! (--seed N | --seeds A..B) [--trace]`. Prints each seed's result; with
//! `--trace`, the whole trace of each. Exits 1 if any seed broke a property.

use std::process::ExitCode;

use weft_sim::{simulate, Profile};

const USAGE: &str =
    "usage: weft-sim [--profile chaos|store-outages|quick-steps] (--seed N | --seeds A..B) [--trace]

Runs the deterministic simulation of distributed weft for each seed (the
real orchestrator and worker over a simulated store and broker, faults
drawn from the seed) and checks its properties: no succeeded step runs
again, no effect is recorded twice, every run ends, no attempt is lost.
Default: --profile chaos --seeds 0..100. A failing seed replays exactly.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut profile = Profile::Chaos;
    let mut seeds = 0..100u64;
    let mut trace = false;
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--profile" => {
                let Some(p) = Profile::parse(&value) else {
                    eprintln!("weft-sim: --profile is chaos or store-outages, not `{value}`");
                    return ExitCode::from(2);
                };
                profile = p;
                i += 1;
            }
            "--seed" => {
                let Ok(n) = value.parse::<u64>() else {
                    eprintln!("weft-sim: --seed takes a number, not `{value}`");
                    return ExitCode::from(2);
                };
                seeds = n..n + 1;
                i += 1;
            }
            "--seeds" => {
                let parsed = value
                    .split_once("..")
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
                let Some((a, b)) = parsed else {
                    eprintln!("weft-sim: --seeds takes A..B, not `{value}`");
                    return ExitCode::from(2);
                };
                seeds = a..b;
                i += 1;
            }
            "--trace" => trace = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("weft-sim: unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        i += 1;
    }
    let mut failed = 0;
    for seed in seeds {
        let started = std::time::Instant::now();
        let outcome = simulate(seed, profile);
        if trace {
            println!("{}", outcome.trace.join("\n"));
        }
        if outcome.violations.is_empty() {
            println!(
                "seed {seed}: ok ({} effects, runs {:?}, {:.0?} simulated in {:.0?})",
                outcome.effects,
                outcome.runs,
                outcome.simulated,
                started.elapsed()
            );
        } else {
            failed += 1;
            println!("{}", outcome.report(if trace { 0 } else { 60 }));
        }
    }
    if failed > 0 {
        println!("{failed} seed(s) broke a property");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
