//! Overhead of plugin hooks on a step: `cargo bench -p weft-wasm-host`.
//!
//! Warm: one pre hook and one post hook (metrics-extract for both, with a
//! realistic payload), each a fresh instance as the worker makes them, per
//! "step". Cold: the first load of a plugin, compile included.

use std::time::{Duration, Instant};

use serde_json::json;
use weft_wasm_host::{CallContext, Host, Limits, Options};

fn main() {
    let path = format!(
        "{}/../../plugins/dist/metrics-extract.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}; run plugins/build"));

    let host = Host::new(Options::default()).unwrap();
    let started = Instant::now();
    let plugin = host.load(&wasm).unwrap();
    let cold = started.elapsed();

    let ctx = CallContext {
        run_id: "01jbench".into(),
        workflow: "bench".into(),
        step: "train".into(),
        task: "train".into(),
        attempt: 1,
        plugin: "metrics-extract@0.1.0".into(),
        config: json!({}),
        artifacts: Default::default(),
    };
    let input = json!({"inputs": {"params": {"epochs": 3, "dataset": "mnist"}, "steps": {}, "run": {"id": "01jbench"}},
        "env": {"A": "1"}, "action": {"kind": "run", "command": {"shell": "echo hi"}}});
    let outcome = json!({"status": "succeeded", "exit-code": 0, "outputs": {"rows": 60000},
        "log-tail": "epoch 1\nloss=0.25\naccuracy=0.93\n"});
    let limits = Limits::default();
    let step = || {
        let mut pre = host.hook(&plugin, &ctx, limits).unwrap();
        std::hint::black_box(pre.pre_process(&input).unwrap());
        let mut post = host.hook(&plugin, &ctx, limits).unwrap();
        std::hint::black_box(post.post_process(&outcome).unwrap());
    };
    for _ in 0..500 {
        step();
    }
    let mut samples: Vec<Duration> = (0..5000)
        .map(|_| {
            let t = Instant::now();
            step();
            t.elapsed()
        })
        .collect();
    samples.sort();
    let mut inst: Vec<Duration> = (0..5000)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(host.hook(&plugin, &ctx, limits).unwrap());
            t.elapsed()
        })
        .collect();
    inst.sort();
    println!(
        "instantiate + drop only, median:  {:>10.2?}",
        inst[inst.len() / 2]
    );
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!("plugin load, cold (compile):      {:>10.2?}", cold);
    println!("pre + post hook per step, median: {:>10.2?}", pct(0.5));
    println!("pre + post hook per step, p99:    {:>10.2?}", pct(0.99));
}
