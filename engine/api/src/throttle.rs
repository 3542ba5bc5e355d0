//! Failed token checks, counted per client address: after a burst of
//! wrong tokens a client is answered 429 with `Retry-After` until its
//! budget refills, so guessing tokens is slow; other clients never wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong tokens one address may send at once, by default.
pub const BURST: u32 = 20;
/// Wrong tokens one address may send per second once its burst is spent,
/// by default.
pub const PER_SECOND: f64 = 1.0;
/// Addresses remembered at most; past it, those with a full budget go.
const MAX_ADDRESSES: usize = 10_000;

/// The address a request came from, put on each request by [`crate::serve`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

pub struct AuthThrottle {
    burst: f64,
    per_second: f64,
    budgets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        Self::new(BURST, PER_SECOND)
    }
}

impl AuthThrottle {
    /// `burst` wrong tokens per address at once, then `per_second`.
    pub fn new(burst: u32, per_second: f64) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: per_second.max(0.001),
            budgets: Mutex::default(),
        }
    }

    /// How long `ip` must wait before it may try a token again, if at all.
    pub fn wait(&self, ip: IpAddr) -> Option<Duration> {
        let mut budgets = self.budgets.lock().expect("throttle lock");
        let (left, _) = self.refill(budgets.get_mut(&ip)?, Instant::now());
        (left < 1.0).then(|| Duration::from_secs_f64((1.0 - left) / self.per_second))
    }

    /// Counts a wrong token from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut budgets = self.budgets.lock().expect("throttle lock");
        if budgets.len() >= MAX_ADDRESSES && !budgets.contains_key(&ip) {
            budgets.retain(|_, b| self.refill(b, now).0 < self.burst);
            if budgets.len() >= MAX_ADDRESSES {
                // Under a flood from many addresses: forget the fullest.
                return;
            }
        }
        let budget = budgets.entry(ip).or_insert((self.burst, now));
        let (left, at) = self.refill(budget, now);
        *budget = ((left - 1.0).max(0.0), at);
    }

    /// The budget brought up to `now`.
    fn refill(&self, budget: &mut (f64, Instant), now: Instant) -> (f64, Instant) {
        let (left, at) = *budget;
        let left = (left + now.duration_since(at).as_secs_f64() * self.per_second).min(self.burst);
        *budget = (left, now);
        *budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_wrong_tokens_then_waits_and_other_addresses_do_not() {
        let t = AuthThrottle::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..BURST as usize {
            assert!(t.wait(a).is_none());
            t.failed(a);
        }
        let wait = t.wait(a).expect("spent");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(t.wait(b).is_none());
        // Configured: a burst of 3, then one every 4 s.
        let t = AuthThrottle::new(3, 0.25);
        for _ in 0..3 {
            assert!(t.wait(a).is_none());
            t.failed(a);
        }
        let wait = t.wait(a).expect("spent");
        assert!(
            wait > Duration::from_secs(3) && wait <= Duration::from_secs(4),
            "{wait:?}"
        );
    }
}
