//! The driver's side of the step cache: looking a cacheable attempt's key
//! up before it is dispatched, and saving a succeeded one's result. The
//! cache is an optimisation: when it cannot be read the step runs, and
//! when a result cannot be saved the run goes on.

use weft_core::artifacts::Digest;
use weft_core::cache::{cache_key, CacheEntry, CacheProbe, CacheSave, CachedFrom, SecretVersions};
use weft_core::run::{Event, Job};

use crate::driver::Driver;
use crate::service::StepCaching;

impl Driver {
    /// `TaskCached` when a live entry has `probe`'s key; `None`: dispatch it.
    pub(crate) async fn look_up(&self, probe: &CacheProbe) -> Option<Event> {
        let caching = self.shared.cache.as_ref()?;
        let key = key_of(caching, &probe.job, probe.extra.as_deref()).await?;
        let now = self.shared.clock.now();
        match caching.cache.cached(&key, now).await {
            Ok(Some(entry)) => Some(Event::TaskCached {
                task: probe.job.task.clone(),
                attempt: probe.job.attempt,
                from: entry.from,
                outputs: entry.outputs,
                artifacts: entry.artifacts,
                at: now,
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(task = %probe.job.task, "reading the step cache: {e}; the step runs");
                None
            }
        }
    }

    /// Keeps a succeeded attempt's result for later runs.
    pub(crate) async fn save(&self, save: CacheSave) {
        let Some(caching) = self.shared.cache.as_ref() else {
            return;
        };
        let Some(key) = key_of(caching, &save.job, save.extra.as_deref()).await else {
            return;
        };
        let now = self.shared.clock.now();
        let entry = CacheEntry {
            from: CachedFrom {
                run: self.record.id.clone(),
                task: save.job.task.clone(),
            },
            outputs: save.outputs,
            artifacts: save.artifacts,
            saved_at: now,
            expires_at: now.saturating_add(save.ttl.as_millis() as u64),
        };
        if let Err(e) = caching.cache.save_cached(&key, &entry).await {
            tracing::warn!(task = %save.job.task, "saving to the step cache: {e}; later runs will run it again");
        }
    }
}

/// The key of `job`, with the versions of the secrets it names; `None`
/// when they cannot be read (the step then runs, and is not saved).
async fn key_of(caching: &StepCaching, job: &Job, extra: Option<&str>) -> Option<Digest> {
    let mut versions = SecretVersions::new();
    if !job.secrets.is_empty() {
        let store = caching.secrets.as_ref()?;
        for name in &job.secrets {
            match store.secret(name).await {
                Ok(secret) => {
                    versions.insert(name.clone(), secret.map_or(0, |s| s.set_at));
                }
                Err(e) => {
                    tracing::warn!(task = %job.task, "reading secret `{name}` for the cache key: {e}");
                    return None;
                }
            }
        }
    }
    Some(cache_key(job, extra, &versions))
}
