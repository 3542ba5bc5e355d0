//! Settings a step shares with `[defaults]`: timeout, retries, env,
//! resources, hooks, pool; parsing them and merging a step's over the defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::model::*;
use super::parse::{Parser, Value, HOOK_ENTRY_KEYS, HOOK_KEYS, RESOURCE_KEYS, RETRY_KEYS};
use super::units::parse_bytes;
use super::values::{collect_strings, pool_name_problem};
use crate::diagnostic::{Diagnostic, Spanned};

/// Settings shared by `[defaults]` and steps; `None` where not written.
#[derive(Default, Clone)]
pub(super) struct Settings {
    pub(super) timeout: Option<Duration>,
    pub(super) limit: Option<u32>,
    pub(super) backoff: Option<Backoff>,
    pub(super) delay: Option<Duration>,
    pub(super) max_delay: Option<Duration>,
    pub(super) jitter: Option<bool>,
    pub(super) env: BTreeMap<String, Spanned<String>>,
    pub(super) resources: Resources,
    pub(super) cpus_set: bool,
    pub(super) memory_set: bool,
    pub(super) gpus_set: bool,
    pub(super) pre: Vec<Spanned<HookRef>>,
    pub(super) post: Vec<Spanned<HookRef>>,
    pub(super) pool: Option<String>,
    /// `cache`: `Some(None)` where it says `cache = false`.
    pub(super) cache: Option<Option<crate::cache::CachePolicy>>,
}

impl Settings {
    /// `self` (a step's) over `defaults`.
    pub(super) fn over(self, defaults: &Settings) -> Settings {
        let mut env = defaults.env.clone();
        env.extend(self.env);
        Settings {
            timeout: self.timeout.or(defaults.timeout),
            limit: self.limit.or(defaults.limit),
            backoff: self.backoff.or(defaults.backoff),
            delay: self.delay.or(defaults.delay),
            max_delay: self.max_delay.or(defaults.max_delay),
            jitter: self.jitter.or(defaults.jitter),
            env,
            resources: Resources {
                cpus: if self.cpus_set {
                    self.resources.cpus
                } else {
                    defaults.resources.cpus
                },
                memory: if self.memory_set {
                    self.resources.memory
                } else {
                    defaults.resources.memory
                },
                gpus: if self.gpus_set {
                    self.resources.gpus
                } else {
                    defaults.resources.gpus
                },
            },
            cpus_set: true,
            memory_set: true,
            gpus_set: true,
            pre: defaults.pre.iter().cloned().chain(self.pre).collect(),
            post: defaults.post.iter().cloned().chain(self.post).collect(),
            pool: self.pool.or_else(|| defaults.pool.clone()),
            cache: self.cache.or_else(|| defaults.cache.clone()),
        }
    }

    pub(super) fn retry_policy(&self) -> RetryPolicy {
        let d = RetryPolicy::default();
        RetryPolicy {
            limit: self.limit.unwrap_or(d.limit),
            backoff: self.backoff.unwrap_or(d.backoff),
            delay: self.delay.unwrap_or(d.delay),
            max_delay: self.max_delay.unwrap_or(d.max_delay),
            jitter: self.jitter.unwrap_or(d.jitter),
        }
    }
}

