//! A kernel runtime without a GPU, and the contract every kernel runtime
//! passes. [`CpuKernels`] runs a few reference kernels on the CPU by their
//! entry name (the code itself is not compiled): `saxpy` and `sum` as in
//! `workflows/gpu/kernels/`, and `describe`, which takes arguments of any
//! type. It takes the same [`KernelLaunch`] the real runtime does, so a
//! whole `cuda` step (templates, argument typing, buffers in and out,
//! outputs inline and as files, errors) is tested where no GPU is.

use async_trait::async_trait;
use weft_core::kernel::DType;
use weft_core::ports::{
    BufferData, KernelLaunch, KernelOutput, KernelReport, KernelRuntime, LaunchArg, LaunchCode,
};
use weft_core::Error;

/// CUDA C++ of the reference kernels, as the examples ship them.
pub const SAXPY_CU: &str = include_str!("../../../workflows/gpu/kernels/saxpy.cu");
pub const REDUCE_CU: &str = include_str!("../../../workflows/gpu/kernels/reduce.cu");

/// Runs the reference kernels on the CPU; any other entry is refused as an
/// unknown kernel, as a module without it would be.
#[derive(Debug, Default, Clone)]
pub struct CpuKernels;

/// One argument as the kernel sees it: a scalar's value, or a buffer.
enum Arg {
    Scalar(DType, f64),
    Buffer {
        name: String,
        dtype: DType,
        bytes: Vec<u8>,
        output: bool,
    },
}

fn invalid(entry: &str, what: String) -> Error {
    Error::Invalid(format!("kernel `{entry}`: {what}"))
}

