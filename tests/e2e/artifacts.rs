//! Artifacts: a file made by a step on one worker is read by a step on
//! another (work directories apart, one store between them), checked by
//! its digest, listed and downloaded through the API and the CLI; the same
//! workflow on the embedded engine; and what is refused: a missing
//! artifact, a path that leaves the scratch directory.

use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::cluster::{step, Cluster, Setup};
use crate::support::{text, weft, weft_bin};

/// `a` (pool `a`) writes 200 MiB and records their digest; `b` (pool `b`)
/// finds the file where `{{ steps.a.artifacts.data }}` points and checks it.
const PASS_ALONG: &str = r#"
[workflow]
name = "pass-along"

[steps.a]
pool = "a"
run = '''
head -c 209715200 /dev/urandom > data
mkdir -p report && echo "rows: 3" > report/summary.txt
printf '{"sum": "%s"}' "$(sha256sum data | cut -c1-64)" > "$WEFT_OUTPUTS"
'''
artifacts = { data = "data", report = "report", notes = { path = "notes.txt", optional = true } }

[steps.b]
pool = "b"
needs = ["a"]
run = '''
test "$(sha256sum {{ steps.a.artifacts.data }} | cut -c1-64)" = "{{ steps.a.outputs.sum }}" || exit 3
grep -q "rows: 3" {{ steps.a.artifacts.report }}/summary.txt || exit 4
# Read-only for a step user (under `weft run` the step is its user, root here).
if [ "$(id -u)" != 0 ]; then touch {{ steps.a.artifacts.data }} 2>/dev/null && exit 5; fi
printf '{"dir": "%s"}' "$PWD" > "$WEFT_OUTPUTS"
'''
"#;

fn sha256_file(path: &std::path::Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).unwrap();
    format!("{:x}", hasher.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_file_goes_from_a_step_on_one_worker_to_a_step_on_another() {
    let store = tempfile::tempdir().unwrap();
    let tables = local_store_tables(store.path());
    pass_along_between_two_workers(&tables).await;
}

/// The same through a real S3-compatible server (Garage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_file_goes_between_workers_through_s3() {
    let garage = crate::garage::PrivateGarage::start();
    pass_along_between_two_workers(&garage.artifacts_table()).await;
}

/// `[artifacts]` naming a directory store in `dir`.
pub fn local_store_tables(dir: &std::path::Path) -> String {
    format!(
        "[artifacts]\nstore = \"local\"\ndir = \"{}\"\n",
        dir.display()
    )
}

/// Runs [`PASS_ALONG`] on two workers (pools `a` and `b`, work directories
/// apart) sharing the artifact store `tables` names, and checks it all.
pub async fn pass_along_between_two_workers(tables: &str) {
    let mut cluster = Cluster::set_up(Setup {
        workers: 0,
        tables,
        ..Setup::default()
    });
    let (w1, w2) = (cluster.dir.path().join("w1"), cluster.dir.path().join("w2"));
    cluster.start_worker_with(&["--pool", "a", "--work-dir", w1.to_str().unwrap()]);
    cluster.start_worker_with(&["--pool", "b", "--work-dir", w2.to_str().unwrap()]);
    let view = cluster
        .run_as(&cluster.admin_token, PASS_ALONG, json!({}))
        .await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let a = step(&view, "a");
    let b = step(&view, "b");
    // Two workers, two work directories.
    let worker = |s: &weft_api::views::StepView| s.tasks[0].attempts[0].worker.clone();
    assert_ne!(worker(a), worker(b));
    let b_dir = b.outputs.as_ref().unwrap()["dir"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(b_dir.starts_with(w2.to_str().unwrap()), "{b_dir}");

    // Listed with size and digest (the optional one was not made).
    let sum = a.outputs.as_ref().unwrap()["sum"]
        .as_str()
        .unwrap()
        .to_string();
    let names: Vec<_> = a.artifacts.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["data", "report"]);
    let data = &a.artifacts[0];
    assert_eq!(
        (data.size, data.digest.as_str(), data.dir),
        (200 << 20, sum.as_str(), false)
    );
    assert!(a.artifacts[1].dir);
    let client = reqwest::Client::new();
    let listed: Vec<weft_api::views::ArtifactView> = client
        .get(format!(
            "{}/api/runs/{}/artifacts",
            cluster.url, view.run.id
        ))
        .bearer_auth(&cluster.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);

    // A range of it, then all of it through the CLI, checked.
    let url = format!("{}/api/runs/{}/artifacts/a/data", cluster.url, view.run.id);
    let piece = client
        .get(&url)
        .bearer_auth(&cluster.admin_token)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(piece.status(), 206);
    assert_eq!(
        piece.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-199/{}", 200 << 20)
    );
    assert_eq!(piece.bytes().await.unwrap().len(), 100);
    let past = client
        .get(&url)
        .bearer_auth(&cluster.admin_token)
        .header("Range", format!("bytes={}-", 200 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), 416);
    let unauthenticated = client.get(&url).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let out_file = cluster.dir.path().join("downloaded");
    let out = std::process::Command::new(weft_bin())
        .args(["--server", &cluster.url, "--token", &cluster.admin_token])
        .args(["artifacts", "get", &view.run.id, "a/data", "-o"])
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sha256_file(&out_file), sum);
    let listed = std::process::Command::new(weft_bin())
        .args(["--server", &cluster.url, "--token", &cluster.admin_token])
        .args(["artifacts", "list", &view.run.id])
        .output()
        .unwrap();
    let listed = text(&listed);
    assert!(
        listed.contains("a/data") && listed.contains("209715200"),
        "{listed}"
    );
    assert!(
        listed.contains("a/report") && listed.contains("directory"),
        "{listed}"
    );
    // Both workers cleaned up after their steps.
    for dir in [&w1, &w2] {
        let left = crate::support::scratch_left(dir, &view.run.id).await;
        assert!(left.is_empty(), "{left:?}");
    }
}

