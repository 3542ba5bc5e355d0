//! The artifact store contract, on a directory and in memory; on S3 in
//! `tests/e2e/artifacts.rs`, against a real S3-compatible server.

use weft_artifacts_object::ObjectArtifactStore;

mod local {
    use super::*;

    async fn fresh() -> ObjectArtifactStore {
        // Leaked: each test's own directory, removed with the temp directory.
        let dir = tempfile::tempdir().unwrap().keep();
        ObjectArtifactStore::local(&dir).unwrap()
    }
    weft_testkit::artifact_store_contract!(fresh());
}

mod memory {
    use super::*;
    weft_testkit::artifact_store_contract!(async { ObjectArtifactStore::in_memory() });
}

/// Bytes changed on disk after they were stored are caught on the way out.
#[tokio::test]
async fn a_tampered_object_fails_its_download_naming_it() {
    use weft_core::ports::ArtifactStore;
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectArtifactStore::local(&dir.path().join("store")).unwrap();
    let artifact = weft_testkit::artifact_store::file(dir.path(), "a", b"the real bytes");
    store
        .put_file(&artifact, &dir.path().join("a"))
        .await
        .unwrap();
    let hex = artifact.digest.as_str();
    let object = dir.path().join(format!("store/sha256/{}/{hex}", &hex[..2]));
    std::fs::write(&object, b"the fake bytes").unwrap();
    let dest = dir.path().join("b");
    let err = store.get_file(&artifact, &dest).await.unwrap_err();
    assert!(
        err.to_string().contains(artifact.digest.short()) && err.to_string().contains("altered"),
        "{err}"
    );
    assert!(!dest.exists());
}

/// A local upload killed before it renamed its file into place leaves a
/// staging file; retention removes it once it is old, and never lists it.
#[tokio::test]
async fn stale_staging_files_of_killed_uploads_are_removed() {
    use weft_core::ports::ArtifactStore;
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectArtifactStore::local(dir.path()).unwrap();
    let shard = dir.path().join("sha256/ab");
    std::fs::create_dir_all(&shard).unwrap();
    let digest = "ab".repeat(32);
    let (old, fresh) = (
        shard.join(format!("{digest}#1")),
        shard.join(format!("{digest}#2")),
    );
    std::fs::write(&old, b"half").unwrap();
    std::fs::write(&fresh, b"half").unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    assert!(store.list().await.unwrap().is_empty());
    let half_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(1800);
    let before = half_hour_ago
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(store.remove_stale_uploads(before).await.unwrap(), 1);
    assert!(!old.exists() && fresh.exists());
    assert_eq!(
        ObjectArtifactStore::in_memory()
            .remove_stale_uploads(before)
            .await
            .unwrap(),
        0
    );
}
