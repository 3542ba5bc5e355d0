//! The host against real components from `plugins/` (built by
//! `plugins/build`, which `scripts/test` runs first).

use std::time::{Duration, Instant};

use serde_json::json;
use weft_wasm_host::{CallContext, Error, Host, Limits, Options, World};

fn wasm(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../plugins/dist/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}; build the plugins with plugins/build"))
}

fn ctx(plugin: &str, config: serde_json::Value) -> CallContext {
    CallContext {
        run_id: "r1".into(),
        workflow: "wf".into(),
        step: "s".into(),
        task: "s".into(),
        attempt: 1,
        plugin: format!("{plugin}@0.1.0"),
        config,
        artifacts: Default::default(),
    }
}

fn host() -> Host {
    Host::new(Options::default()).unwrap()
}

#[test]
fn validate_inputs_passes_good_inputs_and_names_every_mismatch() {
    let host = host();
    let plugin = host.load(&wasm("validate-inputs")).unwrap();
    assert_eq!(plugin.inspection.world, World::Hook);
    let schema = json!({"schema": {"type": "object", "required": ["params"], "properties": {
        "params": {"type": "object", "properties": {
            "epochs": {"type": "integer", "minimum": 1},
            "name": {"type": "string", "maxLength": 3}}}}}});
    let c = ctx("validate-inputs", schema);
    let good = json!({"inputs": {"params": {"epochs": 3, "name": "ab"}}, "env": {}, "action": {}});
    let mut hook = host.hook(&plugin, &c, Limits::default()).unwrap();
    assert_eq!(hook.pre_process(&good).unwrap(), good);
    assert_eq!(hook.take_logs()[0].message, "inputs match the schema");

    let bad = json!({"inputs": {"params": {"epochs": 0, "name": "abcd"}}});
    let mut hook = host.hook(&plugin, &c, Limits::default()).unwrap();
    let err = hook.pre_process(&bad).unwrap_err().to_string();
    assert!(err.contains("validate-inputs@0.1.0"), "{err}");
    assert!(
        err.contains("inputs.params.epochs: 0 breaks minimum 1"),
        "{err}"
    );
    assert!(
        err.contains("inputs.params.name: has 4 characters"),
        "{err}"
    );
}

#[test]
fn metrics_and_redaction_change_outcomes_and_logs() {
    let host = host();
    let metrics = host.load(&wasm("metrics-extract")).unwrap();
    let outcome = json!({"status": "succeeded", "outputs": {"a": 1},
        "log-tail": "epoch 1\nloss=0.25\naccuracy = 0.9\nnote=fine\n"});
    let mut hook = host
        .hook(
            &metrics,
            &ctx("metrics-extract", json!({})),
            Limits::default(),
        )
        .unwrap();
    let out = hook.post_process(&outcome).unwrap();
    assert_eq!(
        out["outputs"]["metrics"],
        json!({"loss": 0.25, "accuracy": 0.9, "note": "fine"})
    );
    assert_eq!(out["outputs"]["a"], 1);

    let redact = host.load(&wasm("redact-secrets")).unwrap();
    let c = ctx("redact-secrets", json!({"values": ["hunter2"]}));
    let mut hook = host.hook(&redact, &c, Limits::default()).unwrap();
    assert_eq!(
        hook.filter_log("login with hunter2\napi_key=abc123\nok\n")
            .unwrap(),
        "login with ***\napi_key= ***\nok\n"
    );
    let out = hook
        .post_process(&json!({"outputs": {"db_password": "pw", "msg": "x hunter2 y"}, "log-tail": "token: zz"}))
        .unwrap();
    assert_eq!(
        out["outputs"],
        json!({"db_password": "***", "msg": "x *** y"})
    );
    assert_eq!(out["log-tail"], "token: ***");
}

