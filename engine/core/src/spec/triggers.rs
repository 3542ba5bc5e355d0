//! `[[triggers.schedule]]` and `[[triggers.webhook]]`: when a saved
//! workflow starts runs by itself, or when another system asks. Parsed and
//! checked here (cron, time zone, params, overlap, catch-up; a webhook's
//! name, signing secret and params from its payload), each mistake at its
//! line and column; fired by the server (`api/src/app/schedules.rs`,
//! `api/src/routes/triggers.rs`).

use std::time::Duration;

use serde_json::{Map, Value as Json};

use super::model::Param;
use super::parse::{Parser, Value};
use crate::diagnostic::{Span, Spanned};
use crate::schedule::{Overlap, Timing, MAX_CATCH_UP, MAX_SCHEDULES_PER_WORKFLOW};

const TRIGGER_KEYS: &[&str] = &["schedule", "webhook"];
const WEBHOOK_KEYS: &[&str] = &["name", "secret", "params"];
/// Most webhooks a workflow may have.
pub const MAX_WEBHOOKS_PER_WORKFLOW: usize = 16;
const SCHEDULE_KEYS: &[&str] = &[
    "cron", "timezone", "params", "overlap", "catch-up", "priority",
];
/// The catch-up window when none is given: a server restarting within it
/// misses nothing.
pub const DEFAULT_CATCH_UP: Duration = Duration::from_secs(60);

/// A value as a `--param` override gives it: a string as is, anything
/// else as JSON.
fn as_override(value: Json) -> String {
    match value {
        Json::String(s) => s,
        other => other.to_string(),
    }
}

/// One `[[triggers.schedule]]`.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub cron: Spanned<String>,
    pub timezone: Option<Spanned<String>>,
    /// Parameter overrides for its runs, checked against `[params]`.
    pub params: Map<String, Json>,
    pub overlap: Overlap,
    /// Fires missed while no server ran, this far back, start when one does.
    pub catch_up: Duration,
    /// Its runs' priority: their place among runs waiting for a concurrency
    /// key's slots and their jobs' band in their pools' queues.
    pub priority: i32,
    pub span: Span,
}

impl ScheduleSpec {
    /// Its timing (checked when parsed, so this only fails on a workflow
    /// built by hand).
    pub fn timing(&self) -> Result<Timing, crate::schedule::TimingError> {
        Timing::new(
            &self.cron.value,
            self.timezone.as_ref().map(|z| z.value.as_str()),
        )
    }

    /// Its params as `--param` overrides are given.
    pub fn overrides(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(k, v)| (k.clone(), as_override(v.clone())))
            .collect()
    }
}

/// One `[[triggers.webhook]]`: `POST /api/triggers/<name>`, signed with
/// the secret `secret` (HMAC-SHA256 of the body), starts a run with
/// `params` rendered from the delivery's JSON `payload`.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub name: Spanned<String>,
    /// The name of the weft secret whose value signs deliveries.
    pub secret: Spanned<String>,
    /// Parameter → template over `payload` (`"{{ payload.ref }}"`).
    pub params: Vec<(String, Spanned<String>)>,
    pub span: Span,
}

impl WebhookSpec {
    /// The run's parameter overrides from a delivery's `payload`: a
    /// template that is one reference gives that value (a string as is,
    /// anything else as JSON); `Err` names what the payload lacks.
    pub fn overrides(&self, payload: &Json) -> Result<Vec<(String, String)>, String> {
        let root = serde_json::json!({ "payload": payload });
        let lookup = |path: &crate::template::Path| {
            path.select(&root, 0)
                .cloned()
                .ok_or_else(|| format!("the payload has no `{path}`"))
        };
        self.params
            .iter()
            .map(|(name, text)| {
                let template = crate::template::Template::parse(&text.value)
                    .map_err(|e| format!("parameter `{name}`: {}", e.message))?;
                let value = template
                    .evaluate(&lookup)
                    .map_err(|e| format!("parameter `{name}`: {e}"))?;
                Ok((name.clone(), as_override(value)))
            })
            .collect()
    }
}

/// What `[triggers]` holds.
#[derive(Debug, Clone, Default)]
pub(super) struct Triggers {
    pub(super) schedules: Vec<ScheduleSpec>,
    pub(super) webhooks: Vec<WebhookSpec>,
}