#[tokio::test]
async fn the_same_workflow_passes_its_artifacts_on_the_embedded_engine() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("pass.toml");
    std::fs::write(&file, PASS_ALONG).unwrap();
    let out = weft(&["run", file.to_str().unwrap(), "--plain"], data.path());
    assert!(out.status.success(), "{}", text(&out));
    let (_, record, state) = crate::support::newest_embedded_run(data.path()).await;
    let view = weft_api::views::RunView::new(&record, &state);
    let a = step(&view, "a");
    assert_eq!(a.artifacts[0].size, 200 << 20);
    // And out of the embedded store, checked.
    let dest = data.path().join("report.tar");
    let got = weft(
        &[
            "artifacts",
            "get",
            &view.run.id,
            "a/report",
            "-o",
            dest.to_str().unwrap(),
        ],
        data.path(),
    );
    assert!(got.status.success(), "{}", text(&got));
    assert_eq!(sha256_file(&dest), a.artifacts[1].digest);
}

/// A declared artifact the step did not write fails it, naming it; a path
/// that leads out of the scratch directory through a link fails it too,
/// and nothing of the host is stored.
#[tokio::test]
async fn a_missing_artifact_or_one_that_leaves_the_scratch_directory_fails_its_step() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("bad.toml");
    std::fs::write(
        &file,
        "[workflow]\nname = \"bad\"\n\
         [steps.forgot]\nrun = \"true\"\nartifacts = { model = \"out/model.pt\" }\n\
         [steps.sneaky]\nrun = \"ln -s /etc/shadow shadow\"\nartifacts = { loot = \"shadow\" }\n",
    )
    .unwrap();
    let out = weft(&["run", file.to_str().unwrap(), "--plain"], data.path());
    assert!(!out.status.success(), "{}", text(&out));
    let (_, record, state) = crate::support::newest_embedded_run(data.path()).await;
    let view = weft_api::views::RunView::new(&record, &state);
    let reason = |s: &str| step(&view, s).reason.clone().unwrap_or_default();
    assert!(
        reason("forgot").contains("artifact `model` (`out/model.pt`) of step `forgot` is missing"),
        "{}",
        reason("forgot")
    );
    assert!(
        reason("sneaky").contains("artifact `loot` (`shadow`) of step `sneaky`: leads out of the step's scratch directory"),
        "{}",
        reason("sneaky")
    );
    let stored = walk(&data.path().join(".weft/artifacts"));
    assert!(stored.is_empty(), "{stored:?}");
}

/// The files under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    crate::support::walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .collect()
}

