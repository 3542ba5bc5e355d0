//! Retry delays: fixed or exponential, capped, with deterministic jitter.

use std::time::Duration;

use crate::spec::{Backoff, RetryPolicy};

/// The wait before attempt `next_attempt` (2 for the first retry).
///
/// Jitter scales the delay into [50%, 100%] by a hash of `seed` and the
/// attempt, so a replayed run computes the same delays.
pub fn retry_delay(policy: &RetryPolicy, next_attempt: u32, seed: &str) -> Duration {
    let retry = next_attempt.saturating_sub(1).max(1);
    let base = match policy.backoff {
        Backoff::Fixed => policy.delay,
        Backoff::Exponential => policy.delay.saturating_mul(1u32 << (retry - 1).min(30)),
    };
    let capped = base.min(policy.max_delay.max(policy.delay));
    if !policy.jitter {
        return capped;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes().chain(next_attempt.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let fraction = 0.5 + (h % 1000) as f64 / 2000.0;
    capped.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            limit: 5,
            backoff,
            delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(10),
            jitter,
        }
    }

    #[test]
    fn exponential_doubles_and_caps() {
        let p = policy(Backoff::Exponential, false);
        let d: Vec<u64> = (2..=6).map(|a| retry_delay(&p, a, "x").as_secs()).collect();
        assert_eq!(d, vec![2, 4, 8, 10, 10]);
    }

    #[test]
    fn fixed_stays_put_and_jitter_is_deterministic_and_bounded() {
        assert_eq!(
            retry_delay(&policy(Backoff::Fixed, false), 4, "x"),
            Duration::from_secs(2)
        );
        let p = policy(Backoff::Fixed, true);
        let a = retry_delay(&p, 3, "run/step");
        assert_eq!(a, retry_delay(&p, 3, "run/step"));
        assert!(a >= Duration::from_secs(1) && a <= Duration::from_secs(2));
    }
}