#[test]
fn a_step_plugin_does_its_work() {
    let host = host();
    let plugin = host.load(&wasm("text-stats")).unwrap();
    assert_eq!(plugin.inspection.world, World::Step);
    let (out, logs) = host.run_step(
        &plugin,
        &ctx("text-stats", json!({})),
        Limits::default(),
        &json!({"text": "the cat and the hat\nthe end"}),
    );
    let out = out.unwrap();
    assert_eq!(out["lines"], 2);
    assert_eq!(out["words"], 7);
    assert_eq!(out["top"][0], json!(["the", 3]));
    assert_eq!(out["sha256"], sha256_hex("the cat and the hat\nthe end"));
    assert!(logs.iter().any(|l| l.message.contains("hashed 27 bytes")));
    let hook_world = host.load(&wasm("metrics-extract")).unwrap();
    let (err, _) = host.run_step(
        &hook_world,
        &ctx("m", json!({})),
        Limits::default(),
        &json!({}),
    );
    assert!(err
        .unwrap_err()
        .to_string()
        .contains("hook world, which has no `run`"));
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn misbehaving_plugins_are_stopped_at_their_limits_and_the_host_goes_on() {
    let host = host();
    let spin = host.load(&wasm("spin")).unwrap();
    let limits = Limits {
        timeout: Some(Duration::from_millis(200)),
        memory_bytes: Some(16 << 20),
    };
    let started = Instant::now();
    let mut hook = host.hook(&spin, &ctx("spin", json!({})), limits).unwrap();
    let err = hook.pre_process(&json!({})).unwrap_err();
    assert!(matches!(err, Error::Deadline { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "plugin spin@0.1.0: `pre-process` ran past its deadline of 200 ms and was stopped"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The instance is done for; the host is not.
    assert!(hook.pre_process(&json!({})).is_err());

    let hog = host.load(&wasm("hog")).unwrap();
    let mut hook = host.hook(&hog, &ctx("hog", json!({})), limits).unwrap();
    let err = hook.pre_process(&json!({})).unwrap_err();
    assert!(matches!(err, Error::Memory { cap_mib: 16, .. }), "{err}");

    let trap = host.load(&wasm("trap")).unwrap();
    let mut hook = host.hook(&trap, &ctx("trap", json!({})), limits).unwrap();
    let err = hook.pre_process(&json!({})).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Trap {
                export: "pre-process",
                ..
            }
        ),
        "{err}"
    );

    let ok = host.load(&wasm("metrics-extract")).unwrap();
    let mut hook = host.hook(&ok, &ctx("m", json!({})), limits).unwrap();
    assert_eq!(hook.pre_process(&json!({"x": 1})).unwrap(), json!({"x": 1}));
}

#[test]
fn plugins_importing_wasi_load_but_get_nothing() {
    let host = host();
    let escape = host.load(&wasm("escape")).unwrap();
    assert!(escape
        .inspection
        .imports
        .iter()
        .any(|i| i.starts_with("wasi:filesystem/preopens")));
    let mut hook = host
        .hook(&escape, &ctx("escape", json!({})), Limits::default())
        .unwrap();
    hook.pre_process(&json!({"inputs": {}}))
        .expect("every escape is denied");
    let logs: Vec<String> = hook.take_logs().into_iter().map(|l| l.message).collect();
    assert!(
        logs.contains(&"denied: environment is empty".to_string()),
        "{logs:?}"
    );
    assert!(
        logs.contains(&"denied: no directory to open /etc/passwd from".to_string()),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.starts_with("denied: create a TCP socket")
                || l.starts_with("denied: connect to 127.0.0.1:6379")),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.starts_with("denied: resolve localhost")),
        "{logs:?}"
    );
}