fn number(dtype: DType, bytes: &[u8]) -> f64 {
    dtype
        .decode(bytes)
        .first()
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The arguments' types, checked against what kernel `entry` declares.
fn expect(entry: &str, args: &[Arg], want: &[(&str, DType)]) -> Result<(), Error> {
    if args.len() != want.len() {
        return Err(invalid(
            entry,
            format!("takes {} arguments, not {}", want.len(), args.len()),
        ));
    }
    for (i, (arg, (kind, dtype))) in args.iter().zip(want).enumerate() {
        let (is_kind, is_type) = match arg {
            Arg::Scalar(t, _) => ("scalar", *t),
            Arg::Buffer { dtype, .. } => ("buffer", *dtype),
        };
        if is_kind != *kind || is_type != *dtype {
            return Err(invalid(
                entry,
                format!(
                    "argument {i} is a {kind} of {}, not a {is_kind} of {}",
                    dtype.name(),
                    is_type.name()
                ),
            ));
        }
    }
    Ok(())
}

impl CpuKernels {
    fn run(entry: &str, threads: u64, args: &mut [Arg]) -> Result<(), Error> {
        match entry {
            // y[i] = a * x[i] + y[i] for i < n, one thread per element.
            "saxpy" => {
                use DType::{F32, U32};
                expect(
                    entry,
                    args,
                    &[
                        ("scalar", F32),
                        ("buffer", F32),
                        ("buffer", F32),
                        ("scalar", U32),
                    ],
                )?;
                let (Arg::Scalar(_, a), Arg::Scalar(_, n)) = (&args[0], &args[3]) else {
                    unreachable!("checked above")
                };
                let (a, n) = (*a as f32, (*n as u64).min(threads) as usize);
                let Arg::Buffer { bytes: x, .. } = &args[1] else {
                    unreachable!("checked above")
                };
                let x = f32s(x);
                let Arg::Buffer { bytes: y, .. } = &mut args[2] else {
                    unreachable!("checked above")
                };
                let mut out = f32s(y);
                if n > x.len() || n > out.len() {
                    return Err(invalid(
                        entry,
                        "an index past the end of a buffer (an illegal address)".into(),
                    ));
                }
                for i in 0..n {
                    out[i] += a * x[i];
                }
                *y = to_bytes(&out);
            }
            // sum[0] += the sum of x[..n] (a grid-stride loop covers all).
            "sum" => {
                use DType::{F32, U32};
                expect(
                    entry,
                    args,
                    &[("buffer", F32), ("buffer", F32), ("scalar", U32)],
                )?;
                let Arg::Scalar(_, n) = &args[2] else {
                    unreachable!("checked above")
                };
                let n = *n as usize;
                let Arg::Buffer { bytes: x, .. } = &args[0] else {
                    unreachable!("checked above")
                };
                let x = f32s(x);
                if n > x.len() {
                    return Err(invalid(
                        entry,
                        "an index past the end of a buffer (an illegal address)".into(),
                    ));
                }
                let total: f32 = x[..n].iter().sum();
                let Arg::Buffer { bytes: sum, .. } = &mut args[1] else {
                    unreachable!("checked above")
                };
                let mut s = f32s(sum);
                let first = s
                    .first_mut()
                    .ok_or_else(|| invalid(entry, "`sum` is empty".into()))?;
                *first += total;
                *sum = to_bytes(&s);
            }
            // out[k] (f64) = the k-th scalar's value, then each input
            // buffer's element count and sum, for any types.
            "describe" => {
                let mut facts = Vec::new();
                for arg in args.iter() {
                    match arg {
                        Arg::Scalar(_, v) => facts.push(*v),
                        Arg::Buffer {
                            dtype,
                            bytes,
                            output: false,
                            ..
                        } => {
                            let values = dtype.decode(bytes);
                            facts.push(values.len() as f64);
                            facts.push(values.iter().filter_map(|v| v.as_f64()).sum());
                        }
                        Arg::Buffer { .. } => {}
                    }
                }
                let out = args
                    .iter_mut()
                    .find_map(|a| match a {
                        Arg::Buffer {
                            name,
                            dtype: DType::F64,
                            bytes,
                            output: true,
                        } if name == "out" => Some(bytes),
                        _ => None,
                    })
                    .ok_or_else(|| invalid(entry, "needs an f64 output buffer `out`".into()))?;
                let room = out.len() / 8;
                *out = facts
                    .iter()
                    .chain(std::iter::repeat(&0.0))
                    .take(room)
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
            }
            other => return Err(invalid(other, "no such kernel in the module".into())),
        }
        Ok(())
    }
}

#[async_trait]
impl KernelRuntime for CpuKernels {
    async fn launch(&self, _device: &str, launch: KernelLaunch) -> Result<KernelReport, Error> {
        if let LaunchCode::Source { text, name } = &launch.code {
            if !text.contains(&launch.entry) {
                return Err(invalid(
                    &launch.entry,
                    format!("{name} defines no such kernel"),
                ));
            }
        }
        let mut args: Vec<Arg> = launch
            .args
            .into_iter()
            .map(|a| match a {
                LaunchArg::Scalar { dtype, bytes } => Arg::Scalar(dtype, number(dtype, &bytes)),
                LaunchArg::Buffer {
                    name,
                    dtype,
                    data,
                    output,
                } => Arg::Buffer {
                    name,
                    dtype,
                    bytes: match data {
                        BufferData::Bytes(b) => b,
                        BufferData::Fill { len, element } => element.repeat(len as usize),
                    },
                    output,
                },
            })
            .collect();
        let threads = launch
            .grid
            .iter()
            .chain(&launch.block)
            .map(|d| u64::from(*d))
            .product();
        Self::run(&launch.entry, threads, &mut args)?;
        let outputs = args
            .into_iter()
            .filter_map(|a| match a {
                Arg::Buffer {
                    name,
                    dtype,
                    bytes,
                    output: true,
                } => Some(KernelOutput { name, dtype, bytes }),
                _ => None,
            })
            .collect();
        Ok(KernelReport {
            outputs,
            compile: "ptx".into(),
            compile_ms: 0.0,
            kernel_ms: 0.0,
            total_ms: 0.0,
            log: String::new(),
        })
    }
}

fn f32_buffer(name: &str, data: BufferData, output: bool) -> LaunchArg {
    LaunchArg::Buffer {
        name: name.into(),
        dtype: DType::F32,
        data,
        output,
    }
}

/// SAXPY over `n` elements: a = 2, x = 0..n, y = 1 everywhere.
pub fn saxpy_launch(n: u32) -> KernelLaunch {
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    KernelLaunch {
        code: LaunchCode::Source {
            name: "saxpy.cu".into(),
            text: SAXPY_CU.into(),
        },
        entry: "saxpy".into(),
        grid: [n.div_ceil(256), 1, 1],
        block: [256, 1, 1],
        shared_mem_bytes: 0,
        args: vec![
            LaunchArg::Scalar {
                dtype: DType::F32,
                bytes: 2f32.to_le_bytes().to_vec(),
            },
            f32_buffer("x", BufferData::Bytes(to_bytes(&x)), false),
            f32_buffer(
                "y",
                BufferData::Fill {
                    len: u64::from(n),
                    element: 1f32.to_le_bytes().to_vec(),
                },
                true,
            ),
            LaunchArg::Scalar {
                dtype: DType::U32,
                bytes: n.to_le_bytes().to_vec(),
            },
        ],
    }
}

/// Asserts that `bytes` are the `y` of [`saxpy_launch`]`(n)`: 2x + 1.
pub fn check_saxpy(bytes: &[u8], n: u32) {
    let y = f32s(bytes);
    assert_eq!(y.len(), n as usize);
    for (i, v) in y.iter().enumerate() {
        assert_eq!(*v, 2.0 * i as f32 + 1.0, "y[{i}]");
    }
}

/// Contract: SAXPY computes y = 2x + 1, and only the output buffer comes back.
pub async fn saxpy_computes_and_returns_only_outputs(runtime: &dyn KernelRuntime, device: &str) {
    let n = 4096;
    let report = runtime.launch(device, saxpy_launch(n)).await.unwrap();
    assert_eq!(report.outputs.len(), 1, "only `y` is an output");
    let y = &report.outputs[0];
    assert_eq!((y.name.as_str(), y.dtype), ("y", DType::F32));
    check_saxpy(&y.bytes, n);
}

/// Contract: the reduction of a million ones is a million.
pub async fn a_reduction_sums_a_large_filled_buffer(runtime: &dyn KernelRuntime, device: &str) {
    let n: u32 = 1 << 20;
    let launch = KernelLaunch {
        code: LaunchCode::Source {
            name: "reduce.cu".into(),
            text: REDUCE_CU.into(),
        },
        entry: "sum".into(),
        grid: [120, 1, 1],
        block: [256, 1, 1],
        shared_mem_bytes: 0,
        args: vec![
            f32_buffer(
                "x",
                BufferData::Fill {
                    len: u64::from(n),
                    element: 1f32.to_le_bytes().to_vec(),
                },
                false,
            ),
            f32_buffer("sum", BufferData::Bytes(vec![0; 4]), true),
            LaunchArg::Scalar {
                dtype: DType::U32,
                bytes: n.to_le_bytes().to_vec(),
            },
        ],
    };
    let report = runtime.launch(device, launch).await.unwrap();
    assert_eq!(f32s(&report.outputs[0].bytes), vec![n as f32]);
}

/// Contract: an entry the code does not define is `Invalid`, not a crash.
pub async fn an_unknown_entry_is_invalid(runtime: &dyn KernelRuntime, device: &str) {
    let mut launch = saxpy_launch(16);
    launch.entry = "no_such_kernel".into();
    match runtime.launch(device, launch).await {
        Err(Error::Invalid(_)) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Runs every `KernelRuntime` contract case as its own test, on `device`,
/// each with the attributes given last (for example an `#[ignore]` where
/// the runtime needs a GPU).
#[macro_export]
macro_rules! kernel_runtime_contract {
    ($make:expr, $device:expr $(, #[$attr:meta])* $(,)?) => {
        mod kernel_runtime_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::kernel_runtime_contract!(@case [$(#[$attr])*] $make; $device; saxpy_computes_and_returns_only_outputs);
            $crate::kernel_runtime_contract!(@case [$(#[$attr])*] $make; $device; a_reduction_sums_a_large_filled_buffer);
            $crate::kernel_runtime_contract!(@case [$(#[$attr])*] $make; $device; an_unknown_entry_is_invalid);
        }
    };
    (@case [$($attrs:tt)*] $make:expr; $device:expr; $case:ident) => {
        #[tokio::test]
        $($attrs)*
        async fn $case() {
            let runtime = $make;
            $crate::kernels::$case(&runtime, $device).await;
        }
    };
}