impl Parser {
    pub(super) fn settings(&mut self, t: &DeTable, owner: &str) -> Settings {
        let mut s = Settings::default();
        if let Some(v) = t.get("timeout") {
            s.timeout = self.duration(v, &format!("`{owner}.timeout`"));
        }
        if let Some(v) = t.get("retries") {
            match v.get_ref() {
                DeValue::Integer(_) => {
                    s.limit = self.integer(v, "`retries`", 100).map(|n| n as u32)
                }
                DeValue::Table(r) => {
                    self.check_keys(r, RETRY_KEYS, "`retries`");
                    if let Some(v) = r.get("limit") {
                        s.limit = self.integer(v, "`retries.limit`", 100).map(|n| n as u32);
                    }
                    if let Some(v) = r.get("backoff") {
                        s.backoff = match self.string(v, "`retries.backoff`") {
                            Some(b) if b.value == "fixed" => Some(Backoff::Fixed),
                            Some(b) if b.value == "exponential" => Some(Backoff::Exponential),
                            Some(b) => {
                                self.error(
                                    b.span,
                                    format!(
                                        "`retries.backoff` is `exponential` or `fixed`, not `{}`",
                                        b.value
                                    ),
                                    "unknown backoff",
                                );
                                None
                            }
                            None => None,
                        };
                    }
                    if let Some(v) = r.get("delay") {
                        s.delay = self.duration(v, "`retries.delay`");
                    }
                    if let Some(v) = r.get("max-delay") {
                        s.max_delay = self.duration(v, "`retries.max-delay`");
                    }
                    if let Some(v) = r.get("jitter") {
                        s.jitter = self.boolean(v, "`retries.jitter`");
                    }
                }
                _ => self.wrong_type(
                    v,
                    "`retries`",
                    "a table like `{ limit = 3, delay = \"2s\" }` or an integer",
                ),
            }
        }
        if let Some(v) = t.get("cache") {
            s.cache = self.cache(v, owner);
        }
        if let Some(v) = t.get("env") {
            if let Some(e) = self.table(v, "`env`") {
                for (k, val) in e.iter() {
                    let value = match val.get_ref() {
                        DeValue::String(_) => self.string(val, "an `env` value"),
                        DeValue::Integer(i) => {
                            Some(Spanned::new(i.as_str().to_string(), val.span()))
                        }
                        DeValue::Float(f) => Some(Spanned::new(f.as_str().to_string(), val.span())),
                        DeValue::Boolean(b) => Some(Spanned::new(b.to_string(), val.span())),
                        _ => {
                            self.wrong_type(val, &format!("`env.{}`", k.get_ref()), "a string");
                            None
                        }
                    };
                    if let Some(value) = value {
                        s.env.insert(k.get_ref().to_string(), value);
                    }
                }
            }
        }
        if let Some(v) = t.get("resources") {
            if let Some(r) = self.table(v, "`resources`") {
                self.check_keys(r, RESOURCE_KEYS, "`resources`");
                if let Some(c) = r.get("cpus") {
                    s.cpus_set = true;
                    s.resources.cpus = match c.get_ref() {
                        DeValue::Integer(_) => {
                            self.integer(c, "`resources.cpus`", 4096).map(|n| n as f64)
                        }
                        DeValue::Float(f) => match f.as_str().parse::<f64>() {
                            Ok(x) if x > 0.0 && x.is_finite() => Some(x),
                            _ => {
                                self.error(
                                    c.span(),
                                    "`resources.cpus` must be a positive number",
                                    "bad value",
                                );
                                None
                            }
                        },
                        _ => {
                            self.wrong_type(c, "`resources.cpus`", "a number");
                            None
                        }
                    };
                }
                if let Some(m) = r.get("memory") {
                    s.memory_set = true;
                    s.resources.memory = self.bytes(m, "`resources.memory`");
                }
                if let Some(g) = r.get("gpus") {
                    s.gpus_set = true;
                    s.resources.gpus = self.integer(g, "`resources.gpus`", 64).unwrap_or(0) as u32;
                }
            }
        }
        if let Some(v) = t.get("hooks") {
            if let Some(h) = self.table(v, "`hooks`") {
                self.check_keys(h, HOOK_KEYS, "`hooks`");
                for (which, list) in [("pre", &mut s.pre), ("post", &mut s.post)] {
                    if let Some(v) = h.get(which) {
                        let what = format!("`hooks.{which}`");
                        match v.get_ref() {
                            DeValue::Array(items) => {
                                list.extend(items.iter().filter_map(|i| self.hook(i, &what)))
                            }
                            _ => self.wrong_type(v, &what, "a list of plugins"),
                        }
                    }
                }
            }
        }
        if let Some(v) = t.get("pool") {
            if let Some(p) = self.string(v, "`pool`") {
                match pool_name_problem(&p.value) {
                    None => s.pool = Some(p.value),
                    Some(problem) => self.error(p.span, problem, "bad pool name"),
                }
            }
        }
        s
    }
}

