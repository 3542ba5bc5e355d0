//! `approve = { roles, timeout, inputs }`: a step that waits for a person.
//! It runs on no worker: when it is ready it waits until someone of an
//! allowed role approves it (its outputs are the inputs they give) or
//! rejects it (it fails), or its `timeout` passes (it fails).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::parse::{Parser, Value};
use crate::ports::Role;

const KEYS: &[&str] = &["roles", "timeout", "inputs"];
/// Most inputs one approval asks for.
pub const MAX_INPUTS: usize = 32;
/// Longest text an input, or a comment, may hold.
pub const MAX_INPUT_BYTES: usize = 4_096;

/// The type of one input an approver gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputType {
    String,
    Number,
    Boolean,
}

impl InputType {
    const ALL: [(&'static str, InputType); 3] = [
        ("string", InputType::String),
        ("number", InputType::Number),
        ("boolean", InputType::Boolean),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("string", |(n, _)| n)
    }
}

/// What an approval step asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalSpec {
    /// Roles that may decide (an admin always may).
    pub roles: Vec<Role>,
    /// Past it (from when the step began waiting) the step fails.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// What an approver gives, by name: the step's outputs.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputType>,
}

impl ApprovalSpec {
    /// Whether `role` may approve or reject.
    pub fn allows(&self, role: Role) -> bool {
        role == Role::Admin || self.roles.contains(&role)
    }

    /// The outputs an approval with `given` makes: each declared input,
    /// typed as declared. `Err` names the first input missing, unknown or
    /// of the wrong type.
    pub fn outputs(&self, given: &Map<String, Json>) -> Result<Json, String> {
        if let Some(unknown) = given.keys().find(|k| !self.inputs.contains_key(*k)) {
            return Err(format!("`{unknown}` is not an input of this approval"));
        }
        let mut out = Map::new();
        for (name, ty) in &self.inputs {
            let Some(value) = given.get(name) else {
                return Err(format!(
                    "the approval needs input `{name}` ({})",
                    ty.as_str()
                ));
            };
            let value = match (ty, value) {
                (InputType::String, Json::String(s)) if s.len() <= MAX_INPUT_BYTES => value.clone(),
                (InputType::String, Json::String(_)) => {
                    return Err(format!("input `{name}` is over {MAX_INPUT_BYTES} bytes"))
                }
                (InputType::Number, Json::Number(_)) | (InputType::Boolean, Json::Bool(_)) => {
                    value.clone()
                }
                // As `--input k=v` gives them: text read as the type.
                (InputType::Number, Json::String(s)) => serde_json::from_str::<Json>(s.trim())
                    .ok()
                    .filter(Json::is_number)
                    .ok_or_else(|| format!("input `{name}` must be a number, not `{s}`"))?,
                (InputType::Boolean, Json::String(s)) => match s.trim() {
                    "true" => Json::Bool(true),
                    "false" => Json::Bool(false),
                    _ => return Err(format!("input `{name}` must be true or false, not `{s}`")),
                },
                (ty, other) => {
                    return Err(format!(
                        "input `{name}` must be a {}, not {other}",
                        ty.as_str()
                    ))
                }
            };
            out.insert(name.clone(), value);
        }
        Ok(Json::Object(out))
    }
}

