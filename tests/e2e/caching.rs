//! Caching across runs, proven by side effects: a cacheable step appends a
//! line to a file each time it really runs. Same inputs: once across two
//! runs; a changed input, `--no-cache` or `--refresh`: it runs again. Its
//! outputs and artifacts reach the steps after it on a hit as on a run.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::cluster::{Cluster, Setup};
use crate::support::{shared_dir, shared_file, text, weft};

/// `make` leaves an output and an artifact, and marks each real run.
fn workflow(marks: &Path) -> String {
    format!(
        r#"
[workflow]
name = "cache-side-effects"
[params]
input = "one"
[steps.make]
cache = true
run = '''
echo "{{{{ params.input }}}}" >> {marks}
echo "made from {{{{ params.input }}}}" > made.txt
printf '{{"made": "%s"}}' "{{{{ params.input }}}}" > "$WEFT_OUTPUTS"
'''
artifacts = {{ made = "made.txt" }}
[steps.use]
needs = ["make"]
run = '''
test "{{{{ steps.make.outputs.made }}}}" = "{{{{ params.input }}}}"
grep -qx "made from {{{{ params.input }}}}" {{{{ steps.make.artifacts.made }}}}
'''
"#,
        marks = marks.display()
    )
}

fn lines(marks: &Path) -> usize {
    std::fs::read_to_string(marks).unwrap().lines().count()
}

/// The id `weft run` printed for its run.
fn run_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("run ")?.split_whitespace().next())
        .expect("weft run names its run")
        .to_string()
}

#[test]
fn embedded_runs_reuse_a_cached_step_once_per_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let marks = dir.path().join("marks");
    std::fs::write(&marks, "").unwrap();
    let file = dir.path().join("cached.toml");
    std::fs::write(&file, workflow(&marks)).unwrap();
    let file = file.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--plain", file];
        args.extend_from_slice(extra);
        let out = weft(&args, &data);
        let t = text(&out);
        assert!(out.status.success(), "{args:?}:\n{t}");
        t
    };

    let first = run(&[]);
    assert_eq!(lines(&marks), 1, "{first}");
    let second = run(&[]);
    assert_eq!(lines(&marks), 1, "same inputs: not run again\n{second}");
    assert!(
        second.contains(&format!(
            "make cached from run {}, step make",
            run_id(&first)
        )),
        "{second}"
    );
    // `weft show` says so too.
    let shown = text(&weft(&["show", &run_id(&second)], &data));
    assert!(shown.contains("cached from run"), "{shown}");

    run(&["-p", "input=two"]);
    assert_eq!(lines(&marks), 2, "a changed input runs it");
    run(&["--no-cache"]);
    assert_eq!(lines(&marks), 3, "--no-cache runs it");
    let refreshed = run(&["--refresh", "make"]);
    assert_eq!(lines(&marks), 4, "--refresh make runs it");
    // The refreshed result is the one kept now.
    let after = run(&[]);
    assert_eq!(lines(&marks), 4);
    assert!(
        after.contains(&format!("cached from run {}", run_id(&refreshed))),
        "{after}"
    );

    let unknown = weft(&["run", file, "--refresh", "nope"], &data);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("has no step `nope`"),
        "{}",
        text(&unknown)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_runs_reuse_a_cached_step_and_its_artifact_on_another_worker() {
    let store = tempfile::tempdir().unwrap();
    let tables = crate::artifacts::local_store_tables(store.path());
    let mut cluster = Cluster::set_up(Setup {
        workers: 0,
        tables: &tables,
        ..Setup::default()
    });
    let marks = shared_file(&shared_dir(cluster.dir.path()), "marks");
    let source = workflow(&marks);
    let (w1, w2) = (cluster.dir.path().join("w1"), cluster.dir.path().join("w2"));
    cluster.start_worker_with(&["--work-dir", w1.to_str().unwrap()]);

    let first = cluster
        .run_as(&cluster.admin_token, &source, json!({}))
        .await;
    assert_eq!(first.run.status, "succeeded", "{first:?}");
    assert_eq!(lines(&marks), 1);

    // A second worker joins; whichever takes `use` fetches the artifact
    // the first run left.
    cluster.start_worker_with(&["--work-dir", w2.to_str().unwrap()]);
    let second = cluster
        .run_as(&cluster.admin_token, &source, json!({}))
        .await;
    assert_eq!(second.run.status, "succeeded", "{second:?}");
    assert_eq!(lines(&marks), 1, "same inputs: not run again");
    let make = second.steps.iter().find(|s| s.id == "make").unwrap();
    let cached = make.cached_from.as_ref().expect("make was cached");
    assert_eq!(
        (cached.run.as_str(), cached.step.as_str()),
        (first.run.id.as_str(), "make")
    );
    assert_eq!(make.tasks[0].attempts[0].worker, None, "no worker ran it");
    assert_eq!(make.artifacts.len(), 1, "its artifact is listed: {make:?}");

    let changed = cluster
        .run_as(&cluster.admin_token, &source, json!({"input": "two"}))
        .await;
    assert_eq!(changed.run.status, "succeeded", "{changed:?}");
    assert_eq!(lines(&marks), 2, "a changed input runs it");

    let (status, body) = cluster
        .call(
            Some(&cluster.admin_token),
            reqwest::Method::POST,
            "/api/runs",
            Some(json!({"workflow": source, "no_cache": true})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let no_cache = cluster
        .wait(body["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(no_cache.run.status, "succeeded", "{no_cache:?}");
    assert_eq!(lines(&marks), 3, "no_cache runs it");

    let (status, body) = cluster
        .call(
            Some(&cluster.admin_token),
            reqwest::Method::POST,
            "/api/runs",
            Some(json!({"workflow": source, "refresh": ["nope"]})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// The dashboard's step panel says where a cached result came from, with a
/// link to that run, in Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_where_a_cached_result_came_from() {
    let store = tempfile::tempdir().unwrap();
    let tables = crate::artifacts::local_store_tables(store.path());
    let cluster = Cluster::set_up(Setup {
        tables: &tables,
        ..Setup::default()
    });
    let marks = shared_file(&shared_dir(cluster.dir.path()), "marks");
    let source = workflow(&marks);
    let first = cluster
        .run_as(&cluster.admin_token, &source, json!({}))
        .await;
    let second = cluster
        .run_as(&cluster.admin_token, &source, json!({}))
        .await;
    assert_eq!(second.run.status, "succeeded", "{second:?}");
    let b = crate::dashboard::open_step(&cluster, &second.run.id, "make").await;
    let long = Duration::from_secs(60);
    let said = b
        .wait_for(
            "where it came from",
            "const c = document.querySelector('.panel p .cached'); return c && c.textContent",
            long,
        )
        .await;
    assert_eq!(
        said.as_str().unwrap(),
        format!("cached from run {}, step make", first.run.id)
    );
    let link = b
        .eval(
            "return document.querySelector('.panel p .cached a').getAttribute('href')",
            json!([]),
        )
        .await;
    assert_eq!(link, json!(format!("#/runs/{}", first.run.id)));
}
