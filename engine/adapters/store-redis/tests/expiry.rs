//! With `expire-after-secs`, every key a claim, a lease or a log write
//! touches gets that expiry in the same script as the write
//! (`scripts::expiring`); without it, they keep what the scripts give them.

use weft_core::ports::{AttemptClaims, AttemptId, Leases, StepLogs};
use weft_core::run::TaskId;
use weft_store_redis::{Options, RedisRunStore};
use weft_testkit::run_store::finished;

fn options(expire_after_secs: Option<u64>) -> Options {
    Options {
        url: std::env::var("WEFT_TEST_REDIS_URL").unwrap_or_else(|_| Options::default().url),
        prefix: weft_testkit::unique("weft-test"),
        expire_after_secs,
        ..Options::default()
    }
}

/// Seconds each key has left (`TTL`: -1 for none, -2 for no key).
async fn ttls(options: &Options, keys: &[String]) -> Vec<i64> {
    let client = redis::Client::open(options.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut out = Vec::new();
    for key in keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        out.push(ttl);
    }
    out
}

/// Claims, renews and finishes an attempt, takes a lease and writes a log:
/// the claim's, the lease's and the log's keys, and the TTL of each after
/// the claim, the renewal, and the rest.
async fn write_everything(options: &Options) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let store = RedisRunStore::connect(options.clone()).await.unwrap();
    let key = AttemptId {
        run_id: "r".into(),
        task: TaskId::new("s", None),
        attempt: 1,
    };
    let prefix = &options.prefix;
    let claim_key = format!("{prefix}:claim:r:s:1");
    let keys = [
        claim_key.clone(),
        format!("{prefix}:lease:r"),
        format!("{prefix}:log:r:s:1"),
    ];
    let token = match store.claim(&key, "w@1#1", 0, 30_000, None).await.unwrap() {
        weft_core::ports::Claim::Held { token, .. } => token,
        other => panic!("a fresh claim is held, not {other:?}"),
    };
    let claimed = ttls(options, std::slice::from_ref(&claim_key)).await;
    store
        .renew_claim(&key, "w@1#1", token, 0, 30_000)
        .await
        .unwrap();
    let renewed = ttls(options, std::slice::from_ref(&claim_key)).await;
    store
        .finish_claim(&key, "w@1#1", token, &finished(&key, token))
        .await
        .unwrap();
    assert!(store.lease("r", "o", 0, 30_000).await.unwrap().is_some());
    store.append_log(&key, 0, b"hello\n").await.unwrap();
    assert_eq!(store.read_log(&key).await.unwrap(), b"hello\n");
    (claimed, renewed, ttls(options, &keys).await)
}

#[tokio::test]
async fn with_expire_after_secs_every_key_a_claim_lease_or_log_writes_expires_then() {
    let options = options(Some(120));
    let (claimed, renewed, after) = write_everything(&options).await;
    for (what, ttl) in [("claimed", claimed[0]), ("renewed", renewed[0])]
        .into_iter()
        .chain(["finished claim", "lease", "log"].into_iter().zip(after))
    {
        assert!(
            (1..=120).contains(&ttl),
            "{what}: expires within 120 s, TTL {ttl}"
        );
    }
}

#[tokio::test]
async fn without_expire_after_secs_keys_keep_the_expiry_their_scripts_give() {
    let options = options(None);
    let (claimed, _, after) = write_everything(&options).await;
    // A claim lasts a day past its ttl, a finished one a day; a lease and
    // a log do not expire.
    assert!(claimed[0] > 86_000, "claimed: TTL {}", claimed[0]);
    assert!(after[0] > 86_000, "finished claim: TTL {}", after[0]);
    assert_eq!(&after[1..], &[-1, -1], "lease and log: no expiry");
    // Not left behind on the shared Redis.
    let client = redis::Client::open(options.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = &options.prefix;
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}:claim:r:s:1"))
        .arg(format!("{prefix}:lease:r"))
        .arg(format!("{prefix}:log:r:s:1"))
        .query_async(&mut conn)
        .await
        .unwrap();
}
