//! A step log in Redis is a capped stream: once its oldest chunks are
//! trimmed, a follower still reads by byte offset, from the oldest byte kept.

use weft_core::ports::{AttemptId, StepLogs};
use weft_core::run::TaskId;
use weft_store_redis::{Options, RedisRunStore};

#[tokio::test]
async fn a_trimmed_log_is_read_by_byte_offset_from_its_oldest_kept_byte() {
    let store = RedisRunStore::connect(Options {
        url: std::env::var("WEFT_TEST_REDIS_URL").unwrap_or_else(|_| Options::default().url),
        prefix: weft_testkit::unique("weft-test"),
        expire_after_secs: Some(120),
        log_max_chunks: 10,
        ..Options::default()
    })
    .await
    .unwrap();
    let key = AttemptId {
        run_id: "r".into(),
        task: TaskId::new("s", None),
        attempt: 1,
    };
    let mut written = Vec::new();
    for i in 0..500 {
        let line = format!("line {i} é\n"); // a two-byte character: offsets are bytes
        store
            .append_log(&key, written.len() as u64, line.as_bytes())
            .await
            .unwrap();
        written.extend_from_slice(line.as_bytes());
    }
    let kept = store.read_log(&key).await.unwrap();
    assert!(kept.len() < written.len(), "the stream was trimmed");
    assert!(written.ends_with(&kept));
    let oldest = (written.len() - kept.len()) as u64;
    // From the start: what is kept, and where it begins.
    let slice = store.read_log_from(&key, 0, 1 << 20).await.unwrap();
    assert_eq!(
        (slice.start, slice.bytes.as_slice()),
        (oldest, kept.as_slice())
    );
    // From inside a chunk that is kept.
    let inside = oldest + 7;
    let slice = store.read_log_from(&key, inside, 1 << 20).await.unwrap();
    assert_eq!(slice.start, inside);
    assert_eq!(slice.bytes, &written[inside as usize..]);
    // At and past the end.
    let end = written.len() as u64;
    for offset in [end, end + 10] {
        let slice = store.read_log_from(&key, offset, 1 << 20).await.unwrap();
        assert_eq!((slice.start, slice.bytes.len()), (end, 0), "from {offset}");
    }
}
