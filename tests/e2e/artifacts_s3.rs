//! Artifacts in S3 (a private Garage): the store's contract, and a run
//! whose object store goes away while a step uploads its artifact.

use std::time::Duration;

use weft_artifacts_object::ObjectArtifactStore;

use crate::cluster::{step, Cluster, Setup};
use crate::garage::PrivateGarage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_keeps_the_artifact_store_contract() {
    use weft_testkit::artifact_store as contract;
    let garage = PrivateGarage::start();
    let store = ObjectArtifactStore::s3(&garage.options("contract")).unwrap();
    contract::a_file_goes_in_and_comes_out_whole(&store).await;
    contract::a_large_file_is_streamed_in_parts(&store).await;
    contract::a_file_that_is_not_what_it_claims_is_refused(&store).await;
    contract::ranges_are_read_in_bounded_pieces(&store).await;
}

/// Garage is killed while `a` uploads 64 MiB and started again 8 s later:
/// the attempt either waits the outage out (the client retries) or fails
/// as an infrastructure failure and is tried again; the run succeeds, `b`
/// gets the whole file, and the artifact is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_store_restarting_mid_upload_loses_nothing() {
    let mut garage = PrivateGarage::start();
    let cluster = Cluster::set_up(Setup {
        tables: &garage.artifacts_table(),
        ..Setup::default()
    });
    let workflow = r#"
[workflow]
name = "outage"
[steps.a]
retries = 3
run = '''
head -c 67108864 /dev/urandom > data
printf '{"sum": "%s"}' "$(sha256sum data | cut -c1-64)" > "$WEFT_OUTPUTS"
'''
artifacts = { data = "data" }
[steps.b]
needs = ["a"]
run = 'test "$(sha256sum {{ steps.a.artifacts.data }} | cut -c1-64)" = "{{ steps.a.outputs.sum }}"'
"#;
    let client = cluster.client();
    let submitted_id = cluster.submit_text(workflow).await;
    // As soon as `a` runs, the store goes away for 8 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let view = client.run(&submitted_id).await.unwrap();
        if step(&view, "a").status != "queued" && step(&view, "a").status != "waiting" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a never started: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    garage.stop();
    tokio::time::sleep(Duration::from_secs(8)).await;
    garage.start_again();
    let view = cluster.wait(&submitted_id, Duration::from_secs(240)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let a = step(&view, "a");
    // The outage was met: `a` waited it out, or an attempt failed on it.
    let took = a.finished_at.unwrap() - a.started_at.unwrap();
    let attempts = a.tasks[0].attempts.len();
    assert!(
        took >= 7_000 || attempts > 1,
        "took {took} ms in {attempts} attempt(s)"
    );
    assert_eq!(a.artifacts[0].size, 64 << 20);
    assert_eq!(
        a.artifacts[0].digest,
        a.outputs.as_ref().unwrap()["sum"].as_str().unwrap()
    );
    // Whatever the attempts, what b read was whole (its check passed), and
    // the store serves the same bytes.
    let store = ObjectArtifactStore::s3(&garage.options("")).unwrap();
    let copy = tempfile::NamedTempFile::new().unwrap();
    let reference = weft_core::artifacts::ArtifactRef {
        digest: weft_core::artifacts::Digest::parse(&a.artifacts[0].digest).unwrap(),
        size: a.artifacts[0].size,
        dir: false,
    };
    weft_core::ports::ArtifactStore::get_file(&store, &reference, copy.path())
        .await
        .unwrap();
}
