//! Plugins through the real binary: the registry over the API and the CLI,
//! misbehaving plugins stopped at their limits on a real worker, and runs
//! that keep the plugin versions they resolved.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;
use crate::support::{plugin_wasm, repo, text, weft};

const FIXTURES: &str = r#"
[workflow]
name = "misbehaving-plugins"

[steps.loops]
run = "echo never"
hooks = { pre = [{ plugin = "spin@0.1.0", timeout = "300ms" }] }

[steps.hogs]
run = "echo never"
hooks = { pre = [{ plugin = "hog@0.1.0", memory = "16MiB" }] }

[steps.traps]
run = "echo never"
hooks = { pre = ["trap@0.1.0"] }

[steps.escapes]
run = "echo still here"
hooks = { pre = ["escape@0.1.0"] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_plugins_fail_their_step_at_their_limits_and_workers_keep_serving() {
    let mut cluster = Cluster::start(1);
    for name in ["spin", "hog", "trap", "escape"] {
        cluster
            .client()
            .push_plugin(name, "0.1.0", plugin_wasm(name))
            .await
            .expect("push");
    }
    let file = cluster.dir.path().join("fixtures.toml");
    std::fs::write(&file, FIXTURES).unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    let reason = |step: &str| {
        let s = view.steps.iter().find(|s| s.id == step).unwrap();
        (s.status.clone(), s.reason.clone().unwrap_or_default())
    };
    let (status, why) = reason("loops");
    assert_eq!(status, "failed");
    assert_eq!(
        why,
        "plugin spin@0.1.0: `pre-process` ran past its deadline of 300 ms and was stopped"
    );
    let (status, why) = reason("hogs");
    assert_eq!(status, "failed");
    assert!(
        why.contains("hog@0.1.0: `pre-process` went over its memory cap of 16 MiB"),
        "{why}"
    );
    let (status, why) = reason("traps");
    assert_eq!(status, "failed");
    assert!(why.contains("trap@0.1.0: `pre-process` trapped"), "{why}");
    assert_eq!(reason("escapes").0, "succeeded");
    // Each attempt records its hooks: plugin, phase, time and error.
    let hooks = |step: &str| {
        let s = view.steps.iter().find(|s| s.id == step).unwrap();
        s.tasks[0].attempts[0].hooks.clone()
    };
    let spin = hooks("loops");
    assert_eq!(spin.len(), 1, "{spin:?}");
    assert_eq!(
        (spin[0].phase.as_str(), spin[0].plugin.as_str()),
        ("pre", "spin@0.1.0")
    );
    assert!(spin[0].ms >= 250.0, "{spin:?}");
    assert!(
        spin[0].error.as_deref().unwrap().contains("deadline"),
        "{spin:?}"
    );
    let escape = hooks("escapes");
    assert_eq!(escape[0].plugin, "escape@0.1.0");
    assert_eq!(escape[0].error, None);
    // And /metrics counts them: four pre hooks, three failed (the change
    // stream feeds the counters, a moment after the run ends).
    let started = std::time::Instant::now();
    loop {
        let metrics = reqwest::get(format!("{}/metrics", cluster.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("weft_hook_duration_seconds_count{phase=\"pre\"} 4")
            && metrics.contains("weft_hook_failures_total{phase=\"pre\"} 3")
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = cluster.client().logs(&id, "escapes", None).await.unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.contains("[escape@0.1.0] info: denied: environment is empty"),
        "{log}"
    );
    assert!(
        log.contains("denied: no directory to open /etc/passwd from"),
        "{log}"
    );
    assert!(log.contains("still here"), "{log}");
    // The one worker that ran all of them is alive and serves the next run.
    assert!(
        cluster.workers[0].try_wait().unwrap().is_none(),
        "the worker died"
    );
    let next = cluster.submit("workflows/hello.toml", &[]).await;
    assert_eq!(
        cluster
            .wait(&next, Duration::from_secs(60))
            .await
            .run
            .status,
        "succeeded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_upload_round_trip_and_bad_uploads_are_refused_with_the_reason() {
    let cluster = Cluster::start(0);
    let admin = cluster.client();
    let pushed = admin
        .push_plugin("metrics", "0.1.0", plugin_wasm("metrics-extract"))
        .await
        .unwrap();
    assert_eq!((pushed.world.as_str(), pushed.size > 1000), ("hook", true));
    assert!(pushed
        .exports
        .contains(&"weft:plugin/hook@0.1.1#post-process".to_string()));
    // The same bytes again: fine. Other bytes under the same version: refused.
    admin
        .push_plugin("metrics", "0.1.0", plugin_wasm("metrics-extract"))
        .await
        .unwrap();
    let conflict = admin
        .push_plugin("metrics", "0.1.0", plugin_wasm("redact-secrets"))
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, weft_api::Error::Api { status: 409, .. }),
        "{conflict}"
    );
    admin
        .push_plugin("metrics", "0.2.0", plugin_wasm("redact-secrets"))
        .await
        .unwrap();
    let listed = admin.plugin("metrics", None).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|p| p.version.as_str())
            .collect::<Vec<_>>(),
        ["0.1.0", "0.2.0"]
    );
    let picked = admin.plugin("metrics", Some("~0.1")).await.unwrap();
    assert_eq!(picked[0].sha256, pushed.sha256);

    let refused = |e: weft_api::Error| match e {
        weft_api::Error::Api {
            status, message, ..
        } => (status, message),
        other => panic!("{other}"),
    };
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let (status, message) = refused(
        admin
            .push_plugin("bad", "1.0.0", core_module)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 422);
    assert!(
        message.contains("core WebAssembly module, not a component"),
        "{message}"
    );
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    let (status, message) = refused(
        admin
            .push_plugin("bad", "1.0.0", empty_component)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 422);
    assert!(message.contains("implements no weft world"), "{message}");
    assert!(
        message.contains("pre-process, post-process, filter-log"),
        "{message}"
    );
    let (status, message) = refused(
        admin
            .push_plugin("bad", "one", plugin_wasm("trap"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 422);
    assert!(message.contains("not a version like 1.2.3"), "{message}");
    assert!(
        admin.plugin("bad", None).await.is_err(),
        "nothing half-stored"
    );

    // Viewers read; only admins push and remove.
    let (_, created) = cluster
        .call(
            Some(&cluster.admin_token),
            Method::POST,
            "/api/tokens",
            Some(json!({"name": "v", "role": "viewer"})),
        )
        .await;
    let viewer = weft_api::Client::new(&cluster.url)
        .with_token(created["token"].as_str().map(str::to_string));
    assert_eq!(viewer.plugins().await.unwrap().len(), 2);
    let (status, _) = refused(
        viewer
            .push_plugin("x", "1.0.0", plugin_wasm("trap"))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 403);
    assert!(viewer
        .remove_plugin("metrics", Some("0.2.0"))
        .await
        .is_err());
    admin.remove_plugin("metrics", Some("0.2.0")).await.unwrap();
    assert_eq!(admin.plugin("metrics", None).await.unwrap().len(), 1);
    let (status, body) = cluster
        .call(
            Some(&cluster.admin_token),
            Method::GET,
            "/api/plugins/metrics/9.9.9",
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("no version"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_and_its_retry_keep_the_plugin_versions_they_resolved() {
    let cluster = Cluster::start(1);
    let admin = cluster.client();
    let first = admin
        .push_plugin("metrics", "0.1.0", plugin_wasm("metrics-extract"))
        .await
        .unwrap();
    let file = cluster.dir.path().join("metrics.toml");
    std::fs::write(
        &file,
        "[workflow]\nname = \"m\"\n[steps.a]\nrun = \"echo loss=0.5\"\nhooks = { post = [\"metrics@^0.1\"] }\n",
    )
    .unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    let run = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(run.run.status, "succeeded");
    assert_eq!(
        run.steps[0].outputs.as_ref().unwrap()["metrics"]["loss"],
        0.5
    );
    assert_eq!(run.plugins[0].reference, "metrics@^0.1");
    assert_eq!(
        (run.plugins[0].version.as_str(), &run.plugins[0].sha256),
        ("0.1.0", &first.sha256)
    );

    // A newer matching version does not change the run, nor its retry.
    admin
        .push_plugin("metrics", "0.1.1", plugin_wasm("redact-secrets"))
        .await
        .unwrap();
    let retried = admin.retry(&id, Some("a")).await.unwrap();
    let retried = cluster.wait(&retried.id, Duration::from_secs(60)).await;
    assert_eq!(retried.plugins, run.plugins);
    assert_eq!(retried.steps[0].outputs, run.steps[0].outputs);
    // A new run picks the newest match.
    let fresh = cluster.submit(file.to_str().unwrap(), &[]).await;
    let fresh = cluster.wait(&fresh, Duration::from_secs(60)).await;
    assert_eq!(fresh.plugins[0].version, "0.1.1");
    // A server refuses local plugin paths: it cannot read the client's files.
    std::fs::write(
        &file,
        "[workflow]\nname = \"m\"\n[steps.a]\nrun = \"true\"\nhooks = { pre = [\"./hook.wasm\"] }\n",
    )
    .unwrap();
    let (status, body) = cluster
        .call(
            Some(&cluster.admin_token),
            Method::POST,
            "/api/runs",
            Some(json!({"workflow": std::fs::read_to_string(&file).unwrap()})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("local plugin path"),
        "{body}"
    );
}

#[test]
fn weft_plugin_commands_and_check_work_on_the_embedded_store() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = weft(args, data.path());
        (out.status.success(), text(&out))
    };
    // Before any push, `check` names the plugins it cannot find, with line and column.
    run(&["runs"]);
    let (ok, out) = run(&["check", "workflows/plugins.toml"]);
    assert!(!ok, "{out}");
    assert!(out.contains("unknown plugin `text-stats`"), "{out}");
    assert!(out.contains("workflows/plugins.toml:"), "{out}");
    let (ok, out) = run(&[
        "plugin",
        "push",
        "plugins/dist/text-stats.wasm",
        "--name",
        "text-stats",
        "--version",
        "0.1.0",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("pushed text-stats@0.1.0: a step plugin"),
        "{out}"
    );
    let (ok, out) = run(&[
        "plugin",
        "push",
        "plugins/dist/trap.wasm",
        "--name",
        "metrics-extract",
        "--version",
        "0.1.0",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["plugin", "list"]);
    assert!(
        ok && out.contains("text-stats") && out.contains("step"),
        "{out}"
    );
    let (ok, out) = run(&["plugin", "show", "text-stats@^0.1"]);
    assert!(ok && out.contains("weft:plugin/step@0.1.1#run"), "{out}");
    let (ok, out) = run(&[
        "plugin",
        "push",
        "Cargo.toml",
        "--name",
        "x",
        "--version",
        "1.0.0",
    ]);
    assert!(!ok && out.contains("not a WebAssembly file"), "{out}");
    // Now `check` knows text-stats, and still misses the others.
    let (ok, out) = run(&["check", "workflows/plugins.toml"]);
    assert!(!ok, "{out}");
    assert!(!out.contains("unknown plugin `text-stats`"), "{out}");
    assert!(out.contains("unknown plugin `validate-inputs`"), "{out}");
    let (ok, out) = run(&["plugin", "rm", "text-stats"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["plugin", "show", "text-stats"]);
    assert!(!ok && out.contains("no plugin"), "{out}");
    // A local path in embedded mode is read, and its world checked.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("plugins/dist/text-stats.wasm"),
        dir.path().join("stats.wasm"),
    )
    .unwrap();
    let wf = dir.path().join("local.toml");
    std::fs::write(
        &wf,
        "[workflow]\nname = \"l\"\n[steps.a]\nrun = \"true\"\nhooks = { pre = [\"stats.wasm\"] }\n[steps.b]\nwasm = { plugin = \"stats.wasm\", input = { text = \"a b\" } }\n",
    )
    .unwrap();
    let (ok, out) = run(&["check", wf.to_str().unwrap()]);
    assert!(
        !ok && out.contains("stats.wasm is a step plugin; this needs a hook plugin"),
        "{out}"
    );
    // With a data directory of its own: both references were checked from
    // one compile, left in the plugin cache `weft run` reads there.
    let fresh = tempfile::tempdir().unwrap();
    let out = weft(&["check", wf.to_str().unwrap()], fresh.path());
    assert!(
        text(&out).contains("stats.wasm is a step plugin"),
        "{}",
        text(&out)
    );
    let cached: Vec<_> = std::fs::read_dir(fresh.path().join("work/plugin-cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].ends_with(".cwasm"), "{cached:?}");
    std::fs::write(
        &wf,
        "[workflow]\nname = \"l\"\n[steps.b]\nwasm = { plugin = \"stats.wasm\", input = { text = \"a b a\" } }\n",
    )
    .unwrap();
    let (ok, out) = run(&["run", wf.to_str().unwrap(), "--plain"]);
    assert!(ok, "{out}");
    assert!(out.contains(r#"{"bytes":5,"lines":1"#), "{out}");
}