impl Parser {
    /// `[triggers]`: its schedules and webhooks.
    pub(super) fn triggers(&mut self, v: &Value, params: &[Param]) -> Triggers {
        let Some(t) = self.table(v, "`triggers`") else {
            return Triggers::default();
        };
        self.check_keys(t, TRIGGER_KEYS, "`[triggers]`");
        let webhooks = match t.get("webhook") {
            Some(list) => self.webhooks(list, params),
            None => Vec::new(),
        };
        let schedules = match t.get("schedule") {
            Some(list) => self.schedules(list, params),
            None => Vec::new(),
        };
        Triggers {
            schedules,
            webhooks,
        }
    }

    fn webhooks(&mut self, list: &Value, params: &[Param]) -> Vec<WebhookSpec> {
        let Some(items) = self.bounded_list(
            list,
            "`triggers.webhook`",
            "webhooks (`[[triggers.webhook]]`)",
            MAX_WEBHOOKS_PER_WORKFLOW,
        ) else {
            return Vec::new();
        };
        let mut hooks: Vec<WebhookSpec> = Vec::new();
        for item in items {
            let Some(hook) = self.webhook(item, params) else {
                continue;
            };
            if hooks.iter().any(|h| h.name.value == hook.name.value) {
                self.error(
                    hook.name.span.clone(),
                    format!("a second webhook named `{}`", hook.name.value),
                    "repeated",
                );
                continue;
            }
            hooks.push(hook);
        }
        hooks
    }

    fn webhook(&mut self, v: &Value, params: &[Param]) -> Option<WebhookSpec> {
        let t = self.table(v, "each `[[triggers.webhook]]`")?;
        self.check_keys(t, WEBHOOK_KEYS, "`[[triggers.webhook]]`");
        let mut field = |key: &str| -> Option<Spanned<String>> {
            match t.get(key) {
                Some(value) => self.string(value, &format!("`{key}`")),
                None => {
                    self.error(
                        v.span(),
                        format!("a webhook needs `{key}`"),
                        format!("no `{key}` here"),
                    );
                    None
                }
            }
        };
        let name = field("name");
        let secret = field("secret");
        let (name, secret) = (name?, secret?);
        let mut ok = true;
        if !super::parse::is_name(&name.value) {
            self.error(
                name.span.clone(),
                format!(
                    "webhook name `{}` may hold only letters, digits, `_` and `-` (it is in a URL)",
                    name.value
                ),
                "bad name",
            );
            ok = false;
        }
        if let Err(e) = crate::secrets::check_secret_name(&secret.value) {
            self.error(
                secret.span.clone(),
                format!("`secret`: {e}"),
                "bad secret name",
            );
            ok = false;
        }
        let mut rendered = Vec::new();
        if let Some(p) = t.get("params") {
            let table = self.table(p, "`params`")?;
            for (key, value) in table.iter() {
                let param = key.get_ref().to_string();
                if !params.iter().any(|d| d.name == param) {
                    self.error(
                        key.span(),
                        format!("no parameter `{param}` in `[params]`"),
                        "unknown parameter",
                    );
                    ok = false;
                    continue;
                }
                let Some(text) = self.string(value, &format!("parameter `{param}`")) else {
                    ok = false;
                    continue;
                };
                match crate::template::Template::parse(&text.value) {
                    Ok(template) => {
                        if let Some((path, _)) =
                            template.references().find(|(p, _)| p.root() != "payload")
                        {
                            self.error(
                                text.span.clone(),
                                format!("`{path}`: a webhook's params read the delivery's `payload` only"),
                                "not the payload",
                            );
                            ok = false;
                        }
                    }
                    Err(e) => {
                        self.error(
                            text.span.clone(),
                            format!("parameter `{param}`: {}", e.message),
                            "bad template",
                        );
                        ok = false;
                    }
                }
                rendered.push((param, text));
            }
        }
        ok.then_some(WebhookSpec {
            name,
            secret,
            params: rendered,
            span: v.span(),
        })
    }

