//! Parsed workflows by their text, so that reading a run (the API's run
//! page, a log stream polling whether its attempt ended) does not parse and
//! validate the same file again on every request.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use weft_core::run::Plan;

/// A bounded map from workflow text to its plan. When full it starts over:
/// simple, and the working set (runs people are looking at) is small.
#[derive(Default)]
pub struct PlanCache {
    plans: Mutex<Plans>,
}

/// By hash of the text: the text itself (to rule out collisions) and its plan.
type Plans = HashMap<u64, (Arc<str>, Arc<Plan>)>;

/// Plans kept at most.
const CAPACITY: usize = 256;

impl PlanCache {
    pub fn new() -> Self {
        Self::default()
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
        // A panic elsewhere while holding it leaves a valid map.
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_gives_the_same_plan_and_bad_text_none() {
        let cache = PlanCache::new();
        let src = "[workflow]\nname = \"a\"\n[steps.s]\nrun = \"true\"\n";
        let a = cache.plan(src).unwrap();
        let b = cache.plan(src).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = cache.plan(&src.replace("true", "false")).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        assert!(cache.plan("not toml [").is_none());
    }
}
