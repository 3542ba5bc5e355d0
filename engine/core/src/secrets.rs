//! Secrets as the rest of weft sees them: their names, where a workflow
//! may use one (`{{ secrets.NAME }}` in `env`, `container.env` and a hook's
//! `config`, nowhere else), who may (a scope of workflow names and pools),
//! and what a store keeps (the value sealed; sealing itself is
//! `weft-secrets`'s). A value never passes through this crate: a job
//! carries the reference, and the worker resolves it as the step starts.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::run::Millis;
use crate::template::{Part, Template};

/// The root of a secret's reference: `{{ secrets.NAME }}`.
pub const SECRETS_ROOT: &str = "secrets";
/// The longest name a secret may have.
pub const MAX_SECRET_NAME: usize = 128;
/// The largest value a secret may hold (a key file, a certificate).
pub const MAX_SECRET_BYTES: usize = 64 << 10;
/// The shortest value weft stores: a shorter one could not be masked in
/// logs without masking ordinary text.
pub const MIN_SECRET_BYTES: usize = 4;
/// How many secrets a store keeps.
pub const MAX_SECRETS: usize = 10_000;

/// Whether `name` may name a secret: a letter or `_`, then letters,
/// digits and `_` (it becomes part of a template and of messages).
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.len() > MAX_SECRET_NAME
    {
        return Err(format!(
            "`{}` is not a secret name: a letter or `_`, then letters, digits or `_`, at most {MAX_SECRET_NAME} characters",
            crate::run::bounded_text(name, 80)
        ));
    }
    Ok(())
}

/// Checks a value before it is sealed.
pub fn check_secret_value(value: &[u8]) -> Result<(), String> {
    if value.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "a secret's value must be at least {MIN_SECRET_BYTES} bytes: a shorter one cannot be masked in logs"
        ));
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "a secret's value is at most {MAX_SECRET_BYTES} bytes (this one is {})",
            value.len()
        ));
    }
    Ok(())
}

/// The text a job carries (and every view shows) where a secret goes.
pub fn placeholder(name: &str) -> String {
    format!("{{{{ {SECRETS_ROOT}.{name} }}}}")
}

/// The secret names `text` refers to (`{{ secrets.NAME }}`); other
/// references, and text that is no template, are not secrets.
pub fn secret_refs(text: &str) -> impl Iterator<Item = String> {
    let parts = Template::parse(text).map(|t| t.parts).unwrap_or_default();
    parts.into_iter().filter_map(|p| match p {
        Part::Ref(path, _) if path.root() == SECRETS_ROOT && path.0.len() == 2 => {
            path.key(1).map(str::to_string)
        }
        _ => None,
    })
}

/// Replaces each `{{ secrets.NAME }}` of `text` whose name `value` knows
/// with its value, leaving every other character as it is. Only names the
/// step declared reach here, so a parameter that renders to a reference
/// cannot ask for another secret.
pub fn fill_secrets(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    crate::template::fill_references(text, |inner| {
        value(inner.strip_prefix(SECRETS_ROOT)?.strip_prefix('.')?)
    })
}

/// Which runs may use a secret: workflows by name (exact, or a prefix
/// ending in `*`) and pools. An empty list allows any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SecretScope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
}

impl SecretScope {
    /// Checks each pattern: a name, or a prefix ending in `*`.
    pub fn check(&self) -> Result<(), String> {
        match self
            .workflows
            .iter()
            .chain(&self.pools)
            .find(|p| p.is_empty() || p.len() > 200 || p.trim_end_matches('*').contains('*'))
        {
            Some(bad) => Err(format!(
                "`{}` is not a scope pattern: a name, or a prefix ending in `*`",
                crate::run::bounded_text(bad, 80)
            )),
            None => Ok(()),
        }
    }

