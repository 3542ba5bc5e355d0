//! Reading a step's `artifacts` table: names, paths that stay in the
//! step's working directory, `optional`.

use toml::de::DeValue;

use super::parse::{is_name, Parser, Value};
use crate::artifacts::{check_artifact_path, DeclaredArtifact, MAX_ARTIFACTS_PER_STEP};
use crate::diagnostic::Spanned;

const ARTIFACT_KEYS: &[&str] = &["path", "optional"];

impl Parser {
    /// `artifacts = { model = "out/model.pt", logs = { path = "logs/", optional = true } }`.
    pub(super) fn artifacts(&mut self, v: &Value, id: &str) -> Vec<Spanned<DeclaredArtifact>> {
        let Some(t) = self.table(v, "`artifacts`") else {
            return Vec::new();
        };
        if t.len() > MAX_ARTIFACTS_PER_STEP {
            self.error(
                v.span(),
                format!(
                    "step `{id}` declares {} artifacts; the limit is {MAX_ARTIFACTS_PER_STEP}",
                    t.len()
                ),
                "too many",
            );
        }
        let mut out = Vec::new();
        for (key, value) in t.iter() {
            let name = key.get_ref().to_string();
            if !is_name(&name) {
                self.error(
                    key.span(),
                    format!("artifact name `{name}` may hold only letters, digits, `_` and `-`"),
                    "bad name",
                );
            }
            let what = format!("artifact `{name}`");
            let (path, optional) = match value.get_ref() {
                DeValue::String(_) => (self.string(value, &what), false),
                DeValue::Table(entry) => {
                    self.check_keys(entry, ARTIFACT_KEYS, &format!("`artifacts.{name}`"));
                    let path = match entry.get("path") {
                        Some(p) => self.string(p, &format!("`artifacts.{name}.path`")),
                        None => {
                            self.error(
                                value.span(),
                                format!("`artifacts.{name}` needs a `path`"),
                                "no `path` here",
                            );
                            None
                        }
                    };
                    let optional = entry
                        .get("optional")
                        .and_then(|o| self.boolean(o, &format!("`artifacts.{name}.optional`")))
                        .unwrap_or(false);
                    (path, optional)
                }
                _ => {
                    self.wrong_type(
                        value,
                        &what,
                        "a path or a table `{ path = \"...\", optional = true }`",
                    );
                    (None, false)
                }
            };
            let Some(path) = path else { continue };
            if path.value.contains("{{") {
                self.error(
                    path.span.clone(),
                    format!("{what}: a path is not a template"),
                    "a fixed path in the scratch directory",
                );
                continue;
            }
            if let Err(e) = check_artifact_path(&path.value) {
                self.error(
                    path.span.clone(),
                    format!("step `{id}`: {e}"),
                    "not in the scratch directory",
                );
                continue;
            }
            out.push(Spanned::new(
                DeclaredArtifact {
                    name,
                    path: path.value,
                    optional,
                },
                key.span(),
            ));
        }
        out
    }
}
