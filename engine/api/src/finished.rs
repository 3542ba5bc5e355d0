//! The JSON of finished runs' views, kept: a finished run never changes, so
//! its view is built (event log read, replayed, serialized) once, not on
//! every request of every dashboard watching it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;

/// Views kept at most; the oldest goes first.
const CAPACITY: usize = 256;
/// Bytes kept at most, all views together: the memory one huge run's view
/// can hold on to stays bounded.
const MAX_BYTES: usize = 64 << 20;
/// A view bigger than this is built each time, never kept.
const MAX_VIEW_BYTES: usize = 8 << 20;
/// How long a view is kept (the store may expire old runs).
const TTL: Duration = Duration::from_secs(600);

/// Which view of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ViewKind {
    Run,
    States,
}

/// Serialized views of finished runs.
#[derive(Default)]
pub struct FinishedViews {
    views: Mutex<HashMap<(ViewKind, String), (Bytes, Instant)>>,
}

impl FinishedViews {
    pub(crate) fn get(&self, kind: ViewKind, run: &str) -> Option<Bytes> {
        let views = self.views.lock().expect("views lock");
        views
            .get(&(kind, run.to_string()))
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(json, _)| json.clone())
    }

    pub(crate) fn put(&self, kind: ViewKind, run: &str, json: Bytes) {
        if json.len() > MAX_VIEW_BYTES {
            return;
        }
        let mut views = self.views.lock().expect("views lock");
        let bytes = |views: &HashMap<_, (Bytes, Instant)>| -> usize {
            views.values().map(|(j, _)| j.len()).sum()
        };
        if views.len() >= CAPACITY || bytes(&views) + json.len() > MAX_BYTES {
            views.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        while views.len() >= CAPACITY || bytes(&views) + json.len() > MAX_BYTES {
            let Some(oldest) = views
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            views.remove(&oldest);
        }
        views.insert((kind, run.to_string()), (json, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_kept_per_kind_and_run_up_to_the_capacity() {
        let cache = FinishedViews::default();
        assert!(cache.get(ViewKind::Run, "r0").is_none());
        for i in 0..CAPACITY + 10 {
            cache.put(ViewKind::Run, &format!("r{i}"), Bytes::from(format!("{i}")));
        }
        assert_eq!(cache.views.lock().unwrap().len(), CAPACITY);
        assert!(
            cache.get(ViewKind::Run, "r0").is_none(),
            "the oldest went first"
        );
        assert_eq!(
            cache
                .get(ViewKind::Run, &format!("r{}", CAPACITY + 9))
                .unwrap(),
            format!("{}", CAPACITY + 9)
        );
        assert!(cache
            .get(ViewKind::States, &format!("r{}", CAPACITY + 9))
            .is_none());
    }

    #[test]
    fn kept_views_stay_within_their_bytes_and_a_huge_one_is_not_kept() {
        let cache = FinishedViews::default();
        let big = Bytes::from(vec![b'x'; 6 << 20]);
        for i in 0..20 {
            cache.put(ViewKind::Run, &format!("r{i}"), big.clone());
        }
        let kept: usize = cache
            .views
            .lock()
            .unwrap()
            .values()
            .map(|(j, _)| j.len())
            .sum();
        assert!(kept <= MAX_BYTES, "{kept} bytes kept");
        assert!(
            cache.get(ViewKind::Run, "r19").is_some(),
            "the newest is kept"
        );
        cache.put(
            ViewKind::Run,
            "huge",
            Bytes::from(vec![b'x'; MAX_VIEW_BYTES + 1]),
        );
        assert!(cache.get(ViewKind::Run, "huge").is_none());
    }
}