    fn schedules(&mut self, list: &Value, params: &[Param]) -> Vec<ScheduleSpec> {
        let Some(items) = self.bounded_list(
            list,
            "`triggers.schedule`",
            "schedules (`[[triggers.schedule]]`)",
            MAX_SCHEDULES_PER_WORKFLOW,
        ) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.schedule(item, params))
            .collect()
    }

    fn schedule(&mut self, v: &Value, params: &[Param]) -> Option<ScheduleSpec> {
        let t = self.table(v, "each `[[triggers.schedule]]`")?;
        self.check_keys(t, SCHEDULE_KEYS, "`[[triggers.schedule]]`");
        let Some(cron) = t.get("cron") else {
            self.error(v.span(), "a schedule needs `cron`", "no `cron` here");
            return None;
        };
        let cron = self.string(cron, "`cron`")?;
        let timezone = match t.get("timezone") {
            Some(z) => Some(self.string(z, "`timezone`")?),
            None => None,
        };
        let mut ok = true;
        match Timing::new(&cron.value, None) {
            // Eight years from 2001: a pattern that fires at all (a leap
            // day once in four) fires in them.
            Ok(t)
                if t.next_after(978_307_200_000)
                    .is_none_or(|n| n > 978_307_200_000 + 366 * 86_400_000 * 8) =>
            {
                self.error(
                    cron.span.clone(),
                    format!("`cron`: `{}` never fires", cron.value),
                    "no such time",
                );
                ok = false;
            }
            _ => {}
        }
        if let Err(e) = Timing::new(&cron.value, None) {
            self.diags.push(
                crate::diagnostic::Diagnostic::at(cron.span.clone(), format!("`cron`: {e}"))
                    .with_label("bad cron expression")
                    .with_note(
                        "5 fields (minute hour day month weekday), or 6 with seconds first; \
                         `@hourly`, `@daily`, `@weekly` also work",
                    ),
            );
            ok = false;
        }
        if let Some(z) = &timezone {
            if let Err(e) = Timing::new("* * * * *", Some(&z.value)) {
                self.error(z.span.clone(), e.to_string(), "unknown time zone");
                ok = false;
            }
        }
        let overlap = match t.get("overlap") {
            None => Overlap::default(),
            Some(o) => {
                let o = self.string(o, "`overlap`")?;
                match Overlap::ALL.iter().find(|(n, _)| *n == o.value) {
                    Some((_, overlap)) => *overlap,
                    None => {
                        let names: Vec<&str> = Overlap::ALL.iter().map(|(n, _)| *n).collect();
                        self.error(
                            o.span,
                            format!(
                                "`overlap` is one of {}, not `{}`",
                                names.join(", "),
                                o.value
                            ),
                            "unknown policy",
                        );
                        return None;
                    }
                }
            }
        };
        let catch_up = match t.get("catch-up") {
            None => DEFAULT_CATCH_UP,
            Some(c) => {
                let d = self.duration(c, "`catch-up`")?;
                if d > MAX_CATCH_UP {
                    self.error(
                        c.span(),
                        "`catch-up` may be at most 7d (`weft backfill` starts older fires)",
                        "too long",
                    );
                    return None;
                }
                d
            }
        };
        let priority = match t.get("priority") {
            None => 0,
            Some(p) => self.integer_in(
                p,
                "`priority`",
                crate::concurrency::MIN_PRIORITY.into(),
                crate::concurrency::MAX_PRIORITY.into(),
            )? as i32,
        };
        let mut given = Map::new();
        if let Some(p) = t.get("params") {
            let table = self.table(p, "`params`")?;
            for (key, value) in table.iter() {
                let name = key.get_ref();
                let Some(declared) = params.iter().find(|d| d.name == name.as_ref()) else {
                    self.error(
                        key.span(),
                        format!("no parameter `{name}` in `[params]`"),
                        "unknown parameter",
                    );
                    ok = false;
                    continue;
                };
                let value = self.json(value, &format!("parameter `{name}`"))?;
                if std::mem::discriminant(&value) != std::mem::discriminant(&declared.default)
                    && !declared.default.is_null()
                {
                    self.error(
                        key.span(),
                        format!(
                            "parameter `{name}` is {} in `[params]`, but {} here",
                            super::values::json_type(&declared.default),
                            super::values::json_type(&value)
                        ),
                        "wrong type",
                    );
                    ok = false;
                    continue;
                }
                given.insert(name.to_string(), value);
            }
        }
        ok.then_some(ScheduleSpec {
            cron,
            timezone,
            params: given,
            overlap,
            catch_up,
            priority,
            span: v.span(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[workflow]\nname = \"w\"\n[params]\nday = \"today\"\nshards = 2\n[steps.a]\nrun = \"true\"\n";

    fn errors(triggers: &str) -> Vec<String> {
        match crate::spec::load(&format!("{BASE}{triggers}")) {
            Ok(_) => Vec::new(),
            Err(diags) => diags.iter().map(|d| d.message.clone()).collect(),
        }
    }

    #[test]
    fn schedules_are_read_with_their_defaults() {
        let w = crate::spec::load(&format!(
            "{BASE}[[triggers.schedule]]\ncron = \"0 2 * * *\"\ntimezone = \"Europe/Paris\"\nparams = {{ shards = 4 }}\n\
             [[triggers.schedule]]\ncron = \"*/5 * * * * *\"\noverlap = \"queue\"\ncatch-up = \"1h\"\n"
        ))
        .unwrap();
        assert_eq!(w.schedules.len(), 2);
        let nightly = &w.schedules[0];
        assert_eq!(nightly.overlap, Overlap::Skip);
        assert_eq!(nightly.catch_up, DEFAULT_CATCH_UP);
        assert_eq!(
            nightly.overrides(),
            [("shards".to_string(), "4".to_string())]
        );
        assert!(nightly.timing().is_ok());
        assert_eq!(w.schedules[1].overlap, Overlap::Queue);
        assert_eq!(w.schedules[1].catch_up, Duration::from_secs(3600));
    }

    #[test]
    fn bad_schedules_are_refused_each_where_it_is() {
        let cases = [
            ("cron = \"61 * * * *\"", "`cron`: not a cron expression"),
            (
                "cron = \"* * * * *\"\ntimezone = \"Mars/Olympus\"",
                "`Mars/Olympus` is not a time zone",
            ),
            (
                "cron = \"* * * * *\"\noverlap = \"sometimes\"",
                "`overlap` is one of skip, queue, cancel-previous, allow",
            ),
            (
                "cron = \"* * * * *\"\ncatch-up = \"30d\"",
                "`catch-up` may be at most 7d",
            ),
            (
                "cron = \"* * * * *\"\nparams = { nope = 1 }",
                "no parameter `nope` in `[params]`",
            ),
            (
                "cron = \"* * * * *\"\nparams = { shards = \"four\" }",
                "parameter `shards` is a number in `[params]`, but a string here",
            ),
            ("timezone = \"UTC\"", "a schedule needs `cron`"),
            ("cron = \"0 0 30 2 *\"", "`cron`: `0 0 30 2 *` never fires"),
            (
                "cron = \"* * * * *\"\nevery = \"1m\"",
                "unknown key `every`",
            ),
        ];
        for (body, want) in cases {
            let errors = errors(&format!("[[triggers.schedule]]\n{body}\n"));
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{body}: {errors:?}"
            );
        }
        let many = "[[triggers.schedule]]\ncron = \"@daily\"\n".repeat(17);
        assert_eq!(
            errors(&many),
            ["17 schedules (`[[triggers.schedule]]`) in `triggers.schedule`: at most 16"]
        );
        let diags = crate::spec::load(&format!(
            "{BASE}[[triggers.schedule]]\ncron = \"61 * * * *\"\n"
        ))
        .unwrap_err();
        let at = diags[0].span.clone().unwrap();
        assert_eq!(
            &format!("{BASE}[[triggers.schedule]]\ncron = \"61 * * * *\"\n")[at],
            "\"61 * * * *\""
        );
    }

    #[test]
    fn webhooks_render_their_params_from_the_payload() {
        let w = crate::spec::load(&format!(
            "{BASE}[[triggers.webhook]]\nname = \"on-push\"\nsecret = \"HOOK_KEY\"\n\
             params = {{ day = \"{{{{ payload.head.date }}}}\", shards = \"{{{{ payload.count }}}}\" }}\n"
        ))
        .unwrap();
        let hook = &w.webhooks[0];
        assert_eq!(hook.name.value, "on-push");
        let payload = serde_json::json!({"head": {"date": "2026-12-01"}, "count": 8});
        assert_eq!(
            hook.overrides(&payload).unwrap(),
            [
                ("day".to_string(), "2026-12-01".to_string()),
                ("shards".to_string(), "8".to_string())
            ]
        );
        assert_eq!(
            hook.overrides(&serde_json::json!({"count": 1}))
                .unwrap_err(),
            "parameter `day`: the payload has no `payload.head.date`"
        );
    }

    #[test]
    fn bad_webhooks_are_refused_each_where_it_is() {
        let cases = [
            ("name = \"a b\"\nsecret = \"K\"", "may hold only letters"),
            ("name = \"h\"", "a webhook needs `secret`"),
            ("name = \"h\"\nsecret = \"not-a-name!\"", "`secret`:"),
            (
                "name = \"h\"\nsecret = \"K\"\nparams = { day = \"{{ params.day }}\" }",
                "read the delivery's `payload` only",
            ),
            (
                "name = \"h\"\nsecret = \"K\"\nparams = { nope = \"x\" }",
                "no parameter `nope`",
            ),
        ];
        for (body, want) in cases {
            let errors = errors(&format!("[[triggers.webhook]]\n{body}\n"));
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{body}: {errors:?}"
            );
        }
        let twice = errors("[[triggers.webhook]]\nname = \"h\"\nsecret = \"K\"\n[[triggers.webhook]]\nname = \"h\"\nsecret = \"K\"\n");
        assert_eq!(twice, ["a second webhook named `h`"]);
    }
}
