//! `[workflow] concurrency = { key, limit, policy }`: how many runs holding
//! one key may run at once across the cluster, and what a run does when
//! they all are. The key is a template over the run's `params` and
//! `workflow.name`, rendered once when the run is submitted.

use serde_json::{Map, Value as Json};

use super::model::Param;
use super::parse::{Parser, Value};
use crate::concurrency::{ConcurrencyPolicy, MAX_KEY_BYTES, MAX_LIMIT};
use crate::diagnostic::{Diagnostic, Span, Spanned};
use crate::template::{Path, Template};

const KEYS: &[&str] = &["key", "limit", "policy"];

/// `[workflow] concurrency`.
#[derive(Debug, Clone)]
pub struct ConcurrencySpec {
    /// A template over `params` and `workflow.name`; the workflow's name
    /// when absent.
    pub key: Option<Spanned<String>>,
    pub limit: u32,
    pub policy: ConcurrencyPolicy,
    pub span: Span,
}

impl ConcurrencySpec {
    /// The key of a run of `workflow` with `params`: rendered, not empty,
    /// at most `MAX_KEY_BYTES`.
    pub fn key_for(&self, workflow: &str, params: &Map<String, Json>) -> Result<String, String> {
        let Some(key) = &self.key else {
            return Ok(workflow.to_string());
        };
        let template = Template::parse(&key.value).map_err(|e| e.message)?;
        let lookup = |path: &Path| -> Result<Json, String> {
            match (path.root(), path.key(1)) {
                ("workflow", Some("name")) if path.0.len() == 2 => {
                    Ok(Json::String(workflow.into()))
                }
                ("params", Some(name)) => path
                    .select(&Json::Object(params.clone()), 1)
                    .cloned()
                    .ok_or_else(|| format!("no parameter `{name}`")),
                _ => Err(format!(
                    "`{path}`: a concurrency key reads `params` and `workflow.name` only"
                )),
            }
        };
        let rendered = template.render(&lookup)?;
        if rendered.trim().is_empty() {
            return Err(format!(
                "the concurrency key `{}` renders empty: every run would share one key by accident",
                key.value
            ));
        }
        if rendered.len() > MAX_KEY_BYTES {
            return Err(format!(
                "the concurrency key renders to {} bytes; at most {MAX_KEY_BYTES}",
                rendered.len()
            ));
        }
        Ok(rendered)
    }
}

impl Parser {
    pub(super) fn concurrency(&mut self, v: &Value, params: &[Param]) -> Option<ConcurrencySpec> {
        let t = self.table(v, "`workflow.concurrency`")?;
        self.check_keys(t, KEYS, "`workflow.concurrency`");
        // Every mistake is reported, not only the first.
        let mut ok = true;
        let key = match t.get("key") {
            Some(k) => {
                let key = self.string(k, "`concurrency.key`");
                let checked = key.as_ref().and_then(|k| self.check_key(k, params));
                ok &= checked.is_some();
                key
            }
            None => None,
        };
        let limit = match t.get("limit") {
            Some(l) => match self.integer(l, "`concurrency.limit`", MAX_LIMIT.into()) {
                Some(0) => {
                    self.error(
                        l.span(),
                        "`concurrency.limit` must be at least 1",
                        "no run could ever start",
                    );
                    ok = false;
                    1
                }
                Some(n) => n as u32,
                None => {
                    ok = false;
                    1
                }
            },
            None => 1,
        };
        let policy = match t.get("policy") {
            Some(p) => {
                let p = self.string(p, "`concurrency.policy`")?;
                match ConcurrencyPolicy::ALL.iter().find(|(n, _)| *n == p.value) {
                    Some((_, policy)) => *policy,
                    None => {
                        let names: Vec<&str> =
                            ConcurrencyPolicy::ALL.iter().map(|(n, _)| *n).collect();
                        self.error(
                            p.span,
                            format!(
                                "`concurrency.policy` is one of {}, not `{}`",
                                names.join(", "),
                                p.value
                            ),
                            "unknown policy",
                        );
                        return None;
                    }
                }
            }
            None => ConcurrencyPolicy::Queue,
        };
        if !ok {
            return None;
        }
        Some(ConcurrencySpec {
            key,
            limit,
            policy,
            span: v.span(),
        })
    }