#[test]
fn bad_uploads_are_refused_with_the_reason() {
    let host = host();
    let err = host.inspect(b"hello world").unwrap_err().to_string();
    assert!(err.contains("not a WebAssembly file"), "{err}");
    let core_module = b"\0asm\x01\0\0\0";
    let err = host.inspect(core_module).unwrap_err().to_string();
    assert!(
        err.contains("core WebAssembly module, not a component"),
        "{err}"
    );
    let empty_component = b"\0asm\x0d\0\x01\0";
    let err = host.inspect(empty_component).unwrap_err().to_string();
    assert!(err.contains("implements no weft world"), "{err}");
    assert!(err.contains("exports nothing"), "{err}");
    let mut truncated = wasm("metrics-extract");
    truncated.truncate(truncated.len() / 2);
    let err = host.inspect(&truncated).unwrap_err().to_string();
    assert!(err.starts_with("compiling the plugin"), "{err}");
    let small = Host::new(Options {
        max_plugin_bytes: 1000,
        ..Options::default()
    })
    .unwrap();
    let err = small
        .inspect(&wasm("metrics-extract"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("the limit is 1000 bytes"), "{err}");
    // What componentize-js builds by default: a component that imports HTTP.
    let wants_http = wat::parse_str(
        r#"(component
             (import "wasi:http/types@0.2.10" (instance
               (export "fields" (type (sub resource)))))
             (import "wasi:http/outgoing-handler@0.2.10" (instance
               (export "request-options" (type (sub resource)))))
             (import "wasi:io/poll@0.2.10" (instance)))"#,
    )
    .unwrap();
    let err = host.inspect(&wants_http).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "the plugin imports what weft does not provide: \
             `wasi:http/types@0.2.10`, `wasi:http/outgoing-handler@0.2.10`: weft links only"
        ),
        "{err}"
    );
    assert!(err.contains("-d http fetch-event"), "{err}");
}

#[test]
fn compiled_plugins_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        cache_dir: Some(dir.path().into()),
        ..Options::default()
    };
    let bytes = wasm("metrics-extract");
    let first = Host::new(options.clone()).unwrap().load(&bytes).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
    let name = files[0]
        .as_ref()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    assert!(
        name.starts_with(&first.sha256) && name.ends_with(".cwasm"),
        "{name}"
    );
    // A second host loads it from disk and it runs.
    let host = Host::new(options).unwrap();
    let again = host.load(&bytes).unwrap();
    let mut hook = host
        .hook(&again, &ctx("m", json!({})), Limits::default())
        .unwrap();
    assert_eq!(hook.pre_process(&json!(1)).unwrap(), json!(1));
    // A corrupt cache file is replaced, not trusted.
    // (Replaced by rename, as the cache writes: the loaded host maps the old file.)
    std::fs::write(dir.path().join("junk"), b"junk").unwrap();
    std::fs::rename(dir.path().join("junk"), dir.path().join(&name)).unwrap();
    let host = Host::new(Options {
        cache_dir: Some(dir.path().into()),
        ..Options::default()
    })
    .unwrap();
    assert!(host.load(&bytes).is_ok());
}

#[test]
fn loads_of_one_plugin_at_once_compile_it_once() {
    let host = std::sync::Arc::new(host());
    let bytes = std::sync::Arc::new(wasm("text-stats"));
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let (host, bytes) = (host.clone(), bytes.clone());
            std::thread::spawn(move || host.load(&bytes).unwrap().sha256.clone())
        })
        .collect();
    let hashes: Vec<String> = loads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(host.compiles(), 1, "four loads at once, one compile");
}

#[tokio::test]
async fn pushing_an_existing_version_is_settled_before_any_compile() {
    let host = std::sync::Arc::new(host());
    let dir = tempfile::tempdir().unwrap();
    let store = weft_store_embedded::EmbeddedRunStore::open(dir.path()).unwrap();
    let first = weft_wasm_host::register(&host, &store, "stats", "0.1.0", wasm("text-stats"), 1)
        .await
        .unwrap();
    assert_eq!(host.compiles(), 1);
    let again = weft_wasm_host::register(&host, &store, "stats", "0.1.0", wasm("text-stats"), 2)
        .await
        .unwrap();
    assert_eq!(again, first, "the same bytes again: nothing to do");
    let other =
        weft_wasm_host::register(&host, &store, "stats", "0.1.0", wasm("validate-inputs"), 3)
            .await
            .unwrap_err();
    assert!(
        matches!(other, Error::Store(weft_core::Error::Conflict(_))),
        "{other}"
    );
    assert_eq!(host.compiles(), 1, "neither push compiled anything");
}

