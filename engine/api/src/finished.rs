//! The JSON of finished runs' views, kept: a finished run never changes, so
//! its view is built (event log read, replayed, serialized) once, not on
//! every request of every dashboard watching it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;

/// Views kept at most; the oldest goes first.
const CAPACITY: usize = 256;
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
        let mut views = self.views.lock().expect("views lock");
        if views.len() >= CAPACITY {
            views.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        if views.len() >= CAPACITY {
            if let Some(oldest) = views
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                views.remove(&oldest);
            }
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
}
