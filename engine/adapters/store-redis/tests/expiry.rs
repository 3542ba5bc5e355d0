//! With `expire-after-secs`, every key a claim, a lease, an event append or
//! a log write touches gets that expiry in the same script as the write
//! (`scripts::expiring`); without it, they keep what the scripts give them.

use weft_core::ports::{AttemptClaims, AttemptId, Claim, EventLog, Leases, StepLogs};
use weft_core::run::{Event, TaskId};
use weft_store_redis::{Options, RedisRunStore};
use weft_testkit::run_store::finished;

/// The TTLs read, by what they are of.
struct Seen {
    claimed: i64,
    renewed: i64,
    finished: i64,
    lease: i64,
    events: i64,
    log: i64,
}

/// Seconds `key` has left (`TTL`: -1 for none, -2 for no key).
async fn ttl(options: &Options, key: &str) -> i64 {
    let client = redis::Client::open(options.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Claims, renews and finishes an attempt, takes a lease, appends an event
/// and writes a log, reading each key's TTL after its write; the keys
/// written are removed after (a store without expiry would leave them).
async fn write_everything(expire_after_secs: Option<u64>) -> Seen {
    let options = Options {
        url: std::env::var("WEFT_TEST_REDIS_URL").unwrap_or_else(|_| Options::default().url),
        prefix: weft_testkit::unique("weft-test"),
        expire_after_secs,
        ..Options::default()
    };
    let store = RedisRunStore::connect(options.clone()).await.unwrap();
    let key = AttemptId {
        run_id: "r".into(),
        task: TaskId::new("s", None),
        attempt: 1,
    };
    let prefix = &options.prefix;
    let [claim_key, lease_key, events_key, log_key] =
        ["claim:r:s:1", "lease:r", "events:r", "log:r:s:1"].map(|k| format!("{prefix}:{k}"));

    let Claim::Held { token, .. } = store.claim(&key, "w@1#1", 0, 30_000, None).await.unwrap()
    else {
        panic!("a fresh claim is held");
    };
    let claimed = ttl(&options, &claim_key).await;
    store
        .renew_claim(&key, "w@1#1", token, 0, 30_000)
        .await
        .unwrap();
    let renewed = ttl(&options, &claim_key).await;
    store
        .finish_claim(&key, "w@1#1", token, &finished(&key, token))
        .await
        .unwrap();
    let fence = store.lease("r", "o", 0, 30_000).await.unwrap().unwrap();
    store
        .append_events("r", &fence, 0, &[Event::Started { at: 1 }])
        .await
        .unwrap();
    assert_eq!(store.events("r").await.unwrap().len(), 1);
    store.append_log(&key, 0, b"hello\n").await.unwrap();
    assert_eq!(store.read_log(&key).await.unwrap(), b"hello\n");
    let seen = Seen {
        claimed,
        renewed,
        finished: ttl(&options, &claim_key).await,
        lease: ttl(&options, &lease_key).await,
        events: ttl(&options, &events_key).await,
        log: ttl(&options, &log_key).await,
    };

    let client = redis::Client::open(options.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&[claim_key, lease_key, events_key, log_key])
        .query_async(&mut conn)
        .await
        .unwrap();
    seen
}

#[tokio::test]
async fn with_expire_after_secs_every_key_a_claim_lease_append_or_log_writes_expires_then() {
    let seen = write_everything(Some(120)).await;
    for (what, ttl) in [
        ("claimed", seen.claimed),
        ("renewed", seen.renewed),
        ("finished claim", seen.finished),
        ("lease", seen.lease),
        ("events", seen.events),
        ("log", seen.log),
    ] {
        assert!(
            (1..=120).contains(&ttl),
            "{what}: expires within 120 s, TTL {ttl}"
        );
    }
}

#[tokio::test]
async fn without_expire_after_secs_keys_keep_the_expiry_their_scripts_give() {
    let seen = write_everything(None).await;
    // A claim lasts a day past its ttl, a finished one a day; a lease, the
    // events and a log do not expire.
    assert!(seen.claimed > 86_000, "claimed: TTL {}", seen.claimed);
    assert!(
        seen.finished > 86_000,
        "finished claim: TTL {}",
        seen.finished
    );
    assert_eq!(
        [seen.lease, seen.events, seen.log],
        [-1, -1, -1],
        "lease, events and log: no expiry"
    );
}
