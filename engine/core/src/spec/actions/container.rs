//! A `container` step, typed: the image, command, environment, mounts and
//! network it asks for, and the rules on them (no Docker socket, absolute
//! paths that cannot smuggle bind options). The same rules run on the
//! values the file wrote (at `weft check`) and on what templates rendered
//! to (at dispatch, and on what a pre hook returns).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::ports::ContainerMount;
use crate::template::{render_str, Path};

/// Mount sources that hand a container the Docker engine, i.e. the host.
const DOCKER_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run",
    "/run",
    "/var",
    "/",
];

/// A container step's table. Its strings may hold templates until the
/// step is dispatched; the worker gets them rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ContainerSpec {
    pub image: String,
    /// Replaces the entrypoint (a string in the file becomes `sh -c` it).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Replaces the image's default arguments.
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// More environment, over the step's `env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub mounts: Vec<ContainerMount>,
    /// Whether the container has a network (none by default).
    #[serde(default)]
    pub network: bool,
}

/// `path` with `.`, `..` and repeated slashes taken out, as the kernel
/// would resolve it (symbolic links aside).
pub fn lexically_normal(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Whether mounting `source` would hand a container the Docker engine.
pub fn is_docker_socket(source: &str) -> bool {
    DOCKER_SOCKETS.contains(&lexically_normal(source.trim()).as_str())
}

/// Checks one mount as it will be made: both paths absolute, neither able
/// to add bind options (`:` and `,` separate them in Docker's syntax), and
/// never the Docker socket or a directory that holds it.
pub fn check_mount(mount: &ContainerMount) -> Result<(), String> {
    let (source, target) = (
        crate::run::bounded_text(&mount.source, 200),
        crate::run::bounded_text(&mount.target, 200),
    );
    for path in [&mount.source, &mount.target] {
        if !path.starts_with('/') {
            return Err(format!(
                "mount {source}:{target}: both paths must be absolute"
            ));
        }
        if path.contains([':', ',']) || path.chars().any(char::is_control) {
            return Err(format!(
                "mount {source}:{target}: a path may not hold `:`, `,` or control characters"
            ));
        }
    }
    if is_docker_socket(&mount.source) {
        return Err(format!(
            "mounting `{source}` is refused: a container with the Docker socket controls the host"
        ));
    }
    Ok(())
}

/// Splits `text` at `:` outside `{{ }}`, so a mount may be templated.
fn split_outside_templates(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if text[i..].starts_with("{{") {
            depth += 1;
            i += 2;
        } else if text[i..].starts_with("}}") && depth > 0 {
            depth -= 1;
            i += 2;
        } else {
            if bytes[i] == b':' && depth == 0 {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            i += 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// One entry of `mounts`: `"src:dst[:ro|:rw]"` or `{ source, target,
/// read-only }`. Its paths may still be templates.
pub(crate) fn mount(v: &Json) -> Result<ContainerMount, String> {
    let (source, target, read_only) = match v {
        Json::String(s) => match split_outside_templates(s).as_slice() {
            [source, target] => (source.to_string(), target.to_string(), false),
            [source, target, "ro"] => (source.to_string(), target.to_string(), true),
            [source, target, "rw"] => (source.to_string(), target.to_string(), false),
            _ => {
                return Err(format!(
                    "mount `{s}`: write `/host/path:/container/path[:ro]`"
                ))
            }
        },
        Json::Object(t) => {
            if let Some(k) = t
                .keys()
                .find(|k| !["source", "target", "read-only"].contains(&k.as_str()))
            {
                return Err(format!(
                    "unknown key `{k}` in a mount; it takes source, target and read-only"
                ));
            }
            let get = |k: &str| t.get(k).and_then(Json::as_str).map(str::to_string);
            let read_only = match t.get("read-only") {
                None => false,
                Some(Json::Bool(b)) => *b,
                Some(_) => return Err("a mount's `read-only` is true or false".into()),
            };
            match (get("source"), get("target")) {
                (Some(s), Some(d)) => (s, d, read_only),
                _ => return Err("a mount table needs `source` and `target`".into()),
            }
        }
        _ => return Err("each mount is `src:dst[:ro]` or `{ source, target, read-only }`".into()),
    };
    Ok(ContainerMount {
        source,
        target,
        read_only,
    })
}

/// A string or, when `shell` allows it, `sh -c` of one; else a list whose
/// items are strings (numbers and the like are written out as text).
fn strings(v: Option<&Json>, what: &str, shell: bool) -> Result<Option<Vec<String>>, String> {
    match v {
        None => Ok(None),
        Some(Json::String(s)) if shell => Ok(Some(vec!["sh".into(), "-c".into(), s.clone()])),
        Some(Json::Array(items)) => Ok(Some(items.iter().map(text_of).collect())),
        Some(_) if shell => Err(format!("`container.{what}` is a string or a list")),
        Some(_) => Err(format!("`container.{what}` is a list")),
    }
}

fn text_of(v: &Json) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn optional_text(v: Option<&Json>, what: &str) -> Result<Option<String>, String> {
    match v {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`container.{what}` is a string")),
    }
}

impl ContainerSpec {
    /// Reads a `container` table as written (refused keys were reported by
    /// the parser, with their spans). Values the file wrote out are checked
    /// now; templated ones when rendered.
    pub fn parse(t: &serde_json::Map<String, Json>) -> Result<Self, String> {
        let image = match t.get("image") {
            Some(Json::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Json::String(_)) => return Err("`container.image` is empty".into()),
            Some(_) => return Err("`container.image` is a string".into()),
            None => return Err("`container` needs an `image`".into()),
        };
        let env = match t.get("env") {
            None => BTreeMap::new(),
            Some(Json::Object(env)) => env.iter().map(|(k, v)| (k.clone(), text_of(v))).collect(),
            Some(_) => return Err("`container.env` is a table".into()),
        };
        let mounts = match t.get("mounts") {
            None => Vec::new(),
            Some(Json::Array(items)) => items.iter().map(mount).collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err("`container.mounts` is a list".into()),
        };
        for m in &mounts {
            if !m.source.contains("{{") && !m.target.contains("{{") {
                check_mount(m)?;
            }
        }
        Ok(ContainerSpec {
            image,
            command: strings(t.get("command"), "command", true)?,
            args: strings(t.get("args"), "args", false)?,
            env,
            workdir: optional_text(t.get("workdir"), "workdir")?,
            user: optional_text(t.get("user"), "user")?,
            mounts,
            network: match t.get("network") {
                None => false,
                Some(Json::Bool(b)) => *b,
                Some(_) => return Err("`container.network` is true or false".into()),
            },
        })
    }

    /// The table as it runs: every string rendered, then checked.
    pub fn render(&self, lookup: &dyn Fn(&Path) -> Result<Json, String>) -> Result<Self, String> {
        let r = |s: &String| render_str(s, lookup);
        let list = |l: &Option<Vec<String>>| -> Result<Option<Vec<String>>, String> {
            l.as_ref()
                .map(|items| items.iter().map(r).collect())
                .transpose()
        };
        let rendered = ContainerSpec {
            image: r(&self.image)?,
            command: list(&self.command)?,
            args: list(&self.args)?,
            env: self
                .env
                .iter()
                .map(|(k, v)| Ok((k.clone(), r(v)?)))
                .collect::<Result<_, String>>()?,
            workdir: self.workdir.as_ref().map(r).transpose()?,
            user: self.user.as_ref().map(r).transpose()?,
            mounts: self
                .mounts
                .iter()
                .map(|m| {
                    Ok(ContainerMount {
                        source: r(&m.source)?,
                        target: r(&m.target)?,
                        read_only: m.read_only,
                    })
                })
                .collect::<Result<_, String>>()?,
            network: self.network,
        };
        rendered.check()?;
        Ok(rendered)
    }

    /// Checks the table as it will run, with the rules `weft check`
    /// applies to values written in the file.
    pub fn check(&self) -> Result<(), String> {
        if self.image.trim().is_empty() {
            return Err("`container.image` rendered empty, not an image name".into());
        }
        self.mounts.iter().try_for_each(check_mount)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Json) -> Result<ContainerSpec, String> {
        ContainerSpec::parse(v.as_object().unwrap())
    }

    #[test]
    fn a_table_reads_into_its_typed_form() {
        let spec = parse(
            json!({"image": "busybox", "command": "echo hi", "env": {"A": 1},
            "args": ["-x", 2],
            "mounts": ["/data:/data:ro", {"source": "/x", "target": "/y"}], "network": true}),
        )
        .unwrap();
        assert_eq!(spec.command.unwrap(), ["sh", "-c", "echo hi"]);
        assert_eq!(spec.args.unwrap(), ["-x", "2"]);
        assert_eq!(spec.env["A"], "1");
        assert!(spec.mounts[0].read_only && !spec.mounts[1].read_only);
        assert!(spec.network);
        for (bad, says) in [
            (json!({"image": "b", "mounts": ["relative:/x"]}), "absolute"),
            (json!({"image": "b", "args": "not a list"}), "is a list"),
            (json!({"image": " "}), "empty"),
            (json!({"command": ["x"]}), "needs an `image`"),
            (
                json!({"image": "b", "mounts": ["/a:/b:rx"]}),
                "write `/host",
            ),
            (
                json!({"image": "b", "mounts": ["/var/run/docker.sock:/s"]}),
                "is refused",
            ),
            (json!({"image": "b", "network": "yes"}), "true or false"),
        ] {
            let e = parse(bad.clone()).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn templated_mounts_split_outside_templates_and_are_checked_rendered() {
        let spec = parse(json!({"image": "b", "mounts": ["{{ params.src }}:/x:ro"]})).unwrap();
        assert_eq!(spec.mounts[0].source, "{{ params.src }}");
        let lookup = |to: &'static str| move |_: &Path| -> Result<Json, String> { Ok(json!(to)) };
        let ok = spec.render(&lookup("/data")).unwrap();
        assert_eq!(ok.mounts[0].source, "/data");
        for (to, says) in [
            ("/run/../var/run/docker.sock", "is refused"),
            ("/data:/etc", "may not hold"),
            ("/data,readonly=false", "may not hold"),
            ("data", "absolute"),
        ] {
            let e = spec.render(&lookup(to)).unwrap_err();
            assert!(e.contains(says), "{to}: {e}");
        }
    }
}