/// A container step finds its upstream artifact read-only at the path the
/// reference renders to, and leaves one of its own.
#[tokio::test]
async fn a_container_step_reads_an_artifact_read_only_and_leaves_one() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("boxed.toml");
    std::fs::write(
        &file,
        r#"[workflow]
name = "boxed"
[steps.make]
run = "echo 'hello from the host' > msg"
artifacts = { msg = "msg" }
[steps.boxed]
needs = ["make"]
container = { image = "weft-test/busybox:1", command = '''
cat {{ steps.make.artifacts.msg }} > /weft/copy
(echo overwritten > {{ steps.make.artifacts.msg }}) 2>/dev/null && exit 7
printf '{"path": "%s"}' {{ steps.make.artifacts.msg }} > /weft/outputs.json
''' }
artifacts = { copy = "copy" }
[steps.check]
needs = ["boxed"]
run = "grep -q 'hello from the host' {{ steps.boxed.artifacts.copy }}"
"#,
    )
    .unwrap();
    let out = weft(&["run", file.to_str().unwrap(), "--plain"], data.path());
    assert!(out.status.success(), "{}", text(&out));
    let (_, record, state) = crate::support::newest_embedded_run(data.path()).await;
    let view = weft_api::views::RunView::new(&record, &state);
    assert_eq!(
        step(&view, "boxed").outputs,
        Some(json!({"path": "/weft/artifacts/make/msg"}))
    );
}