impl Parser {
    /// A size: bytes as an integer, or text like `512MiB`.
    pub(super) fn bytes(&mut self, v: &Value, what: &str) -> Option<u64> {
        match v.get_ref() {
            DeValue::Integer(_) => self.integer(v, what, i64::MAX).map(|n| n as u64),
            DeValue::String(text) => match parse_bytes(text) {
                Ok(b) => Some(b),
                Err(e) => {
                    self.diags.push(
                        Diagnostic::at(v.span(), format!("{what}: bad size `{text}`: {e}"))
                            .with_label("not a size")
                            .with_note("sizes look like `512MiB`, `4GiB`, `1.5GB`"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(v, what, "a size like `64MiB`");
                None
            }
        }
    }

    /// One entry of `hooks.pre` or `hooks.post`: a reference, or a table.
    fn hook(&mut self, v: &Value, what: &str) -> Option<Spanned<HookRef>> {
        let reference = |this: &mut Self, r: Spanned<String>| match PluginRef::parse(&r.value) {
            Ok(p) => Some(p),
            Err(e) => {
                this.diags
                    .push(Diagnostic::at(r.span, e).with_label("bad plugin reference"));
                None
            }
        };
        match v.get_ref() {
            DeValue::String(_) => {
                let r = self.string(v, what)?;
                let p = reference(self, r)?;
                Some(Spanned::new(HookRef::new(p), v.span()))
            }
            DeValue::Table(t) => {
                self.check_keys(t, HOOK_ENTRY_KEYS, &format!("a hook of {what}"));
                let Some(p) = t.get("plugin") else {
                    self.error(
                        v.span(),
                        format!("a hook of {what} needs a `plugin`"),
                        "no `plugin`",
                    );
                    return None;
                };
                let r = self.string(p, "`plugin`")?;
                let mut hook = HookRef::new(reference(self, r)?);
                if let Some(c) = t.get("config") {
                    if self.table(c, "`config`").is_some() {
                        hook.config = self.json(c, "`config`")?;
                        collect_strings(c, &mut hook.config_texts);
                    }
                }
                if let Some(d) = t.get("timeout") {
                    hook.timeout = self.duration(d, "`timeout`");
                }
                if let Some(m) = t.get("memory") {
                    hook.memory = self.bytes(m, "`memory`");
                }
                Some(Spanned::new(hook, v.span()))
            }
            _ => {
                self.wrong_type(
                    v,
                    &format!("each of {what}"),
                    "a plugin reference or a table",
                );
                None
            }
        }
    }
}

impl Parser {
    /// `cache`: `true`, `false`, or `{ key = "...", ttl = "7d" }`.
    fn cache(&mut self, v: &Value, owner: &str) -> Option<Option<crate::cache::CachePolicy>> {
        use crate::cache::{CachePolicy, MAX_TTL};
        let what = format!("`{owner}.cache`");
        match v.get_ref() {
            DeValue::Boolean(on) => Some(on.then(CachePolicy::default)),
            DeValue::Table(t) => {
                self.check_keys(t, &["key", "ttl"], &what);
                let mut policy = CachePolicy::default();
                if let Some(k) = t.get("key") {
                    policy.key = self.string(k, "`cache.key`");
                }
                if let Some(d) = t.get("ttl") {
                    let ttl = self.duration(d, "`cache.ttl`")?;
                    if ttl.is_zero() || ttl > MAX_TTL {
                        self.error(
                            d.span(),
                            format!(
                                "`cache.ttl` must be more than 0s and at most {}",
                                super::units::format_duration(MAX_TTL)
                            ),
                            "out of range",
                        );
                        return None;
                    }
                    policy.ttl = ttl;
                }
                Some(Some(policy))
            }
            _ => {
                self.wrong_type(
                    v,
                    &what,
                    "true, false or a table like `{ key = \"v2\", ttl = \"7d\" }`",
                );
                None
            }
        }
    }
}
