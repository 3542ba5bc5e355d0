//! Reading a `cuda` table, as written, into a [`KernelSpec<Written>`]:
//! its shape and every argument, with each value the file wrote out checked
//! now and each template left for the dispatcher.

use serde_json::{Map, Number, Value as Json};

use super::{
    check_len, check_names, encode, BufferArg, BufferInit, DType, KernelArg, KernelCode,
    KernelSpec, MAX_BLOCK_THREADS,
};
use crate::templated::{is_template, Templated, Written};

const ARG_KEYS: &[&str] = &[
    "scalar", "buffer", "type", "len", "fill", "values", "file", "output",
];

/// A JSON value as a number (a string holding one is read; `true` is 1),
/// with a message naming what it was otherwise.
pub(crate) fn number(v: &Json) -> Result<Number, String> {
    match v {
        Json::Number(n) => Ok(n.clone()),
        Json::String(s) => serde_json::from_str::<Number>(s.trim())
            .map_err(|_| format!("`{}` is not a number", crate::run::bounded_text(s, 120))),
        Json::Bool(b) => Ok(Number::from(u8::from(*b))),
        other => Err(format!(
            "{} is not a number",
            crate::templated::shown(other)
        )),
    }
}

/// A list of numbers: a JSON list, or JSON text holding one (what a
/// template inside a longer string renders to).
pub(crate) fn numbers(v: &Json) -> Result<Vec<Number>, String> {
    let parsed;
    let items = match v {
        Json::Array(items) => items,
        Json::String(s) => match serde_json::from_str::<Json>(s) {
            Ok(Json::Array(items)) => {
                parsed = items;
                &parsed
            }
            _ => return Err("`values` is not a list of numbers".into()),
        },
        _ => return Err("`values` is a list of numbers".into()),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| number(item).map_err(|m| format!("value {i}: {m}")))
        .collect()
}

/// A whole count (a buffer's `len`).
pub(crate) fn count(v: &Json) -> Result<u64, String> {
    let n = number(v)?;
    n.as_u64()
        .ok_or_else(|| format!("{n} is not a count (a whole number from 0)"))
}

/// A value the file wrote, read by `read`, or a template left for later.
fn templated<T>(
    v: &Json,
    read: impl Fn(&Json) -> Result<T, String>,
) -> Result<Templated<T>, String> {
    if is_template(v) {
        Ok(Templated::Template(
            v.as_str().unwrap_or_default().to_string(),
        ))
    } else {
        read(v).map(Templated::Value)
    }
}

fn text(v: Option<&Json>, what: &str) -> Result<Option<String>, String> {
    match v {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{what} is a string")),
    }
}

fn dims(spec: &Map<String, Json>, key: &str) -> Result<[u32; 3], String> {
    let Some(v) = spec.get(key) else {
        return Ok([1, 1, 1]);
    };
    let items = v
        .as_array()
        .filter(|a| (1..=3).contains(&a.len()))
        .ok_or_else(|| format!("`cuda.{key}` is a list of 1 to 3 integers"))?;
    let mut out = [1u32; 3];
    for (slot, item) in out.iter_mut().zip(items) {
        *slot = item
            .as_u64()
            .filter(|n| (1..=u32::MAX as u64).contains(n))
            .ok_or_else(|| format!("`cuda.{key}` holds positive integers"))? as u32;
    }
    Ok(out)
}

impl KernelSpec<Written> {
    /// Reads a `cuda` table as written; every problem is named.
    pub fn parse(spec: &Json) -> Result<Self, String> {
        let Json::Object(t) = spec else {
            return Err("`cuda` is a table".into());
        };
        let code = match (
            text(t.get("source"), "`cuda.source`")?,
            text(t.get("ptx"), "`cuda.ptx`")?,
        ) {
            (Some(s), None) => KernelCode::Source(s),
            (None, Some(p)) => KernelCode::Ptx(p),
            (Some(_), Some(_)) => return Err("`cuda` takes `source` or `ptx`, not both".into()),
            (None, None) => return Err("`cuda` needs `source` (a .cu file) or `ptx`".into()),
        };
        let entry = text(t.get("entry"), "`cuda.entry`")?
            .ok_or("`cuda` needs an `entry` (the kernel's name)")?;
        let block = dims(t, "block")?;
        let threads: u64 = block.iter().map(|d| u64::from(*d)).product();
        if threads > MAX_BLOCK_THREADS {
            return Err(format!(
                "`cuda.block` has {threads} threads; a block has at most {MAX_BLOCK_THREADS}"
            ));
        }
        let shared_mem_bytes = match t.get("shared-mem") {
            None => 0,
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= u32::MAX as u64)
                .ok_or("`cuda.shared-mem` is a number of bytes")? as u32,
        };
        let args = match t.get("args") {
            None => Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, a)| KernelArg::parse(a).map_err(|e| format!("argument {i}: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err("`cuda.args` is a list".into()),
        };
        check_names(&args)?;
        Ok(KernelSpec {
            code,
            entry,
            grid: dims(t, "grid")?,
            block,
            shared_mem_bytes,
            args,
        })
    }
}

