//! `{{ ... }}` templating: parse a string into text and references, list the
//! references for validation, and render with values looked up by path.
//!
//! A reference is a path: `params.epochs`, `steps.train.outputs.accuracy`,
//! `steps.prepare.outputs[0].rows`, `run.id`, `workflow.name`, `item`.

use std::fmt;

use serde_json::Value as Json;

/// One segment of a reference path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A reference such as `steps.train.outputs.accuracy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(pub Vec<Segment>);

impl Path {
    pub fn root(&self) -> &str {
        match self.0.first() {
            Some(Segment::Key(k)) => k,
            _ => "",
        }
    }

    /// The key at `index`, if that segment is a key.
    pub fn key(&self, index: usize) -> Option<&str> {
        match self.0.get(index) {
            Some(Segment::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Follows the segments from `start` into `value`.
    pub fn select<'v>(&self, value: &'v Json, start: usize) -> Option<&'v Json> {
        let mut cur = value;
        for seg in &self.0[start.min(self.0.len())..] {
            cur = match seg {
                Segment::Key(k) => cur.get(k.as_str())?,
                Segment::Index(i) => cur.get(*i)?,
            };
        }
        Some(cur)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// A reference and its byte range (of the whole `{{ ... }}`) in the template text.
    Ref(Path, std::ops::Range<usize>),
}

/// A parsed template string.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

/// A template syntax error, with its byte range in the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub range: std::ops::Range<usize>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, SyntaxError> {
        let mut parts = Vec::new();
        let mut rest_start = 0;
        while let Some(open_rel) = text[rest_start..].find("{{") {
            let open = rest_start + open_rel;
            if open > rest_start {
                parts.push(Part::Text(text[rest_start..open].to_string()));
            }
            let Some(close_rel) = text[open + 2..].find("}}") else {
                return Err(SyntaxError {
                    message: "`{{` is never closed with `}}`".into(),
                    range: open..text.len(),
                });
            };
            let close = open + 2 + close_rel;
            let inner = &text[open + 2..close];
            let path = parse_path(inner.trim()).map_err(|message| SyntaxError {
                message,
                range: open..close + 2,
            })?;
            parts.push(Part::Ref(path, open..close + 2));
            rest_start = close + 2;
        }
        if rest_start < text.len() {
            parts.push(Part::Text(text[rest_start..].to_string()));
        }
        Ok(Self { parts })
    }

    pub fn references(&self) -> impl Iterator<Item = (&Path, &std::ops::Range<usize>)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(path, range) => Some((path, range)),
            Part::Text(_) => None,
        })
    }

    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Renders to a string; strings are inserted as-is, other values as JSON.
    pub fn render(&self, lookup: &dyn Fn(&Path) -> Result<Json, String>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Ref(path, _) => match lookup(path)? {
                    Json::String(s) => out.push_str(&s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }

    /// A template that is exactly one reference yields that value (a list
    /// stays a list); anything else renders to a string.
    pub fn evaluate(&self, lookup: &dyn Fn(&Path) -> Result<Json, String>) -> Result<Json, String> {
        match self.parts.as_slice() {
            [Part::Ref(path, _)] => lookup(path),
            _ => self.render(lookup).map(Json::String),
        }
    }
}

/// Renders `text` if it holds templates; returns it unchanged otherwise.
pub fn render_str(
    text: &str,
    lookup: &dyn Fn(&Path) -> Result<Json, String>,
) -> Result<String, String> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    Template::parse(text).map_err(|e| e.message)?.render(lookup)
}

/// Renders every string inside `value`; a string that is exactly one
/// reference becomes the referenced value (a list stays a list).
pub fn render_json(
    value: &Json,
    lookup: &dyn Fn(&Path) -> Result<Json, String>,
) -> Result<Json, String> {
    Ok(match value {
        Json::String(text) if text.contains("{{") => Template::parse(text)
            .map_err(|e| e.message)?
            .evaluate(lookup)?,
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|i| render_json(i, lookup))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, lookup)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn parse_path(text: &str) -> Result<Path, String> {
    if text.is_empty() {
        return Err("empty `{{ }}`: write a reference such as `{{ params.name }}`".into());
    }
    let mut segs = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut expect_key = true;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if expect_key {
            let end = text[i..]
                .find(|c: char| !is_ident_char(c))
                .map_or(text.len(), |n| i + n);
            if end == i {
                return Err(format!(
                    "`{text}` is not a reference: expected a name at `{}`",
                    &text[i..]
                ));
            }
            segs.push(Segment::Key(text[i..end].to_string()));
            i = end;
            expect_key = false;
        } else if c == '.' {
            i += 1;
            expect_key = true;
        } else if c == '[' {
            let close = text[i..]
                .find(']')
                .map(|n| i + n)
                .ok_or_else(|| format!("`{text}`: `[` is never closed"))?;
            let inner = text[i + 1..close].trim();
            if let Ok(n) = inner.parse::<usize>() {
                segs.push(Segment::Index(n));
            } else if inner.len() >= 2
                && ((inner.starts_with('"') && inner.ends_with('"'))
                    || (inner.starts_with('\'') && inner.ends_with('\'')))
            {
                segs.push(Segment::Key(inner[1..inner.len() - 1].to_string()));
            } else {
                return Err(format!(
                    "`{text}`: `[{inner}]` must be an index or a quoted key"
                ));
            }
            i = close + 1;
        } else {
            return Err(format!(
                "`{text}` is not a reference: templates hold a path like `steps.train.outputs.accuracy`, not expressions"
            ));
        }
    }
    if expect_key {
        return Err(format!("`{text}` ends with `.`"));
    }
    Ok(Path(segs))
}

/// Replaces each `{{ ... }}` of `text` for which `value` (given the trimmed
/// inside) has a value, leaving every other character as it is: how the
/// worker fills references a job carries as written (secrets, artifacts).
pub fn fill_references(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let filled = after
            .find("}}")
            .and_then(|close| value(after[..close].trim()).map(|v| (v, close)));
        match filled {
            Some((v, close)) => {
                out.push_str(&v);
                rest = &after[close + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup(path: &Path) -> Result<Json, String> {
        let root = json!({"params": {"n": 3, "shards": ["a", "b"]}, "steps": {"fetch-data": {"outputs": {"rows": 10}}}});
        path.select(&root, 0)
            .cloned()
            .ok_or_else(|| format!("no {path}"))
    }

    #[test]
    fn renders_text_and_references() {
        let t = Template::parse("n={{ params.n }} rows={{steps.fetch-data.outputs.rows}}").unwrap();
        assert_eq!(t.render(&lookup).unwrap(), "n=3 rows=10");
    }

    #[test]
    fn a_lone_reference_keeps_its_type() {
        let t = Template::parse("{{ params.shards }}").unwrap();
        assert_eq!(t.evaluate(&lookup).unwrap(), json!(["a", "b"]));
        let t = Template::parse("{{ params.shards[1] }}").unwrap();
        assert_eq!(t.evaluate(&lookup).unwrap(), json!("b"));
    }

    #[test]
    fn syntax_errors_point_at_the_template() {
        let e = Template::parse("x {{ params.n").unwrap_err();
        assert_eq!(e.range.start, 2);
        assert!(Template::parse("{{ a + b }}").is_err());
        assert!(Template::parse("{{ }}").is_err());
        assert!(Template::parse("{{ a. }}").is_err());
    }

    #[test]
    fn missing_values_are_errors() {
        let t = Template::parse("{{ params.nope }}").unwrap();
        assert!(t.render(&lookup).is_err());
    }
}
