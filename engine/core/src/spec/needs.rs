//! Reading a step's `needs`: ids, and `{ step, status = "any" }` entries
//! for needs whose outcome does not matter.

use toml::de::DeValue;

use super::parse::{Parser, Value};
use crate::diagnostic::Spanned;

impl Parser {
    /// `needs`: a step id, or a list of ids and `{ step = "id", status =
    /// "any" }` tables; the ids, and those whose outcome does not matter.
    pub(super) fn needs(
        &mut self,
        v: &Value,
    ) -> (Vec<Spanned<String>>, std::collections::BTreeSet<String>) {
        let mut needs = Vec::new();
        let mut any = std::collections::BTreeSet::new();
        let items: Vec<&Value> = match v.get_ref() {
            DeValue::String(_) => vec![v],
            DeValue::Array(items) => items.iter().collect(),
            _ => {
                self.wrong_type(v, "`needs`", "a step id or a list of them");
                return (needs, any);
            }
        };
        for item in items {
            match item.get_ref() {
                DeValue::String(_) => needs.extend(self.string(item, "each of `needs`")),
                DeValue::Table(t) => {
                    self.check_keys(t, &["step", "status"], "a `needs` entry");
                    let Some(step) = t.get("step").and_then(|s| self.string(s, "`needs.step`"))
                    else {
                        self.error(item.span(), "a `needs` entry needs a `step`", "no `step`");
                        continue;
                    };
                    match t
                        .get("status")
                        .and_then(|s| self.string(s, "`needs.status`"))
                    {
                        Some(s) if s.value == "any" => {
                            any.insert(step.value.clone());
                        }
                        Some(s) if s.value == "succeeded" => {}
                        Some(s) => self.error(
                            s.span,
                            format!(
                                "`needs.status` is `succeeded` (the default) or `any`, not `{}`",
                                s.value
                            ),
                            "unknown status",
                        ),
                        None => {}
                    }
                    needs.push(step);
                }
                _ => self.wrong_type(
                    item,
                    "each of `needs`",
                    "a step id or `{ step = \"id\", status = \"any\" }`",
                ),
            }
        }
        (needs, any)
    }
}