    /// A key reads declared params and `workflow.name` only, and with the
    /// params' defaults renders to something.
    fn check_key(&mut self, key: &Spanned<String>, params: &[Param]) -> Option<()> {
        let template = match Template::parse(&key.value) {
            Ok(t) => t,
            Err(e) => {
                self.error(
                    key.span.clone(),
                    format!("`concurrency.key`: {}", e.message),
                    "bad template",
                );
                return None;
            }
        };
        for (path, _) in template.references() {
            let ok = match (path.root(), path.key(1)) {
                ("workflow", Some("name")) => path.0.len() == 2,
                ("params", Some(name)) => {
                    if !params.iter().any(|p| p.name == name) {
                        self.error(
                            key.span.clone(),
                            format!("`concurrency.key` reads `params.{name}`, which `[params]` does not declare"),
                            "unknown parameter",
                        );
                        return None;
                    }
                    true
                }
                _ => false,
            };
            if !ok {
                self.diags.push(
                    Diagnostic::at(key.span.clone(), format!("`concurrency.key` cannot read `{path}`"))
                        .with_label("not known when the run is submitted")
                        .with_note("a key reads `params.<name>` and `workflow.name`, as in \"train-{{ params.dataset }}\""),
                );
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::concurrency::ConcurrencyPolicy;

    fn load(concurrency: &str) -> Result<crate::spec::Workflow, Vec<String>> {
        crate::spec::load(&format!(
            "[workflow]\nname = \"w\"\nconcurrency = {concurrency}\n[params]\ndataset = \"a\"\n[steps.a]\nrun = \"true\"\n"
        ))
        .map_err(|d| d.iter().map(|d| d.message.clone()).collect())
    }

    #[test]
    fn a_key_is_read_and_rendered_per_run() {
        let w =
            load("{ key = \"ds-{{ params.dataset }}\", limit = 2, policy = \"cancel-running\" }")
                .unwrap();
        let c = w.concurrency.unwrap();
        assert_eq!((c.limit, c.policy), (2, ConcurrencyPolicy::CancelRunning));
        let params = json!({"dataset": "imagenet"}).as_object().unwrap().clone();
        assert_eq!(c.key_for("w", &params).unwrap(), "ds-imagenet");
        let bare = load("{ key = \"{{ params.dataset }}\" }").unwrap();
        let empty = json!({"dataset": " "}).as_object().unwrap().clone();
        let e = bare.concurrency.unwrap().key_for("w", &empty).unwrap_err();
        assert!(e.contains("renders empty"), "{e}");
        let long = json!({"dataset": "x".repeat(300)})
            .as_object()
            .unwrap()
            .clone();
        assert!(c.key_for("w", &long).unwrap_err().contains("at most 200"));
        // No key: the workflow's name; the defaults: one run, queued.
        let plain = load("{}").unwrap().concurrency.unwrap();
        assert_eq!(plain.key_for("w", &params).unwrap(), "w");
        assert_eq!((plain.limit, plain.policy), (1, ConcurrencyPolicy::Queue));
    }

    #[test]
    fn bad_concurrency_is_refused_where_it_is_written() {
        for (text, message) in [
            ("{ limit = 0 }", "`concurrency.limit` must be at least 1"),
            (
                "{ limit = 20000 }",
                "`concurrency.limit` must be between 0 and 10000",
            ),
            (
                "{ policy = \"later\" }",
                "`concurrency.policy` is one of queue, skip, cancel-running, not `later`",
            ),
            (
                "{ key = \"{{ params.nope }}\" }",
                "`concurrency.key` reads `params.nope`, which `[params]` does not declare",
            ),
            (
                "{ key = \"{{ steps.a.outputs.x }}\" }",
                "`concurrency.key` cannot read `steps.a.outputs.x`",
            ),
            ("{ key = \"{{ params.dataset\" }", "`concurrency.key`: "),
            (
                "{ size = 1 }",
                "unknown key `size` in `workflow.concurrency`",
            ),
            (
                "3",
                "`workflow.concurrency` must be a table, not an integer",
            ),
        ] {
            let errors = load(text).unwrap_err();
            assert!(
                errors.iter().any(|e| e.starts_with(message)),
                "{text}: {errors:?}"
            );
        }
    }
}
