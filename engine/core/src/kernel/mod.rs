//! CUDA kernel steps, typed: what a `cuda` table asks for (the kernel, its
//! launch shape, its arguments) and how argument values become the bytes a
//! kernel receives. The table is read once, at load ([`parse`]), into a
//! [`KernelSpec<Written>`] whose values may be templates; the dispatcher
//! renders it ([`render`]) into the [`KernelSpec`] a worker runs, checking
//! every value with the rules `weft check` applied to the written ones.

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value as Json};

use crate::templated::{Form, Rendered};

mod dtype;
mod parse;
mod render;

pub use dtype::DType;

/// The most bytes one buffer may have; a bigger one is refused before any
/// memory is taken for it.
pub const MAX_BUFFER_BYTES: u64 = 4 << 30;

/// Threads in one block: CUDA's limit on every current GPU.
pub const MAX_BLOCK_THREADS: u64 = 1024;

/// A kernel step, as its `cuda` table says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "", rename_all = "kebab-case")]
pub struct KernelSpec<F: Form = Rendered> {
    pub code: KernelCode,
    /// The kernel's name (declare it `extern "C"` so NVRTC keeps it).
    pub entry: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_mem_bytes: u32,
    pub args: Vec<KernelArg<F>>,
}

/// Where the kernel comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelCode {
    /// A `.cu` file, compiled with NVRTC on the worker.
    Source(String),
    /// PTX: the text itself, or a `.ptx` file.
    Ptx(String),
}

/// One kernel argument, in the kernel's parameter order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "", rename_all = "kebab-case")]
pub enum KernelArg<F: Form = Rendered> {
    /// A value passed by value (`{ scalar = 2.0, type = "f32" }`).
    Scalar { dtype: DType, value: F::Of<Number> },
    /// Device memory passed as a pointer.
    Buffer(BufferArg<F>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "", rename_all = "kebab-case")]
pub struct BufferArg<F: Form = Rendered> {
    /// Names the buffer in messages, and in the step's outputs when copied back.
    pub name: String,
    pub dtype: DType,
    pub init: BufferInit<F>,
    /// Copied back into the step's outputs after the kernel ran.
    pub output: bool,
}

/// What a buffer holds before the kernel runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "", rename_all = "kebab-case")]
pub enum BufferInit<F: Form = Rendered> {
    /// `len` elements, each `fill` (zero when not given).
    Len {
        len: F::Of<u64>,
        fill: Option<F::Of<Number>>,
    },
    /// A list of numbers (often an upstream step's output).
    Values(F::Of<Vec<Number>>),
    /// A file of raw little-endian elements (often an upstream output buffer).
    File(String),
}

/// `value` as `dtype`'s little-endian bytes; refuses what does not fit.
pub fn encode(dtype: DType, value: &Number) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(dtype.size());
    dtype.encode(&Json::Number(value.clone()), &mut out)?;
    Ok(out)
}

/// The bytes of a buffer's `values`.
pub fn encode_values(values: &[Number], dtype: DType) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(values.len() * dtype.size());
    for (i, v) in values.iter().enumerate() {
        dtype
            .encode(&Json::Number(v.clone()), &mut out)
            .map_err(|m| format!("value {i}: {m}"))?;
    }
    Ok(out)
}

/// Refuses a buffer of `len` elements bigger than [`MAX_BUFFER_BYTES`].
fn check_len(len: u64, dtype: DType) -> Result<(), String> {
    if len.saturating_mul(dtype.size() as u64) > MAX_BUFFER_BYTES {
        return Err(format!(
            "{len} elements of {} is more than the {} GiB a buffer may have",
            dtype.name(),
            MAX_BUFFER_BYTES >> 30
        ));
    }
    Ok(())
}

/// Refuses two buffers of one name (outputs are keyed by it).
fn check_names<F: Form>(args: &[KernelArg<F>]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for a in args {
        if let KernelArg::Buffer(b) = a {
            if !names.insert(b.name.as_str()) {
                return Err(format!("two buffers are named `{}`", b.name));
            }
        }
    }
    Ok(())
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
            let bytes = encode_values(&parse::numbers(&v).unwrap(), t).unwrap();
            assert_eq!(bytes.len(), v.as_array().unwrap().len() * t.size());
            assert_eq!(Json::Array(t.decode(&bytes)), v, "{}", t.name());
        }
        // A rendered template may hand the list over as JSON text.
        let bytes = encode_values(&parse::numbers(&json!("[1, 2]")).unwrap(), DType::U32).unwrap();
        assert_eq!(DType::U32.decode(&bytes), vec![json!(1), json!(2)]);
        assert!(parse::numbers(&json!([1, "x"]))
            .unwrap_err()
            .contains("value 1"));
        assert_eq!(DType::F32.decode(&f32::NAN.to_le_bytes()), vec![Json::Null]);
    }

    #[test]
    fn arguments_are_checked_before_templates_and_after() {
        let arg = |v: Json, rendered: bool| -> Result<(), String> {
            let written = KernelArg::parse(&v)?;
            if rendered {
                written.render(&crate::templated::no_templates)?;
            }
            Ok(())
        };
        assert_eq!(
            KernelArg::parse(&json!({"scalar": 2.0, "type": "f32"}))
                .unwrap()
                .render(&crate::templated::no_templates)
                .unwrap(),
            KernelArg::Scalar {
                dtype: DType::F32,
                value: Number::from_f64(2.0).unwrap()
            }
        );
        let b = KernelArg::parse(
            &json!({"buffer": "y", "type": "f32", "len": 8, "fill": 3.0, "output": true}),
        )
        .unwrap()
        .render(&crate::templated::no_templates)
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
