//! The `ArtifactStore` contract: objects by digest, streamed from and to
//! files, visible only whole, checked on the way in and on the way out.

use std::path::Path;

use sha2::{Digest as _, Sha256};
use weft_core::artifacts::{ArtifactRef, Digest, MAX_READ_BYTES};
use weft_core::ports::ArtifactStore;
use weft_core::Error;

/// Writes `bytes` to `dir/name` and returns its reference.
pub fn file(dir: &Path, name: &str, bytes: &[u8]) -> ArtifactRef {
    std::fs::write(dir.join(name), bytes).unwrap();
    ArtifactRef {
        digest: digest_of(bytes),
        size: bytes.len() as u64,
        dir: false,
    }
}

pub fn digest_of(bytes: &[u8]) -> Digest {
    Digest::from_bytes(&Sha256::digest(bytes).into())
}

/// Bytes that are not all alike, so a piece out of place shows.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
}

pub async fn a_file_goes_in_and_comes_out_whole(s: &dyn ArtifactStore) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = pattern(100_000);
    let artifact = file(dir.path(), "a", &bytes);
    assert_eq!(s.stat(&artifact.digest).await.unwrap(), None);
    s.put_file(&artifact, &dir.path().join("a")).await.unwrap();
    assert_eq!(s.stat(&artifact.digest).await.unwrap(), Some(100_000));
    // Again: a digest already stored is fine.
    s.put_file(&artifact, &dir.path().join("a")).await.unwrap();
    let dest = dir.path().join("out/b");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    s.get_file(&artifact, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    // Only the file: no partial file left beside it.
    let names: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["b"]);
    assert!(s.remove(&artifact.digest).await.unwrap());
    assert!(!s.remove(&artifact.digest).await.unwrap());
    assert_eq!(s.stat(&artifact.digest).await.unwrap(), None);
}

pub async fn a_large_file_is_streamed_in_parts(s: &dyn ArtifactStore) {
    let dir = tempfile::tempdir().unwrap();
    // Past any single-request threshold: several parts.
    let bytes = pattern(23 << 20);
    let artifact = file(dir.path(), "big", &bytes);
    s.put_file(&artifact, &dir.path().join("big"))
        .await
        .unwrap();
    let dest = dir.path().join("copy");
    s.get_file(&artifact, &dest).await.unwrap();
    assert!(std::fs::read(&dest).unwrap() == bytes, "the copy differs");
    s.remove(&artifact.digest).await.unwrap();
}

pub async fn a_file_that_is_not_what_it_claims_is_refused(s: &dyn ArtifactStore) {
    let dir = tempfile::tempdir().unwrap();
    let mut artifact = file(dir.path(), "a", b"the real bytes");
    artifact.digest = digest_of(b"other bytes");
    let err = s
        .put_file(&artifact, &dir.path().join("a"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert_eq!(
        s.stat(&artifact.digest).await.unwrap(),
        None,
        "nothing stored"
    );

    // A reference whose size is wrong is refused on the way out too.
    let artifact = file(dir.path(), "b", b"some bytes here");
    s.put_file(&artifact, &dir.path().join("b")).await.unwrap();
    let wrong = ArtifactRef {
        size: artifact.size + 1,
        ..artifact.clone()
    };
    let dest = dir.path().join("c");
    let err = s.get_file(&wrong, &dest).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert!(err.to_string().contains(artifact.digest.short()), "{err}");
    assert!(!dest.exists());
    s.remove(&artifact.digest).await.unwrap();

    // And a missing one is not found.
    let missing = ArtifactRef {
        digest: digest_of(b"never stored"),
        size: 12,
        dir: false,
    };
    let err = s.get_file(&missing, &dest).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
}

pub async fn ranges_are_read_in_bounded_pieces(s: &dyn ArtifactStore) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = pattern(10_000);
    let artifact = file(dir.path(), "a", &bytes);
    s.put_file(&artifact, &dir.path().join("a")).await.unwrap();
    let d = &artifact.digest;
    assert_eq!(s.read_range(d, 0, 10).await.unwrap(), bytes[..10]);
    assert_eq!(s.read_range(d, 9_990, 100).await.unwrap(), bytes[9_990..]);
    assert!(s.read_range(d, 10_000, 10).await.unwrap().is_empty());
    assert!(s.read_range(d, 50_000, 10).await.unwrap().is_empty());
    // A piece is at most MAX_READ_BYTES, here more than the whole.
    let all = s.read_range(d, 0, u64::MAX).await.unwrap();
    assert_eq!(all.len() as u64, 10_000.min(MAX_READ_BYTES));
    assert_eq!(all, bytes);
    s.remove(d).await.unwrap();
}

pub async fn stored_objects_are_listed(s: &dyn ArtifactStore) {
    let dir = tempfile::tempdir().unwrap();
    let before = s.list().await.unwrap().len();
    let a = file(dir.path(), "a", b"listed one");
    let b = file(dir.path(), "b", &pattern(5000));
    s.put_file(&a, &dir.path().join("a")).await.unwrap();
    s.put_file(&b, &dir.path().join("b")).await.unwrap();
    let listed = s.list().await.unwrap();
    assert_eq!(listed.len(), before + 2);
    let found = |d: &Digest| listed.iter().find(|x| &x.digest == d).map(|x| x.size);
    assert_eq!(found(&a.digest), Some(10));
    assert_eq!(found(&b.digest), Some(5000));
    assert!(listed.iter().all(|x| x.stored_at > 1_600_000_000_000));
    s.remove(&a.digest).await.unwrap();
    s.remove(&b.digest).await.unwrap();
    assert_eq!(s.list().await.unwrap().len(), before);
}

#[macro_export]
macro_rules! artifact_store_contract {
    ($make:expr) => {
        mod artifact_store_contract {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_file_goes_in_and_comes_out_whole() {
                let store = $make.await;
                $crate::artifact_store::a_file_goes_in_and_comes_out_whole(&store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_large_file_is_streamed_in_parts() {
                let store = $make.await;
                $crate::artifact_store::a_large_file_is_streamed_in_parts(&store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_file_that_is_not_what_it_claims_is_refused() {
                let store = $make.await;
                $crate::artifact_store::a_file_that_is_not_what_it_claims_is_refused(&store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stored_objects_are_listed() {
                let store = $make.await;
                $crate::artifact_store::stored_objects_are_listed(&store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ranges_are_read_in_bounded_pieces() {
                let store = $make.await;
                $crate::artifact_store::ranges_are_read_in_bounded_pieces(&store).await;
            }
        }
    };
}
