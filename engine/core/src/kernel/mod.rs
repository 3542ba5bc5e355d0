//! CUDA kernel steps, typed: what a `cuda` table asks for (the kernel, its
//! launch shape, its arguments) and how argument values become the bytes a
//! kernel receives. `weft check` reads the table with templates left
//! unrendered; the worker reads it again once they are rendered.

use serde_json::Value as Json;

mod dtype;

pub use dtype::DType;

/// The most bytes one buffer may have; a bigger one is refused before any
/// memory is taken for it.
pub const MAX_BUFFER_BYTES: u64 = 4 << 30;

/// Threads in one block: CUDA's limit on every current GPU.
pub const MAX_BLOCK_THREADS: u64 = 1024;

/// A kernel step, as its `cuda` table says.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSpec {
    pub code: KernelCode,
    /// The kernel's name (declare it `extern "C"` so NVRTC keeps it).
    pub entry: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_mem_bytes: u32,
    pub args: Vec<KernelArg>,
}

/// Where the kernel comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelCode {
    /// A `.cu` file, compiled with NVRTC on the worker.
    Source(String),
    /// PTX: the text itself, or a `.ptx` file.
    Ptx(String),
}

/// One kernel argument, in the kernel's parameter order.
#[derive(Debug, Clone, PartialEq)]
pub enum KernelArg {
    /// A value passed by value (`{ scalar = 2.0, type = "f32" }`).
    Scalar { dtype: DType, value: Json },
    /// Device memory passed as a pointer.
    Buffer(BufferArg),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BufferArg {
    /// Names the buffer in messages, and in the step's outputs when copied back.
    pub name: String,
    pub dtype: DType,
    pub init: BufferInit,
    /// Copied back into the step's outputs after the kernel ran.
    pub output: bool,
}

/// What a buffer holds before the kernel runs.
#[derive(Debug, Clone, PartialEq)]
pub enum BufferInit {
    /// `len` elements, each `fill` (zero when not given).
    Len { len: u64, fill: Option<Json> },
    /// A list of numbers (often an upstream step's output).
    Values(Json),
    /// A file of raw little-endian elements (often an upstream output buffer).
    File(String),
}

const ARG_KEYS: &[&str] = &[
    "scalar", "buffer", "type", "len", "fill", "values", "file", "output",
];

/// Whether `v` is a template the orchestrator renders later.
fn templated(v: &Json) -> bool {
    matches!(v, Json::String(s) if s.contains("{{"))
}

impl KernelArg {
    /// Reads one entry of `args`. With `rendered` false (at `weft check`),
    /// values that are still templates are taken on trust.
    pub fn from_json(v: &Json, rendered: bool) -> Result<KernelArg, String> {
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
        let check = |v: &Json| -> Result<(), String> {
            if rendered || !templated(v) {
                dtype.encode(v, &mut Vec::new())?;
            }
            Ok(())
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
                check(value).map_err(|e| format!("scalar: {e}"))?;
                Ok(KernelArg::Scalar {
                    dtype,
                    value: value.clone(),
                })
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
                let init = buffer_init(t, &name, dtype, rendered, &check)?;
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
    t: &serde_json::Map<String, Json>,
    name: &str,
    dtype: DType,
    rendered: bool,
    check: &dyn Fn(&Json) -> Result<(), String>,
) -> Result<BufferInit, String> {
    let given: Vec<&str> = ["len", "values", "file"]
        .into_iter()
        .filter(|k| t.contains_key(*k))
        .collect();
    if given.len() != 1 {
        return Err(format!(
            "buffer `{name}` needs exactly one of `len` (with an optional `fill`), `values` or `file`{}",
            if given.is_empty() { String::new() } else { format!("; it has {}", given.join(" and ")) }
        ));
    }
    if t.contains_key("fill") && given[0] != "len" {
        return Err(format!("buffer `{name}`: `fill` goes with `len`"));
    }
    let e = |m: String| format!("buffer `{name}`: {m}");
    Ok(match given[0] {
        "len" => {
            let len = &t["len"];
            let len = if !rendered && templated(len) {
                0
            } else {
                let mut b = Vec::new();
                DType::U64
                    .encode(len, &mut b)
                    .map_err(|m| e(format!("`len`: {m}")))?;
                u64::from_le_bytes(b.try_into().expect("8 bytes"))
            };
            if len.saturating_mul(dtype.size() as u64) > MAX_BUFFER_BYTES {
                return Err(e(format!(
                    "{len} elements of {} is more than the {} GiB a buffer may have",
                    dtype.name(),
                    MAX_BUFFER_BYTES >> 30
                )));
            }
            let fill = t.get("fill").cloned();
            if let Some(f) = &fill {
                check(f).map_err(|m| e(format!("`fill`: {m}")))?;
            }
            BufferInit::Len { len, fill }
        }
        "values" => {
            let v = &t["values"];
            match v {
                Json::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        check(item).map_err(|m| e(format!("value {i}: {m}")))?;
                    }
                }
                v if !rendered && templated(v) => {}
                // A rendered template may leave the list as JSON text.
                Json::String(s) if rendered => match serde_json::from_str::<Json>(s) {
                    Ok(Json::Array(_)) => {}
                    _ => return Err(e("`values` is not a list of numbers".into())),
                },
                _ => return Err(e("`values` is a list of numbers".into())),
            }
            BufferInit::Values(v.clone())
        }
        _ => match &t["file"] {
            Json::String(p) if !p.is_empty() => BufferInit::File(p.clone()),
            _ => return Err(e("`file` is a path".into())),
        },
    })
}

impl BufferInit {
    /// The buffer's bytes from `values` (for `Values` only).
    pub fn encode_values(values: &Json, dtype: DType) -> Result<Vec<u8>, String> {
        let parsed;
        let items = match values {
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
        let mut out = Vec::with_capacity(items.len() * dtype.size());
        for (i, item) in items.iter().enumerate() {
            dtype
                .encode(item, &mut out)
                .map_err(|m| format!("value {i}: {m}"))?;
        }
        Ok(out)
    }
}

fn dims(spec: &Json, key: &str) -> Result<[u32; 3], String> {
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

impl KernelSpec {
    /// Reads a rendered `cuda` table; every problem is named.
    pub fn from_json(spec: &Json) -> Result<KernelSpec, String> {
        let text = |k: &str| spec.get(k).and_then(Json::as_str).map(str::to_string);
        let code = match (text("source"), text("ptx")) {
            (Some(s), None) => KernelCode::Source(s),
            (None, Some(p)) => KernelCode::Ptx(p),
            (Some(_), Some(_)) => return Err("`cuda` takes `source` or `ptx`, not both".into()),
            (None, None) => return Err("`cuda` needs `source` (a .cu file) or `ptx`".into()),
        };
        let entry = text("entry").ok_or("`cuda` needs an `entry` (the kernel's name)")?;
        let block = dims(spec, "block")?;
        let threads: u64 = block.iter().map(|d| u64::from(*d)).product();
        if threads > MAX_BLOCK_THREADS {
            return Err(format!(
                "`cuda.block` has {threads} threads; a block has at most {MAX_BLOCK_THREADS}"
            ));
        }
        let shared_mem_bytes = match spec.get("shared-mem") {
            None => 0,
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= u32::MAX as u64)
                .ok_or("`cuda.shared-mem` is a number of bytes")? as u32,
        };
        let args = match spec.get("args") {
            None => Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    KernelArg::from_json(a, true).map_err(|e| format!("argument {i}: {e}"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("`cuda.args` is a list".into()),
        };
        let mut names = std::collections::HashSet::new();
        for a in &args {
            if let KernelArg::Buffer(b) = a {
                if !names.insert(b.name.as_str()) {
                    return Err(format!("two buffers are named `{}`", b.name));
                }
            }
        }
        Ok(KernelSpec {
            code,
            entry,
            grid: dims(spec, "grid")?,
            block,
            shared_mem_bytes,
            args,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn buffers_round_trip_through_bytes() {
        for (t, v) in [
            (DType::F32, json!([1.5, -2.0, 0.0])),
            (DType::F64, json!([1e300, -0.25])),
            (DType::I32, json!([-7, 7])),
            (DType::U32, json!([0, 4000000000u64])),
            (DType::I64, json!([i64::MIN, 1])),
            (DType::U64, json!([u64::MAX])),
            (DType::U8, json!([0, 128, 255])),
        ] {
            let bytes = BufferInit::encode_values(&v, t).unwrap();
            assert_eq!(bytes.len(), v.as_array().unwrap().len() * t.size());
            assert_eq!(Json::Array(t.decode(&bytes)), v, "{}", t.name());
        }
        // A rendered template may hand the list over as JSON text.
        let bytes = BufferInit::encode_values(&json!("[1, 2]"), DType::U32).unwrap();
        assert_eq!(DType::U32.decode(&bytes), vec![json!(1), json!(2)]);
        assert!(BufferInit::encode_values(&json!([1, "x"]), DType::U32)
            .unwrap_err()
            .contains("value 1"));
        assert_eq!(DType::F32.decode(&f32::NAN.to_le_bytes()), vec![Json::Null]);
    }

    #[test]
    fn arguments_are_checked_before_templates_and_after() {
        let arg = |v: Json, rendered| KernelArg::from_json(&v, rendered);
        assert_eq!(
            arg(json!({"scalar": 2.0, "type": "f32"}), true).unwrap(),
            KernelArg::Scalar {
                dtype: DType::F32,
                value: json!(2.0)
            }
        );
        let b = arg(
            json!({"buffer": "y", "type": "f32", "len": 8, "fill": 3.0, "output": true}),
            true,
        )
        .unwrap();
        assert!(matches!(
            b,
            KernelArg::Buffer(BufferArg {
                output: true,
                init: BufferInit::Len { len: 8, .. },
                ..
            })
        ));
        // Templates wait for the orchestrator at check time, not after.
        let t = json!({"scalar": "{{ params.n }}", "type": "u32"});
        assert!(arg(t.clone(), false).is_ok());
        assert!(arg(t, true).is_err());
        assert!(arg(
            json!({"buffer": "x", "type": "f32", "values": "{{ steps.a.outputs.x }}"}),
            false
        )
        .is_ok());
        for (bad, says) in [
            (json!({"scalar": 1}), "needs a `type`"),
            (json!({"scalar": 1, "type": "f16"}), "unknown type `f16`"),
            (json!({"scalar": 300, "type": "u8"}), "does not fit"),
            (
                json!({"scalar": 1, "buffer": "x", "type": "u8"}),
                "not both",
            ),
            (json!({"type": "u8"}), "needs `scalar"),
            (
                json!({"scalar": 1, "type": "u8", "len": 3}),
                "belongs to buffers",
            ),
            (json!({"buffer": "x", "type": "u8"}), "exactly one of"),
            (
                json!({"buffer": "x", "type": "u8", "len": 3, "file": "f"}),
                "it has len and file",
            ),
            (
                json!({"buffer": "x", "type": "u8", "values": [1], "fill": 2}),
                "`fill` goes with `len`",
            ),
            (
                json!({"buffer": "x", "type": "f64", "len": 1u64 << 40}),
                "GiB",
            ),
            (
                json!({"buffer": "x", "type": "u8", "values": [1, 2, 999]}),
                "value 2",
            ),
            (json!({"buffer": "", "type": "u8", "len": 1}), "non-empty"),
            (
                json!({"buffer": "x", "type": "u8", "len": 1, "colour": 1}),
                "unknown key `colour`",
            ),
            (json!([1]), "is a table"),
        ] {
            let e = arg(bad.clone(), false).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_spec_reads_its_shape_and_arguments() {
        let spec = KernelSpec::from_json(&json!({
            "source": "kernels/saxpy.cu", "entry": "saxpy", "grid": [4], "block": [256, 1],
            "args": [{"scalar": 2.0, "type": "f32"}, {"buffer": "x", "type": "f32", "len": 4}]
        }))
        .unwrap();
        assert_eq!(spec.code, KernelCode::Source("kernels/saxpy.cu".into()));
        assert_eq!((spec.grid, spec.block), ([4, 1, 1], [256, 1, 1]));
        assert_eq!(spec.args.len(), 2);
        for (bad, says) in [
            (json!({"entry": "k"}), "needs `source`"),
            (
                json!({"ptx": "p", "entry": "k", "block": [64, 64]}),
                "at most 1024",
            ),
            (json!({"ptx": "p", "entry": "k", "grid": [0]}), "positive"),
            (json!({"ptx": "p"}), "needs an `entry`"),
            (
                json!({"ptx": "p", "entry": "k", "args": [{"buffer": "a", "type": "u8", "len": 1}, {"buffer": "a", "type": "u8", "len": 1}]}),
                "two buffers",
            ),
            (
                json!({"ptx": "p", "entry": "k", "args": [{"scalar": "x", "type": "u8"}]}),
                "argument 0",
            ),
        ] {
            let e = KernelSpec::from_json(&bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