/// Plugins built against `weft:plugin@0.1.0`, before `read-artifact`
/// (copies of the example plugins as they were built then).
fn wasm_0_1_0(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/weft-plugin-0.1.0/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn plugins_built_against_0_1_0_still_load_and_run() {
    let host = host();
    let redact = host.load(&wasm_0_1_0("redact-secrets")).unwrap();
    assert_eq!(redact.inspection.world, World::Hook);
    assert!(
        redact
            .inspection
            .exports
            .iter()
            .any(|e| e.contains("@0.1.0")),
        "{:?}",
        redact.inspection.exports
    );
    let c = ctx("redact-secrets", json!({"values": ["hunter2"]}));
    let mut hook = host.hook(&redact, &c, Limits::default()).unwrap();
    assert_eq!(hook.filter_log("pw hunter2\n").unwrap(), "pw ***\n");
    let stats = host.load(&wasm_0_1_0("text-stats")).unwrap();
    let (out, _) = host.run_step(
        &stats,
        &ctx("text-stats", json!({})),
        Limits::default(),
        &json!({"text": "a b a"}),
    );
    assert_eq!(out.unwrap()["words"], 3);
}

/// Artifacts in memory, as the worker's reader would give them.
struct Artifacts(std::collections::BTreeMap<String, Vec<u8>>);

impl weft_wasm_host::ArtifactReader for Artifacts {
    fn read(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, String> {
        let bytes = self.0.get(name).ok_or(format!("no artifact `{name}`"))?;
        let start = (offset as usize).min(bytes.len());
        let end = (start + length as usize).min(bytes.len());
        Ok(bytes[start..end].to_vec())
    }
}

#[test]
fn a_post_hook_reads_an_artifact_in_bounded_pieces() {
    let host = host();
    let plugin = host.load(&wasm("csv-check")).unwrap();
    // More than one read's worth (1 MiB): the plugin reads it in pieces.
    let mut csv = String::from("name,score\n");
    while csv.len() < (1 << 20) + 1000 {
        csv.push_str("somebody,42\n");
    }
    let rows = csv.lines().count() - 1;
    let reader = Artifacts([("report".to_string(), csv.into_bytes())].into());
    let mut c = ctx(
        "csv-check",
        json!({"artifact": "report", "columns": ["score"]}),
    );
    c.artifacts = weft_wasm_host::CallArtifacts(Some(std::sync::Arc::new(reader)));
    let outcome = json!({"status": "succeeded", "outputs": {}, "log-tail": ""});
    let mut hook = host.hook(&plugin, &c, Limits::default()).unwrap();
    let out = hook.post_process(&outcome).unwrap();
    assert_eq!(out["outputs"]["report"]["rows"], rows);

    // What is missing is said: an artifact, a column; and with no reader
    // at all, the host says so.
    for (config, says) in [
        (json!({"artifact": "nope"}), "no artifact `nope`"),
        (
            json!({"artifact": "report", "columns": ["total"]}),
            "has no column total",
        ),
    ] {
        let mut c2 = ctx("csv-check", config);
        c2.artifacts = c.artifacts.clone();
        let mut hook = host.hook(&plugin, &c2, Limits::default()).unwrap();
        let err = hook.post_process(&outcome).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
    }
    let mut hook = host
        .hook(
            &plugin,
            &ctx("csv-check", json!({"artifact": "report"})),
            Limits::default(),
        )
        .unwrap();
    let err = hook.post_process(&outcome).unwrap_err().to_string();
    assert!(err.contains("no artifacts can be read here"), "{err}");
}
