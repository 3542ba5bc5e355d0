//! What a 20-rule `[policy]` and one admission plugin (plugins/gpu-quota,
//! in the wasm sandbox) add to submitting a 1,000-step workflow: the
//! workflow read as at submit alone, then read, reviewed by the policy and
//! reviewed by the plugin (the request built, the plugin instantiated and
//! called, its answer checked), as `POST /api/runs` does before it stores
//! the run. Medians of interleaved rounds, in one process.
//!
//! Run: `plugins/build && cargo bench -p weft-api --bench admission`

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use weft_api::app::{Admission, AdmissionOptions};
use weft_core::plugins::{PluginRecord, PluginWorld};
use weft_core::policy::Policy;
use weft_core::ports::{PluginStore, Role};

const STEPS: usize = 1000;
const ROUNDS: usize = 31;

fn workflow() -> String {
    let mut w = String::from("[workflow]\nname = \"big\"\n\n");
    for i in 0..STEPS {
        w.push_str(&format!(
            "[steps.s{i}]\nresources = {{ cpus = 1, memory = \"256MiB\" }}\ntimeout = \"10m\"\ncontainer = {{ image = \"team/app:1\", command = [\"run\", \"{i}\"] }}\n\n"
        ));
    }
    w
}

fn policy() -> Policy {
    serde_json::from_value(serde_json::json!({
        "images": ["registry.example/a/*", "registry.example/b/*", "registry.example/c/*",
                   "registry.example/d/*", "registry.example/e/*", "registry.example/f/*",
                   "registry.example/g/*", "python:3.12@sha256:abc", "busybox:1", "team/*"],
        "ceilings": {"cpus": 8, "memory": "16GiB", "gpus": 2, "timeout": "24h", "fan-out": 1000, "plugin-memory": "256MiB"},
        "roles": {"operator": {"kinds": ["container", "wasm"], "pools": ["default", "batch"]}}
    }))
    .unwrap()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let wasm_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plugins/dist/gpu-quota.wasm"
    );
    let wasm = std::fs::read(wasm_path)
        .unwrap_or_else(|e| panic!("{wasm_path}: {e}; build the plugins first: plugins/build"));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(weft_store_embedded::EmbeddedRunStore::open(dir.path()).unwrap());
    let sha256: String = Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    store.put_wasm(&sha256, &wasm).await.unwrap();
    store
        .put_plugin(&PluginRecord {
            name: "gpu-quota".into(),
            version: "1.0.0".into(),
            sha256,
            size: wasm.len() as u64,
            world: PluginWorld::Admission,
            exports: vec![],
            imports: vec![],
            uploaded_at: 0,
        })
        .await
        .unwrap();
    let options: Vec<AdmissionOptions> = serde_json::from_value(serde_json::json!([
        {"plugin": "gpu-quota@^1", "config": {"roles": ["operator"], "images": ["team/*"], "max-gpus-per-run": 2}}
    ]))
    .unwrap();
    let host = Arc::new(weft_wasm_host::Host::new(Default::default()).unwrap());
    let admission = Admission::new(&options, host, store).unwrap();
    let rules = policy().for_role(Role::Operator).unwrap();
    let source = workflow();

    let (mut plain, mut full, mut alone) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let read_plain = |plain: &mut Vec<Duration>| {
            let t = Instant::now();
            std::hint::black_box(weft_core::spec::load(&source).unwrap());
            plain.push(t.elapsed());
        };
        if round % 2 == 0 {
            read_plain(&mut plain);
        }
        let t = Instant::now();
        let w = weft_core::spec::load(&source).unwrap();
        assert!(rules.review(&w).is_empty());
        let decisions = admission.review(&w, Some("ops"), "operator").await.unwrap();
        full.push(t.elapsed());
        assert_eq!(decisions[0].verdict, weft_core::admission::Verdict::Allow);
        if round % 2 == 1 {
            read_plain(&mut plain);
        }
        let t = Instant::now();
        std::hint::black_box(admission.review(&w, Some("ops"), "operator").await.unwrap());
        alone.push(t.elapsed());
    }
    let (plain, full, alone) = (median(plain), median(full), median(alone));
    println!("{STEPS}-step workflow, medians of {ROUNDS} interleaved rounds:");
    println!("  read as at submit, no policy, no admission:   {plain:>10.3?}");
    println!(
        "  read, 20-rule policy, 1 admission plugin:     {full:>10.3?}  (+{:.3?}, x{:.3})",
        full.saturating_sub(plain),
        full.as_secs_f64() / plain.as_secs_f64()
    );
    println!("  the admission review alone:                   {alone:>10.3?}");
}
