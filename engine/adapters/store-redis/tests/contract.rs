//! The Redis store passes the `RunStore` contract against the server on
//! 127.0.0.1:6379 (`WEFT_TEST_REDIS_URL` to point elsewhere). Each test has
//! its own key prefix, and its keys expire shortly after it ends.
use weft_store_redis::Options;

pub fn options() -> Options {
    Options {
        url: std::env::var("WEFT_TEST_REDIS_URL").unwrap_or_else(|_| Options::default().url),
        prefix: weft_testkit::unique("weft-test"),
        expire_after_secs: Some(120),
        ..Options::default()
    }
}

mod common;

redis_contracts!();
