//! What the server's `[policy]` adds to a submit and to each dispatch: a
//! 1,000-step workflow (container steps, a third of them with templated
//! images) read as at submit, with and without a review under a 20-rule
//! policy (10 image patterns, 6 ceilings, the operator's kinds and pools,
//! network and user rules), and the 1,000 jobs admitted as at dispatch.
//! Medians of interleaved repetitions, in one process.
//!
//! Run: `cargo bench -p weft-core --bench policy`

use std::time::{Duration, Instant};

use weft_core::policy::Policy;
use weft_core::ports::Role;
use weft_core::spec::StepAction;

const STEPS: usize = 1000;
const ROUNDS: usize = 21;

fn workflow() -> String {
    let mut w = String::from("[workflow]\nname = \"big\"\n[params]\nimage = \"team/app:1\"\n\n");
    for i in 0..STEPS {
        let image = if i % 3 == 0 {
            "{{ params.image }}"
        } else {
            "team/app:1"
        };
        w.push_str(&format!(
            "[steps.s{i}]\nresources = {{ cpus = 1, memory = \"256MiB\" }}\ntimeout = \"10m\"\ncontainer = {{ image = \"{image}\", command = [\"run\", \"{i}\"] }}\n\n"
        ));
    }
    w
}

const POLICY: &str = r#"
images = ["registry.example/a/*", "registry.example/b/*", "registry.example/c/*", "registry.example/d/*",
          "registry.example/e/*", "registry.example/f/*", "registry.example/g/*", "python:3.12@sha256:abc",
          "busybox:1", "team/*"]
[ceilings]
cpus = 8
memory = "16GiB"
gpus = 2
timeout = "24h"
fan-out = 1000
plugin-memory = "256MiB"
[roles.operator]
kinds = ["container", "wasm"]
pools = ["default", "batch"]
"#;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let source = workflow();
    let policy: Policy = toml::from_str(POLICY).unwrap();
    let rules = policy.for_role(Role::Operator).unwrap();
    let (mut plain, mut reviewed, mut admitted, mut review) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Which goes first alternates: the first read of a round is slower.
        let read_plain = |plain: &mut Vec<Duration>| {
            let t = Instant::now();
            let w = weft_core::spec::load(&source).unwrap();
            plain.push(t.elapsed());
            std::hint::black_box(&w);
        };
        if round % 2 == 0 {
            read_plain(&mut plain);
        }

        let t = Instant::now();
        let w = weft_core::spec::load(&source).unwrap();
        let refused = rules.review(&w);
        reviewed.push(t.elapsed());
        assert!(refused.is_empty(), "{refused:?}");
        if round % 2 == 1 {
            read_plain(&mut plain);
        }
        let t = Instant::now();
        std::hint::black_box(rules.review(&w));
        review.push(t.elapsed());

        // At dispatch: each step's action as rendered, admitted.
        let lookup = |_: &weft_core::template::Path| Ok(serde_json::json!("team/app:1"));
        let mut actions: Vec<_> = w
            .steps
            .iter()
            .map(|s| s.action.render(&lookup).unwrap())
            .collect();
        let t = Instant::now();
        for (step, action) in w.steps.iter().zip(actions.iter_mut()) {
            rules.admit(step, action).unwrap();
        }
        admitted.push(t.elapsed());
        assert!(matches!(&actions[0], StepAction::Container { spec } if spec.user.is_some()));
    }
    let (plain, reviewed, admitted, review) = (
        median(plain),
        median(reviewed),
        median(admitted),
        median(review),
    );
    println!("{STEPS}-step workflow, medians of {ROUNDS} interleaved rounds:");
    println!("  read as at submit, no policy:        {plain:>10.3?}");
    println!(
        "  read and reviewed (20-rule policy):  {reviewed:>10.3?}  (+{:.3?}, x{:.3})",
        reviewed.saturating_sub(plain),
        reviewed.as_secs_f64() / plain.as_secs_f64()
    );
    println!("  the review alone:                    {review:>10.3?}");
    println!(
        "  {STEPS} jobs admitted as at dispatch:  {admitted:>10.3?}  ({:.2?} per job)",
        admitted / STEPS as u32
    );
}
