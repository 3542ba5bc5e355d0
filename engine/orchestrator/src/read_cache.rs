//! What reading runs keeps between requests, so that the API's run page or
//! a log stream asking whether its attempt ended does not redo it each time:
//! parsed workflows by their text, and the state of unfinished runs with
//! how many of their events it has seen, so the next read replays only the
//! events that came since.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use weft_core::run::{Plan, RunState};

/// Bounded maps; when one is full it starts over: simple, and the working
/// set (runs people are looking at) is small.
#[derive(Default)]
pub struct ReadCache {
    plans: Mutex<Plans>,
    states: Mutex<HashMap<String, (u64, RunState)>>,
}

/// By hash of the text: the text itself (to rule out collisions) and its plan.
type Plans = HashMap<u64, (Arc<str>, Arc<Plan>)>;

/// Plans kept at most.
const CAPACITY: usize = 256;
/// Unfinished runs' states kept at most.
const STATES: usize = 64;

fn unpoisoned<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding it leaves a valid map.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ReadCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of run `id` as last read, and how many events it has seen.
    pub(crate) fn state(&self, id: &str) -> Option<(u64, RunState)> {
        unpoisoned(&self.states).get(id).cloned()
    }

    /// Keeps an unfinished run's state after `seen` events; forgets a finished one.
    pub(crate) fn keep(&self, id: &str, seen: u64, state: &RunState) {
        let mut states = unpoisoned(&self.states);
        if state.status.is_terminal() {
            states.remove(id);
            return;
        }
        if states.len() >= STATES && !states.contains_key(id) {
            states.clear();
        }
        states.insert(id.to_string(), (seen, state.clone()));
    }

    /// The plan of `source`, parsed once; `None` if it does not parse.
    pub fn plan(&self, source: &str) -> Option<Arc<Plan>> {
        let mut hasher = DefaultHasher::new();
        source.hash(&mut hasher);
        let key = hasher.finish();
        if let Some((text, plan)) = self.lock().get(&key) {
            if **text == *source {
                return Some(plan.clone());
            }
        }
        let plan = Plan::new(weft_core::spec::load(source).ok()?);
        let mut plans = self.lock();
        if plans.len() >= CAPACITY {
            plans.clear();
        }
        plans.insert(key, (Arc::from(source), plan.clone()));
        Some(plan)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Plans> {
        unpoisoned(&self.plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_gives_the_same_plan_and_bad_text_none() {
        let cache = ReadCache::new();
        let src = "[workflow]\nname = \"a\"\n[steps.s]\nrun = \"true\"\n";
        let a = cache.plan(src).unwrap();
        let b = cache.plan(src).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = cache.plan(&src.replace("true", "false")).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        assert!(cache.plan("not toml [").is_none());
    }
}