impl Parser {
    pub(super) fn approval(&mut self, v: &Value) -> Option<ApprovalSpec> {
        let t = self.table(v, "`approve`")?;
        self.check_keys(t, KEYS, "`approve`");
        // Every mistake is reported, not only the first.
        let mut ok = true;
        let roles = match t.get("roles") {
            Some(r) => {
                let mut roles = Vec::new();
                for role in self.strings(r, "`approve.roles`").unwrap_or_default() {
                    match Role::parse(&role.value) {
                        Some(known) => roles.push(known),
                        None => {
                            self.error(
                                role.span.clone(),
                                format!(
                                    "`{}` is not a role: one of viewer, operator, admin",
                                    role.value
                                ),
                                "unknown role",
                            );
                            ok = false;
                        }
                    }
                }
                roles
            }
            // Those who may run it may decide.
            None => vec![Role::Operator],
        };
        let timeout = match t.get("timeout") {
            Some(d) => Some(self.duration(d, "`approve.timeout`")?),
            None => None,
        };
        let mut inputs = BTreeMap::new();
        if let Some(i) = t.get("inputs") {
            let table = self.table(i, "`approve.inputs`")?;
            if table.len() > MAX_INPUTS {
                self.error(
                    i.span(),
                    format!("an approval asks for at most {MAX_INPUTS} inputs"),
                    "too many",
                );
                return None;
            }
            for (name, ty) in table.iter() {
                let ty_text = self.string(ty, &format!("input `{}`", name.get_ref()))?;
                let Some((_, ty)) = InputType::ALL.iter().find(|(n, _)| *n == ty_text.value) else {
                    self.error(
                        ty_text.span,
                        format!(
                            "input `{}` is a string, number or boolean, not `{}`",
                            name.get_ref(),
                            ty_text.value
                        ),
                        "unknown type",
                    );
                    ok = false;
                    continue;
                };
                inputs.insert(name.get_ref().to_string(), *ty);
            }
        }
        if !ok {
            return None;
        }
        Some(ApprovalSpec {
            roles,
            timeout,
            inputs,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ports::Role;
    use crate::spec::StepAction;

    fn load(approve: &str) -> Result<crate::spec::Workflow, Vec<String>> {
        crate::spec::load(&format!(
            "[workflow]\nname = \"w\"\n[steps.gate]\napprove = {approve}\n"
        ))
        .map_err(|d| d.iter().map(|d| d.message.clone()).collect())
    }

    #[test]
    fn an_approval_is_read_and_its_inputs_typed() {
        let w = load("{ roles = [\"operator\"], timeout = \"24h\", inputs = { reason = \"string\", replicas = \"number\", canary = \"boolean\" } }").unwrap();
        let StepAction::Approve { spec } = &w.steps[0].action else {
            panic!("{:?}", w.steps[0].action)
        };
        assert!(
            spec.allows(Role::Operator) && spec.allows(Role::Admin) && !spec.allows(Role::Viewer)
        );
        assert_eq!(spec.timeout, Some(std::time::Duration::from_secs(86_400)));
        let given = json!({"reason": "ok", "replicas": "3", "canary": "true"});
        assert_eq!(
            spec.outputs(given.as_object().unwrap()).unwrap(),
            json!({"reason": "ok", "replicas": 3, "canary": true})
        );
        for (given, error) in [
            (
                json!({"reason": "ok", "replicas": 3}),
                "the approval needs input `canary` (boolean)",
            ),
            (
                json!({"reason": "ok", "replicas": "many", "canary": true}),
                "input `replicas` must be a number, not `many`",
            ),
            (
                json!({"reason": 1, "replicas": 3, "canary": true}),
                "input `reason` must be a string, not 1",
            ),
            (
                json!({"reason": "", "replicas": 3, "canary": true, "x": 1}),
                "`x` is not an input of this approval",
            ),
        ] {
            assert_eq!(spec.outputs(given.as_object().unwrap()).unwrap_err(), error);
        }
    }

    #[test]
    fn bad_approvals_are_refused_where_they_are_written() {
        for (text, message) in [
            (
                "{ roles = [\"boss\"] }",
                "`boss` is not a role: one of viewer, operator, admin",
            ),
            (
                "{ inputs = { n = \"int\" } }",
                "input `n` is a string, number or boolean, not `int`",
            ),
            ("{ timeout = \"soon\" }", "`approve.timeout`"),
            ("{ who = 1 }", "unknown key `who` in `approve`"),
        ] {
            let errors = load(text).unwrap_err();
            assert!(
                errors.iter().any(|e| e.starts_with(message)),
                "{text}: {errors:?}"
            );
        }
    }
}