impl KernelArg<Written> {
    /// Reads one entry of `args` as written.
    pub fn parse(v: &Json) -> Result<Self, String> {
        let Json::Object(t) = v else {
            return Err("each kernel argument is a table: `{ scalar = 2.0, type = \"f32\" }` or `{ buffer = \"x\", type = \"f32\", len = 1024 }`".into());
        };
        if let Some(k) = t.keys().find(|k| !ARG_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown key `{k}` in a kernel argument; expected one of {}",
                ARG_KEYS.join(", ")
            ));
        }
        let dtype = match t.get("type") {
            Some(Json::String(s)) => DType::parse(s).ok_or_else(|| {
                format!(
                    "unknown type `{s}`; expected one of {}",
                    DType::ALL.map(DType::name).join(", ")
                )
            })?,
            Some(_) => return Err("`type` is a string such as \"f32\"".into()),
            None => {
                return Err(format!(
                    "a kernel argument needs a `type` ({})",
                    DType::ALL.map(DType::name).join(", ")
                ))
            }
        };
        // A value written out is checked against its type now.
        let scalar = |v: &Json| {
            let n = number(v)?;
            encode(dtype, &n)?;
            Ok(n)
        };
        match (t.get("scalar"), t.get("buffer")) {
            (Some(_), Some(_)) => Err("an argument is a `scalar` or a `buffer`, not both".into()),
            (None, None) => {
                Err("a kernel argument needs `scalar = <value>` or `buffer = \"<name>\"`".into())
            }
            (Some(value), None) => {
                if let Some(k) = ["len", "fill", "values", "file", "output"]
                    .iter()
                    .find(|k| t.contains_key(**k))
                {
                    return Err(format!("`{k}` belongs to buffers, not scalars"));
                }
                let value = templated(value, scalar).map_err(|e| format!("scalar: {e}"))?;
                Ok(KernelArg::Scalar { dtype, value })
            }
            (None, Some(name)) => {
                let name = match name {
                    Json::String(s) if !s.is_empty() => s.clone(),
                    _ => return Err("`buffer` is the buffer's name, a non-empty string".into()),
                };
                let output = match t.get("output") {
                    None => false,
                    Some(Json::Bool(b)) => *b,
                    Some(_) => return Err(format!("buffer `{name}`: `output` is true or false")),
                };
                let init =
                    buffer_init(t, dtype, &scalar).map_err(|m| match m.starts_with("needs") {
                        true => format!("buffer `{name}` {m}"),
                        false => format!("buffer `{name}`: {m}"),
                    })?;
                Ok(KernelArg::Buffer(BufferArg {
                    name,
                    dtype,
                    init,
                    output,
                }))
            }
        }
    }
}

fn buffer_init(
    t: &Map<String, Json>,
    dtype: DType,
    scalar: &dyn Fn(&Json) -> Result<Number, String>,
) -> Result<BufferInit<Written>, String> {
    let given: Vec<&str> = ["len", "values", "file"]
        .into_iter()
        .filter(|k| t.contains_key(*k))
        .collect();
    if given.len() != 1 {
        return Err(format!(
            "needs exactly one of `len` (with an optional `fill`), `values` or `file`{}",
            if given.is_empty() {
                String::new()
            } else {
                format!("; it has {}", given.join(" and "))
            }
        ));
    }
    if t.contains_key("fill") && given[0] != "len" {
        return Err("`fill` goes with `len`".into());
    }
    Ok(match given[0] {
        "len" => {
            let len = templated(&t["len"], |v| {
                let n = count(v)?;
                check_len(n, dtype)?;
                Ok(n)
            })
            .map_err(|m| {
                if m.contains("GiB") {
                    m
                } else {
                    format!("`len`: {m}")
                }
            })?;
            let fill = t
                .get("fill")
                .map(|f| templated(f, scalar))
                .transpose()
                .map_err(|m| format!("`fill`: {m}"))?;
            BufferInit::Len { len, fill }
        }
        "values" => BufferInit::Values(templated(&t["values"], |v| {
            let values = numbers(v)?;
            super::encode_values(&values, dtype)?;
            Ok(values)
        })?),
        _ => match &t["file"] {
            Json::String(p) if !p.is_empty() => BufferInit::File(p.clone()),
            _ => return Err("`file` is a path".into()),
        },
    })
}
