//! The cache in the machine: which attempts are looked up, what a hit
//! does, which successes are saved; and what the key is made of.

use serde_json::json;

use super::{ok, state};
use crate::cache::{cache_key, CacheProbe, CacheSave, CachedFrom, RunCacheChoice, SecretVersions};
use crate::run::*;

const CACHED: &str = r#"
[workflow]
name = "c"
[params]
n = 1
[steps.a]
run = "make {{ params.n }}"
cache = true
[steps.b]
needs = ["a"]
run = "use {{ steps.a.outputs.x }}"
"#;

fn probes(actions: &[Action]) -> Vec<CacheProbe> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::TryCache(p) => Some((**p).clone()),
            _ => None,
        })
        .collect()
}

fn saves(actions: &[Action]) -> Vec<CacheSave> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SaveToCache(s) => Some((**s).clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_cacheable_step_is_looked_up_and_its_success_saved() {
    let mut s = state(CACHED);
    let actions = apply(&mut s, Event::Started { at: 0 });
    assert!(super::dispatched(&actions).is_empty());
    let probe = probes(&actions).pop().expect("a is looked up first");
    let actions = apply(&mut s, ok(&probe.job, json!({"x": 5})));
    let save = saves(&actions).pop().expect("its result is saved");
    assert_eq!(save.outputs, json!({"x": 5}));
    assert_eq!(save.ttl, crate::cache::DEFAULT_TTL);
    // The job saved is the job that ran: the same key.
    let none = SecretVersions::new();
    assert_eq!(
        cache_key(&save.job, None, &none),
        cache_key(&probe.job, None, &none)
    );
    // b is not cacheable: dispatched as usual.
    assert_eq!(super::dispatched(&actions)[0].task.step, "b");
}

#[test]
fn a_hit_succeeds_without_running_and_is_not_saved_again() {
    let mut s = state(CACHED);
    let probe = probes(&apply(&mut s, Event::Started { at: 0 })).remove(0);
    let from = CachedFrom {
        run: "earlier".into(),
        task: TaskId::new("a", None),
    };
    let actions = apply(
        &mut s,
        Event::TaskCached {
            task: probe.job.task.clone(),
            attempt: probe.job.attempt,
            from: from.clone(),
            outputs: json!({"x": 9}),
            artifacts: Default::default(),
            at: 3,
        },
    );
    assert!(saves(&actions).is_empty());
    let b = super::dispatched(&actions).remove(0);
    assert_eq!(
        b.action,
        crate::spec::StepAction::Run {
            command: crate::spec::Command::Shell("use 9".into())
        }
    );
    let a = &s.steps[0];
    assert_eq!(a.status, StepStatus::Succeeded);
    assert_eq!(a.tasks[0].attempts[0].cached_from, Some(from));
    // A late hit for the same attempt changes nothing.
    let again = apply(
        &mut s,
        Event::TaskCached {
            task: probe.job.task,
            attempt: 1,
            from: CachedFrom {
                run: "other".into(),
                task: TaskId::new("a", None),
            },
            outputs: json!({"x": 1}),
            artifacts: Default::default(),
            at: 4,
        },
    );
    assert!(again.is_empty());
    assert_eq!(s.steps[0].outputs, Some(json!({"x": 9})));
}

#[test]
fn no_cache_and_refresh_dispatch_but_still_save() {
    for choice in [
        RunCacheChoice {
            no_cache: true,
            ..Default::default()
        },
        RunCacheChoice {
            refresh: ["a".to_string()].into(),
            ..Default::default()
        },
    ] {
        let mut s = state(CACHED);
        s.cache = choice;
        let actions = apply(&mut s, Event::Started { at: 0 });
        assert!(probes(&actions).is_empty());
        let job = super::dispatched(&actions).remove(0);
        assert_eq!(saves(&apply(&mut s, ok(&job, json!({})))).len(), 1);
    }
}

#[test]
fn the_key_follows_inputs_and_key_text_but_not_the_run_id() {
    let job_of = |run: &str, n: i64| {
        let mut s = state(CACHED);
        s.run_id = run.into();
        s.params.insert("n".into(), json!(n));
        probes(&apply(&mut s, Event::Started { at: 0 }))
            .remove(0)
            .job
    };
    let none = SecretVersions::new();
    let key = |job: &Job, extra: Option<&str>| cache_key(job, extra, &none);
    assert_eq!(key(&job_of("r1", 1), None), key(&job_of("r2", 1), None));
    assert_ne!(key(&job_of("r1", 1), None), key(&job_of("r1", 2), None));
    assert_ne!(
        key(&job_of("r1", 1), None),
        key(&job_of("r1", 1), Some("v2"))
    );
    // A secret set again is a new key.
    let mut job = job_of("r1", 1);
    job.secrets.insert("TOKEN".into());
    let v1: SecretVersions = [("TOKEN".to_string(), 1)].into();
    let v2: SecretVersions = [("TOKEN".to_string(), 2)].into();
    assert_ne!(cache_key(&job, None, &v1), cache_key(&job, None, &v2));
}

#[test]
fn cache_settings_are_read_and_checked() {
    let w = crate::spec::load(
        r#"
[workflow]
name = "c"
[defaults]
cache = { ttl = "1h" }
[steps.a]
run = "a"
[steps.b]
run = "b"
cache = false
[steps.c]
run = "c {{ params.v }}"
cache = { key = "{{ params.v }}" }
[params]
v = "x"
"#,
    )
    .unwrap();
    let by_id = |id: &str| w.steps.iter().find(|s| s.id == id).unwrap();
    assert_eq!(
        by_id("a").cache.as_ref().map(|c| c.ttl),
        Some(std::time::Duration::from_secs(3600))
    );
    assert!(by_id("b").cache.is_none());
    assert_eq!(
        by_id("c")
            .cache
            .as_ref()
            .and_then(|c| c.key.as_ref())
            .map(|k| k.value.as_str()),
        Some("{{ params.v }}")
    );
    for (bad, says) in [
        ("cache = 3", "`a.cache` must be true, false or a table"),
        (
            "cache = { ttl = \"0s\" }",
            "`cache.ttl` must be more than 0s",
        ),
        ("cache = { tll = \"1h\" }", "unknown key `tll`"),
        ("cache = { key = \"{{ params.nope }}\" }", "nope"),
    ] {
        let source = format!("[workflow]\nname = \"c\"\n[steps.a]\nrun = \"a\"\n{bad}\n");
        let errors = crate::spec::load(&source).unwrap_err();
        assert!(
            errors.iter().any(|d| d.message.contains(says)),
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn a_resumed_run_sends_its_queued_cacheable_attempts_to_workers_not_the_cache() {
    // Found by the simulation (chaos seed 776): the job may be in the queue
    // already; a hit recorded on resume would let that copy run after it.
    let mut s = state(CACHED);
    assert_eq!(probes(&apply(&mut s, Event::Started { at: 0 })).len(), 1);
    let actions = resume(&mut s, false);
    assert!(probes(&actions).is_empty());
    assert_eq!(super::dispatched(&actions)[0].task.step, "a");
}
