//! What reading runs keeps between requests, so that the API's run page or
//! a log stream asking whether its attempt ended does not redo it each time:
//! parsed workflows by their text, and the state of unfinished runs with
//! how many of their events it has seen, so the next read replays only the
//! events that came since. The state is shared, not copied: a reader gets
//! it behind an `Arc`, and new events are applied in place when no earlier
//! reader still holds it.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use weft_core::run::{Event, Plan, RunState};

/// Bounded maps; when one is full it starts over: simple, and the working
/// set (runs people are looking at) is small.
#[derive(Default)]
pub struct ReadCache {
    plans: Mutex<Plans>,
    states: Mutex<HashMap<String, (u64, Arc<RunState>)>>,
}

/// A run's plugins as resolved when it started, by reference.
type Plugins = BTreeMap<String, weft_core::plugins::ResolvedPlugin>;

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

    /// How many events the kept state of run `id` has seen, if one is kept.
    pub(crate) fn seen(&self, id: &str) -> Option<u64> {
        unpoisoned(&self.states).get(id).map(|(seen, _)| *seen)
    }

    /// Brings the kept state of run `id` from `from` events to `from +
    /// events.len()` and returns it; `None` if what is kept does not reach
    /// `from` (forgotten, or rebuilt meanwhile from fewer events). Another
    /// reader may have applied some or all of these events already: those
    /// are skipped, and a state that has seen more is returned as it is.
    pub(crate) fn advance(
        &self,
        id: &str,
        from: u64,
        events: Vec<Event>,
        plugins: &Plugins,
    ) -> Option<Arc<RunState>> {
        let mut states = unpoisoned(&self.states);
        let (seen, state) = states.get_mut(id)?;
        let upto = from + events.len() as u64;
        if *seen < from {
            return None;
        }
        let skip = (*seen - from) as usize;
        if skip < events.len() || state.plugins != *plugins {
            // In place, unless a reader still holds this state.
            let state = Arc::make_mut(state);
            for event in events.into_iter().skip(skip) {
                weft_core::run::apply(state, event);
            }
            state.plugins = plugins.clone();
            *seen = (*seen).max(upto);
        }
        let state = state.clone();
        if state.status.is_terminal() {
            states.remove(id);
        }
        Some(state)
    }

    /// Keeps an unfinished run's state after `seen` events; forgets a finished one.
    pub(crate) fn keep(&self, id: &str, seen: u64, state: Arc<RunState>) {
        let mut states = unpoisoned(&self.states);
        if state.status.is_terminal() {
            states.remove(id);
            return;
        }
        if states.len() >= STATES && !states.contains_key(id) {
            states.clear();
        }
        states.insert(id.to_string(), (seen, state));
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

    #[test]
    fn new_events_are_applied_in_place_unless_a_reader_holds_the_state() {
        let cache = ReadCache::new();
        let src = "[workflow]\nname = \"a\"\n[steps.s]\nrun = \"true\"\n";
        let state = RunState::new("r", cache.plan(src).unwrap(), Default::default());
        cache.keep("r", 0, Arc::new(state));
        let plugins = Plugins::new();
        let first = Arc::as_ptr(&cache.advance("r", 0, vec![], &plugins).unwrap());
        // No new event, nobody holding it: the same state, untouched.
        let held = cache
            .advance("r", 0, vec![Event::Started { at: 5 }], &plugins)
            .unwrap();
        assert_eq!(Arc::as_ptr(&held), first, "applied in place");
        assert_eq!(held.started_at, Some(5));
        // A reader holds it: the next event goes to a copy.
        let before = format!("{:?}", (&held.status, &held.steps, &held.finished_at));
        let start = Event::TaskStarted {
            task: weft_core::run::TaskId::new("s", None),
            attempt: 1,
            worker: "w".into(),
            at: 6,
            execution: 1,
        };
        let next = cache.advance("r", 1, vec![start], &plugins).unwrap();
        assert_ne!(Arc::as_ptr(&next), Arc::as_ptr(&held));
        let after = format!("{:?}", (&held.status, &held.steps, &held.finished_at));
        assert_eq!(before, after, "the holder's read did not change");
        assert_ne!(
            format!("{:?}", (&next.status, &next.steps)),
            format!("{:?}", (&held.status, &held.steps)),
            "the event was applied to the copy"
        );
        // Events another reader applied already are skipped; a gap is refused.
        let newer = cache.advance("r", 0, vec![], &plugins).unwrap();
        assert!(
            Arc::ptr_eq(&newer, &next),
            "a reader behind gets the newer state"
        );
        assert!(cache.advance("r", 5, vec![], &plugins).is_none());
    }
}
