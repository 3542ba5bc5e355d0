//! `when` conditions in CEL (the Common Expression Language, as used by
//! Kubernetes and Hatchet): compile, list references, evaluate.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::{Context, Program, Value};
use serde_json::Value as Json;

/// A compiled `when` condition.
pub struct Condition {
    program: Program,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Condition")
    }
}

/// A compile error with a 0-based character offset into the expression, when known.
#[derive(Debug, Clone)]
pub struct CompileError {
    pub message: String,
    pub offset: Option<usize>,
}

impl Condition {
    pub fn compile(source: &str) -> Result<Self, CompileError> {
        // The parser is recursive: refuse absurd nesting before it sees it.
        let depth = source.chars().fold((0i32, 0i32), |(d, max), c| match c {
            '(' | '[' | '{' => (d + 1, max.max(d + 1)),
            ')' | ']' | '}' => (d - 1, max),
            _ => (d, max),
        });
        if depth.1 > 32 || source.len() > 4096 {
            return Err(CompileError {
                message: "condition is too long or too deeply nested".into(),
                offset: None,
            });
        }
        match std::panic::catch_unwind(|| Program::compile(source)) {
            Ok(Ok(program)) => Ok(Self { program }),
            Ok(Err(errors)) => {
                let first = errors.errors.first();
                Err(CompileError {
                    message: first
                        .map_or_else(|| "invalid expression".to_string(), |e| e.msg.clone()),
                    offset: first.and_then(|e| usize::try_from(e.pos.1).ok()),
                })
            }
            Err(_) => Err(CompileError {
                message: "invalid expression".into(),
                offset: None,
            }),
        }
    }

    /// Every qualified name the expression reads, such as
    /// `["steps", "train", "outputs", "accuracy"]` or `["params", "n"]`.
    pub fn references(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        walk(self.program.expression(), &mut out);
        out
    }

    /// Evaluates against `variables` (an object of `params`, `steps`, `run`, ...);
    /// the result must be a boolean.
    pub fn evaluate(&self, variables: &serde_json::Map<String, Json>) -> Result<bool, String> {
        let mut context = Context::default();
        for (name, value) in variables {
            context
                .add_variable(name.as_str(), value.clone())
                .map_err(|e| format!("cannot use `{name}` in a condition: {e}"))?;
        }
        match self.program.execute(&context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("condition gave {other:?}, not true or false")),
            Err(e) => Err(format!("condition failed: {e}")),
        }
    }
}

fn qualified(expr: &Expr) -> Option<Vec<String>> {
    let mut segments = Vec::new();
    let mut cur = expr;
    loop {
        match cur {
            Expr::Ident(name) => {
                segments.push(name.clone());
                segments.reverse();
                return Some(segments);
            }
            Expr::Select(s) if !s.test => {
                segments.push(s.field.clone());
                cur = &s.operand.expr;
            }
            // `steps["saxpy-check"]` is an index call with a string literal.
            Expr::Call(c) if c.func_name == "_[_]" && c.args.len() == 2 => match &c.args[1].expr {
                Expr::Literal(cel::common::ast::LiteralValue::String(s)) => {
                    segments.push(s.inner().to_string());
                    cur = &c.args[0].expr;
                }
                _ => return None,
            },
            _ => return None,
        }
    }
}

fn walk(e: &IdedExpr, out: &mut Vec<Vec<String>>) {
    if let Some(q) = qualified(&e.expr) {
        out.push(q);
        return;
    }
    match &e.expr {
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                walk(t, out);
            }
            c.args.iter().for_each(|a| walk(a, out));
        }
        Expr::Select(s) => walk(&s.operand, out),
        Expr::List(l) => l.elements.iter().for_each(|a| walk(a, out)),
        Expr::Map(m) => m.entries.iter().for_each(|en| {
            if let EntryExpr::MapEntry(me) = &en.expr {
                walk(&me.key, out);
                walk(&me.value, out);
            }
        }),
        Expr::Struct(s) => s.entries.iter().for_each(|en| {
            if let EntryExpr::StructField(f) = &en.expr {
                walk(&f.value, out);
            }
        }),
        Expr::Comprehension(c) => {
            walk(&c.iter_range, out);
            // Names bound by the macro (`x` in `list.all(x, ...)`) are not references.
            let mut inner = Vec::new();
            walk(&c.loop_step, &mut inner);
            walk(&c.result, &mut inner);
            walk(&c.loop_cond, &mut inner);
            out.extend(inner.into_iter().filter(|r| {
                r[0] != c.iter_var && r[0] != c.accu_var && Some(&r[0]) != c.iter_var2.as_ref()
            }));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Json) -> serde_json::Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn evaluates_over_params_and_outputs() {
        let c = Condition::compile("steps.eval.outputs.accuracy >= params.min").unwrap();
        let v = vars(
            json!({"params": {"min": 0.9}, "steps": {"eval": {"outputs": {"accuracy": 0.95}}}}),
        );
        assert!(c.evaluate(&v).unwrap());
        let v = vars(
            json!({"params": {"min": 0.99}, "steps": {"eval": {"outputs": {"accuracy": 0.95}}}}),
        );
        assert!(!c.evaluate(&v).unwrap());
    }

    #[test]
    fn lists_references_including_indexed_ids() {
        let c = Condition::compile(
            r#"steps["saxpy-check"].outputs.ok && params.go && [1,2].all(x, x > 0)"#,
        )
        .unwrap();
        let refs = c.references();
        assert!(refs.contains(&vec![
            "steps".into(),
            "saxpy-check".into(),
            "outputs".into(),
            "ok".into()
        ]));
        assert!(refs.contains(&vec!["params".into(), "go".into()]));
        assert!(!refs.iter().any(|r| r[0] == "x"));
    }

    #[test]
    fn syntax_errors_and_non_booleans_are_reported() {
        assert!(Condition::compile("params.x >").is_err());
        let c = Condition::compile("params.x").unwrap();
        assert!(c.evaluate(&vars(json!({"params": {"x": 3}}))).is_err());
    }
}