    /// Whether a step of `workflow` in `pool` may use the secret.
    pub fn allows(&self, workflow: &str, pool: &str) -> bool {
        let fits = |patterns: &[String], name: &str| {
            patterns.is_empty()
                || patterns.iter().any(|p| match p.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => p == name,
                })
        };
        // A GPU step's queue is its pool's, with `+gpu`.
        let pool = pool.strip_suffix("+gpu").unwrap_or(pool);
        fits(&self.workflows, workflow) && fits(&self.pools, pool)
    }

    /// Says who may use it, for listings and refusals.
    pub fn describe(&self) -> String {
        let list = |l: &[String]| {
            if l.is_empty() {
                "any".to_string()
            } else {
                l.join(", ")
            }
        };
        format!(
            "workflows: {}; pools: {}",
            list(&self.workflows),
            list(&self.pools)
        )
    }
}

/// A secret as a store keeps it: the value sealed under a key of the
/// server's keyring, bound to its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StoredSecret {
    pub name: String,
    /// Which key sealed it (a fingerprint, not the key).
    pub key_id: String,
    /// The nonce and the ciphertext with its tag, base64.
    pub nonce: String,
    pub sealed: String,
    #[serde(default)]
    pub scope: SecretScope,
    /// The token's name that set it; `None` without auth or embedded.
    pub set_by: Option<String>,
    pub set_at: Millis,
}

/// What anyone listing secrets sees: never the value, sealed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SecretInfo {
    pub name: String,
    pub scope: SecretScope,
    pub set_by: Option<String>,
    pub set_at: Millis,
    pub key_id: String,
}

impl From<&StoredSecret> for SecretInfo {
    fn from(s: &StoredSecret) -> Self {
        Self {
            name: s.name.clone(),
            scope: s.scope.clone(),
            set_by: s.set_by.clone(),
            set_at: s.set_at,
            key_id: s.key_id.clone(),
        }
    }
}

/// The secrets a set of texts refers to, in name order.
pub fn names_in<'a>(texts: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    texts.into_iter().flat_map(secret_refs).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_secret_name("API_TOKEN").is_ok());
        assert!(check_secret_name("_x1").is_ok());
        for bad in ["", "1x", "a-b", "a.b", "a b", &"x".repeat(129)] {
            assert!(check_secret_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references_are_found_and_filled_and_nothing_else_changes() {
        let text = "Bearer {{ secrets.TOKEN }} and {{ params.x }} {{secrets.B}} {{ secrets.C }}";
        let names: Vec<String> = secret_refs(text).collect();
        assert_eq!(names, ["TOKEN", "B", "C"]);
        let known = |n: &str| (n != "C").then(|| format!("<{n}>"));
        assert_eq!(
            fill_secrets(text, known),
            "Bearer <TOKEN> and {{ params.x }} <B> {{ secrets.C }}"
        );
        // Broken templates are text, left alone.
        assert_eq!(fill_secrets("{{ a {{", known), "{{ a {{");
        assert_eq!(fill_secrets("x}}{{ secrets.TOKEN }}", known), "x}}<TOKEN>");
        assert_eq!(placeholder("TOKEN"), "{{ secrets.TOKEN }}");
        assert_eq!(secret_refs("{{ secrets.a.b }}").count(), 0);
    }

    #[test]
    fn a_scope_limits_workflows_by_pattern_and_pools() {
        let any = SecretScope::default();
        assert!(any.allows("w", "default"));
        let scope = SecretScope {
            workflows: vec!["etl-*".into(), "report".into()],
            pools: vec!["cpu".into()],
        };
        assert!(scope.allows("etl-daily", "cpu"));
        assert!(scope.allows("report", "cpu+gpu"));
        assert!(!scope.allows("report-2", "cpu"));
        assert!(!scope.allows("etl-daily", "default"));
        assert_eq!(scope.describe(), "workflows: etl-*, report; pools: cpu");
        assert!(scope.check().is_ok());
        for bad in ["", "a*b", "**x"] {
            let scope = SecretScope {
                workflows: vec![bad.into()],
                pools: vec![],
            };
            assert!(scope.check().is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_bounded() {
        assert!(check_secret_value(b"abc").is_err());
        assert!(check_secret_value(b"abcd").is_ok());
        assert!(check_secret_value(&vec![b'x'; MAX_SECRET_BYTES + 1]).is_err());
    }
}
