//! What protects an install from one run: texts a run keeps are bounded,
//! whatever a step or plugin produces.

use weft_core::ports::{LogKey, RunStore};
use weft_core::run::MAX_TEXT_BYTES;

use crate::support::{newest_embedded_run, repo, text, weft};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_plugin_error_is_kept_short_in_the_run_and_whole_in_the_step_log() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(200_000);
    let plugin = repo().join("plugins/dist/validate-inputs.wasm");
    let file = dir.path().join("huge-reason.toml");
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"huge-reason\"\n[params]\nbig = \"{big}\"\n\
             [steps.checked]\nrun = \"echo never\"\n\
             hooks = {{ pre = [{{ plugin = \"{}\", config = {{ schema = {{ properties = {{ params = {{ properties = {{ big = {{ enum = [\"small\"] }} }} }} }} }} }} }}] }}\n",
            plugin.display()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = weft(&["run", file.to_str().unwrap(), "--plain"], &data);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.len() < 64 * 1024,
        "weft run printed {} bytes",
        printed.len()
    );

    let (store, record, state) = newest_embedded_run(&data).await;
    let attempt = &state.steps[0].tasks[0].attempts[0];
    let reason = attempt.error.as_deref().unwrap();
    assert!(
        reason.len() <= MAX_TEXT_BYTES,
        "{} bytes kept",
        reason.len()
    );
    assert!(
        reason.contains("inputs do not match the schema")
            && reason.ends_with("more bytes; the whole text is in the step log]"),
        "{}",
        &reason[reason.len() - 200..]
    );
    let hook = &attempt.hooks[0];
    assert!(hook.error.as_deref().unwrap().len() <= MAX_TEXT_BYTES);
    assert!(record.summary.unwrap().len() <= MAX_TEXT_BYTES);
    let events = serde_json::to_string(&store.events(&record.id).await.unwrap()).unwrap();
    assert!(
        events.len() < 32 * 1024,
        "the event log holds {} bytes",
        events.len()
    );

    let log = store
        .read_log(&LogKey {
            run_id: record.id.clone(),
            task: state.steps[0].tasks[0].id.clone(),
            attempt: 1,
        })
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.contains(&big) && log.contains("[weft] the attempt failed"),
        "the whole reason is in the step log ({} bytes)",
        log.len()
    );
}