/// The run page lists a step's artifacts with size and digest, previews a
/// CSV's first rows and an SVG, and downloads one, in Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_previews_and_downloads_artifacts() {
    use std::time::Duration;
    let store = tempfile::tempdir().unwrap();
    let tables = local_store_tables(store.path());
    let cluster = Cluster::set_up(Setup {
        tables: &tables,
        ..Setup::default()
    });
    let view = cluster
        .run_as(
            &cluster.admin_token,
            r#"[workflow]
name = "report"
[steps.report]
run = '''
printf 'city,rain\nOslo,12\nLima,0\n' > table.csv
printf '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>' > plot.svg
echo '{"rows": 2}' > stats.json
'''
artifacts = { table = "table.csv", plot = "plot.svg", stats = "stats.json" }
"#,
            json!({}),
        )
        .await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let b = crate::dashboard::open_step(&cluster, &view.run.id, "report").await;
    let long = Duration::from_secs(60);
    b.wait_for(
        "the artifacts",
        "return document.querySelectorAll('.panel table.artifacts tr[data-artifact]').length === 3",
        long,
    )
    .await;
    let row = b
        .eval(
            "return document.querySelector(\".panel tr[data-artifact='table']\").textContent",
            json!([]),
        )
        .await;
    let row = row.as_str().unwrap().to_string();
    let digest = &step(&view, "report")
        .artifacts
        .iter()
        .find(|a| a.name == "table")
        .unwrap()
        .digest;
    assert!(row.contains("25 B") && row.contains(&digest[..12]), "{row}");
    b.eval(
        "document.querySelector(\".panel tr[data-artifact='table'] button.show-preview\").click()",
        json!([]),
    )
    .await;
    let cells = b
        .wait_for(
            "the CSV preview",
            "const t = document.querySelector('.artifact-preview table.preview-csv'); return t && t.textContent",
            long,
        )
        .await;
    assert!(cells.as_str().unwrap().contains("Lima"), "{cells}");
    b.eval(
        "document.querySelector(\".panel tr[data-artifact='plot'] button.show-preview\").click()",
        json!([]),
    )
    .await;
    let src = b
        .wait_for(
            "the SVG preview",
            "const i = document.querySelector('.artifact-preview img.preview-image'); return i && i.complete && i.naturalWidth > 0 && i.src",
            long,
        )
        .await;
    assert!(
        src.as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,"),
        "{src}"
    );
    // A download is fetched with the token; no failure is shown.
    b.eval(
        "document.querySelector(\".panel tr[data-artifact='stats'] button\").click()",
        json!([]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let note = b
        .eval(
            "return document.querySelector(\".panel tr[data-artifact='stats'] span.muted\").textContent",
            json!([]),
        )
        .await;
    assert_eq!(note, json!(""), "{note}");
    b.screenshot("artifacts").await;
}

/// The worker running `a` is killed (SIGKILL) just as its step has written
/// 200 MiB, while the worker hashes and stores it: the job is redelivered,
/// the step runs again (at least once, and recorded as such), and the
/// artifact is one whole object under its digest; nothing partial is
/// visible under an artifact's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_upload_leaves_one_whole_artifact() {
    use std::time::{Duration, Instant};
    let store = tempfile::tempdir().unwrap();
    let tables = local_store_tables(store.path());
    let mut cluster = Cluster::set_up(Setup {
        workers: 2,
        tables: &tables,
        ..Setup::default()
    });
    // The same bytes each time it runs, so both runs of `a` mean one object.
    let workflow = r#"
[workflow]
name = "killed-upload"
[steps.a]
run = '''
yes 'the same line, over and over, to make two hundred mebibytes' | head -c 209715200 > data
printf '{"sum": "%s"}' "$(sha256sum data | cut -c1-64)" > "$WEFT_OUTPUTS"
echo written
'''
artifacts = { data = "data" }
[steps.b]
needs = ["a"]
run = 'test "$(sha256sum {{ steps.a.artifacts.data }} | cut -c1-64)" = "{{ steps.a.outputs.sum }}"'
"#;
    let client = cluster.client();
    let id = cluster.submit_text(workflow).await;
    // Kill whichever worker runs `a` once its step says it has written.
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed = loop {
        assert!(Instant::now() < deadline, "a never wrote its file");
        let log = client.logs(&id, "a", Some(1)).await.unwrap_or_default();
        if String::from_utf8_lossy(&log).contains("written") {
            let view = client.run(&id).await.unwrap();
            let worker = step(&view, "a").tasks[0].attempts[0]
                .worker
                .clone()
                .unwrap();
            let n: usize = worker.rsplit("-w").next().unwrap().parse().unwrap();
            cluster.kill_worker(n);
            break worker;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let view = cluster.wait(&id, Duration::from_secs(180)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let a = step(&view, "a");
    let attempt = &a.tasks[0].attempts[0];
    // Killed before it could report: the job ran again elsewhere, and both
    // executions are on the record.
    assert_ne!(
        attempt.worker.as_deref(),
        Some(killed.as_str()),
        "{attempt:?}"
    );
    assert!(attempt.executions.len() >= 2, "{attempt:?}");
    let digest = a.artifacts[0].digest.clone();
    assert_eq!(digest, a.outputs.as_ref().unwrap()["sum"].as_str().unwrap());
    // One object under its digest, whole; no other object is visible.
    let objects: Vec<_> = walk(store.path())
        .into_iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().contains('#'))
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(objects[0].ends_with(&digest), "{objects:?}");
    assert_eq!(std::fs::metadata(&objects[0]).unwrap().len(), 200 << 20);
}

/// An artifact altered in the store after it was made fails the step that
/// fetches it, naming the artifact, instead of handing it bad bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_altered_in_the_store_fails_the_step_that_fetches_it() {
    use std::time::{Duration, Instant};
    let store = tempfile::tempdir().unwrap();
    let tables = local_store_tables(store.path());
    let mut cluster = Cluster::set_up(Setup {
        workers: 0,
        tables: &tables,
        ..Setup::default()
    });
    // Two workers with work directories (and so artifact caches) apart,
    // so the reader's has no copy of it but the store's.
    let (w1, w2) = (cluster.dir.path().join("w1"), cluster.dir.path().join("w2"));
    cluster.start_worker_with(&["--pool", "a", "--work-dir", w1.to_str().unwrap()]);
    cluster.start_worker_with(&["--pool", "b", "--work-dir", w2.to_str().unwrap()]);
    let go = crate::support::shared_dir(cluster.dir.path()).join("go");
    let workflow = format!(
        r#"
[workflow]
name = "altered"
[steps.a]
pool = "a"
run = "echo 'the real bytes' > data"
artifacts = {{ data = "data" }}
[steps.wait]
pool = "a"
needs = ["a"]
run = "while [ ! -e {go} ]; do sleep 0.05; done"
[steps.b]
pool = "b"
needs = ["wait"]
run = "cat {{{{ steps.a.artifacts.data }}}}"
"#,
        go = go.display()
    );
    let client = cluster.client();
    let id = cluster.submit_text(&workflow).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let digest = loop {
        let view = client.run(&id).await.unwrap();
        if let Some(a) = step(&view, "a").artifacts.first() {
            break a.digest.clone();
        }
        assert!(Instant::now() < deadline, "a never finished: {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let object = store
        .path()
        .join(format!("sha256/{}/{digest}", &digest[..2]));
    std::fs::write(&object, "the fake bytes\n").unwrap();
    std::fs::write(&go, "").unwrap();
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "failed", "{view:?}");
    let reason = step(&view, "b").reason.clone().unwrap_or_default();
    assert!(
        reason.contains("fetching artifact `data` of step `a`")
            && reason.contains(&digest[..12])
            && reason.contains("corrupted or altered"),
        "{reason}"
    );
    // Never retried into success, and never run on the bad bytes.
    assert_eq!(step(&view, "b").tasks[0].attempts.len(), 1, "{view:?}");
}
