//! Runs a `cuda` step through the worker's [`KernelRuntime`]: reads the
//! kernel and its argument values here (files relative to the worker's
//! directory, as for shell steps), launches on the GPU the step holds, and
//! turns output buffers into outputs: a list of numbers when small, a file
//! on this worker when large.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};
use weft_core::kernel::{
    encode, encode_values, BufferInit, KernelArg, KernelCode, KernelSpec, MAX_BUFFER_BYTES,
};
use weft_core::ports::{
    gpu_label, BufferData, KernelLaunch, KernelReport, KernelRuntime, LaunchArg, LaunchCode,
};
use weft_core::run::{FailureKind, Outcome};
use weft_core::spec::units::format_duration;

use crate::attempt::{bounded, Attempt, Ended};
use crate::Options;

/// An output buffer up to this size is inlined in the outputs as a list;
/// a larger one is written to a file and the outputs say where.
pub const INLINE_OUTPUT_BYTES: usize = 64 << 10;

fn failed(kind: FailureKind, reason: String, retryable: bool) -> Outcome {
    Outcome::Failed {
        reason,
        exit_code: None,
        retryable,
        kind,
    }
}

fn resolve(options: &Options, path: &str) -> PathBuf {
    let p = Path::new(path);
    match &options.cwd {
        Some(cwd) if p.is_relative() => cwd.join(p),
        _ => p.to_path_buf(),
    }
}

fn read_file(options: &Options, path: &str, what: &str) -> Result<Vec<u8>, String> {
    let full = resolve(options, path);
    let meta = std::fs::metadata(&full).map_err(|e| format!("{what} {}: {e}", full.display()))?;
    if meta.len() > MAX_BUFFER_BYTES {
        return Err(format!(
            "{what} {} is {} bytes; the limit is {MAX_BUFFER_BYTES}",
            full.display(),
            meta.len()
        ));
    }
    std::fs::read(&full).map_err(|e| format!("{what} {}: {e}", full.display()))
}

/// The launch for `spec`, with every file read and every value encoded.
pub(crate) fn prepare(spec: &KernelSpec, options: &Options) -> Result<KernelLaunch, String> {
    let code = match &spec.code {
        KernelCode::Source(path) => {
            let bytes = read_file(options, path, "kernel source")?;
            LaunchCode::Source {
                name: Path::new(path)
                    .file_name()
                    .map_or_else(|| path.clone(), |n| n.to_string_lossy().into()),
                text: String::from_utf8(bytes)
                    .map_err(|_| format!("kernel source {path} is not UTF-8"))?,
            }
        }
        // PTX is text with newlines; a single line ending in .ptx is a file.
        KernelCode::Ptx(p) if !p.contains('\n') && p.ends_with(".ptx") => LaunchCode::Ptx {
            text: String::from_utf8(read_file(options, p, "PTX file")?)
                .map_err(|_| format!("PTX file {p} is not UTF-8"))?,
        },
        KernelCode::Ptx(text) => LaunchCode::Ptx { text: text.clone() },
    };
    let args = spec
        .args
        .iter()
        .enumerate()
        .map(|(i, arg)| argument(arg, options).map_err(|e| format!("kernel argument {i}: {e}")))
        .collect::<Result<_, _>>()?;
    Ok(KernelLaunch {
        code,
        entry: spec.entry.clone(),
        grid: spec.grid,
        block: spec.block,
        shared_mem_bytes: spec.shared_mem_bytes,
        args,
    })
}

fn argument(arg: &KernelArg, options: &Options) -> Result<LaunchArg, String> {
    let zero = serde_json::Number::from(0u8);
    Ok(match arg {
        KernelArg::Scalar { dtype, value } => LaunchArg::Scalar {
            dtype: *dtype,
            bytes: encode(*dtype, value)?,
        },
        KernelArg::Buffer(b) => {
            let data = match &b.init {
                BufferInit::Len { len, fill } => BufferData::Fill {
                    len: *len,
                    element: encode(b.dtype, fill.as_ref().unwrap_or(&zero))?,
                },
                BufferInit::Values(v) => BufferData::Bytes(
                    encode_values(v, b.dtype).map_err(|e| format!("buffer `{}`: {e}", b.name))?,
                ),
                BufferInit::File(path) => {
                    let bytes = read_file(options, path, &format!("buffer `{}` file", b.name))?;
                    if bytes.len() % b.dtype.size() != 0 {
                        return Err(format!(
                            "buffer `{}`: {path} has {} bytes, not a whole number of {} elements",
                            b.name,
                            bytes.len(),
                            b.dtype.name()
                        ));
                    }
                    BufferData::Bytes(bytes)
                }
            };
            LaunchArg::Buffer {
                name: b.name.clone(),
                dtype: b.dtype,
                data,
                output: b.output,
            }
        }
    })
}

/// The step's outputs from the report: small buffers inline, large ones in
/// files under `dir`. A buffer the step leaves as an artifact (`produces`,
/// where the worker has an artifact store) is written where it is collected
/// from, whatever its size, and a large one is named by its artifact
/// (`{{ steps.<id>.artifacts.<buffer> }}`) instead of a file here.
pub(crate) fn outputs(
    report: &KernelReport,
    dir: &Path,
    produces: &[weft_core::artifacts::DeclaredArtifact],
) -> Result<Json, String> {
    let mut out = Map::new();
    for o in &report.outputs {
        let len = o.bytes.len() / o.dtype.size();
        let small = o.bytes.len() <= INLINE_OUTPUT_BYTES;
        let declared = produces.iter().find(|d| d.name == o.name);
        // A declared buffer is written whatever its size (it is collected);
        // an undeclared one only when too large to inline.
        let file = match declared {
            Some(d) => Some(dir.join(&d.path)),
            None if small => None,
            None => Some(dir.join(weft_core::artifacts::kernel_buffer_path(&o.name, o.dtype))),
        };
        if let Some(file) = &file {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(file, &o.bytes).map_err(|e| format!("{}: {e}", file.display()))?;
        }
        let value = match (small, declared, file) {
            (true, _, _) => Json::Array(o.dtype.decode(&o.bytes)),
            (false, Some(_), _) => {
                json!({"artifact": o.name, "type": o.dtype.name(), "len": len})
            }
            (false, None, file) => {
                let file = std::path::absolute(file.unwrap_or_default())
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
                json!({"file": file.display().to_string(), "type": o.dtype.name(), "len": len})
            }
        };
        out.insert(o.name.clone(), value);
    }
    Ok(Json::Object(out))
}

fn summary(spec: &KernelSpec, device: &str, r: &KernelReport) -> String {
    let compile = match r.compile.as_str() {
        "compiled" => format!("compiled with NVRTC in {:.1} ms", r.compile_ms),
        "cached" => "PTX from the cache".into(),
        _ => "PTX as given".into(),
    };
    format!(
        "[weft] kernel `{}` on {}, grid {:?} block {:?}: {compile}; kernel {:.3} ms, launch {:.3} ms in all\n",
        spec.entry, gpu_label(device), spec.grid, spec.block, r.kernel_ms, r.total_ms
    )
}

pub(crate) async fn run(
    attempt: Attempt<'_>,
    spec: &KernelSpec,
    runtime: &Arc<dyn KernelRuntime>,
) -> Outcome {
    let log = attempt.log();
    let Attempt {
        job,
        options,
        gate,
        gpus,
        ..
    } = attempt;
    // Passed already (`Executors::run`): the attempt's own.
    let mut abort = gate.abort();
    let Some(device) = gpus.first() else {
        return failed(
            FailureKind::Policy,
            "a cuda step needs a GPU, and none was assigned".into(),
            false,
        );
    };
    let launch = match prepare(spec, options) {
        Ok(l) => l,
        Err(e) => return failed(FailureKind::Other, e, false),
    };
    // Losing the race drops the launch, and with it the kernel process.
    let ended = bounded(runtime.launch(device, launch), job.timeout, &mut abort).await;
    let outcome = match ended {
        Ended::Aborted => failed(
            FailureKind::Cancelled,
            "aborted; the kernel process was stopped".into(),
            false,
        ),
        Ended::TimedOut(after) => failed(
            FailureKind::Timeout,
            format!(
                "timed out after {}; the kernel process was killed",
                format_duration(after)
            ),
            true,
        ),
        Ended::Finished(Err(weft_core::Error::Invalid(e))) => failed(FailureKind::Other, e, false),
        Ended::Finished(Err(e)) => failed(
            FailureKind::Infrastructure,
            format!("kernel runtime: {e}"),
            true,
        ),
        Ended::Finished(Ok(report)) => {
            if !report.log.is_empty() {
                log.push(report.log.as_bytes()).await;
            }
            log.push(summary(spec, device, &report).as_bytes()).await;
            match outputs(&report, &options.attempt_dir(job), &job.produces) {
                Ok(outputs) => Outcome::Succeeded {
                    outputs,
                    artifacts: Default::default(),
                },
                Err(e) => failed(
                    FailureKind::Infrastructure,
                    format!("writing output buffers: {e}"),
                    true,
                ),
            }
        }
    };
    if let Outcome::Failed { reason, .. } = &outcome {
        log.push(format!("[weft] {reason}\n").as_bytes()).await;
    }
    log.finish().await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::kernel::DType;
    use weft_core::ports::KernelOutput;

    fn spec(args: Json) -> KernelSpec {
        KernelSpec::from_json(&json!({"source": "k/saxpy.cu", "entry": "saxpy", "args": args}))
            .unwrap()
    }

    #[test]
    fn arguments_become_typed_bytes_and_files_are_read_from_the_worker_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("k")).unwrap();
        std::fs::write(
            dir.path().join("k/saxpy.cu"),
            "extern \"C\" __global__ void saxpy() {}",
        )
        .unwrap();
        let x: Vec<u8> = [1f32, 2.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        std::fs::write(dir.path().join("x.f32"), &x).unwrap();
        let options = Options {
            cwd: Some(dir.path().to_path_buf()),
            ..Options::default()
        };
        let s = spec(json!([
            {"scalar": "2.5", "type": "f32"},
            {"buffer": "x", "type": "f32", "file": "x.f32"},
            {"buffer": "y", "type": "f32", "len": 3, "fill": 1, "output": true},
            {"buffer": "v", "type": "u32", "values": "[7, 8]"},
            {"scalar": 3, "type": "u64"},
        ]));
        let launch = prepare(&s, &options).unwrap();
        assert!(
            matches!(&launch.code, LaunchCode::Source { name, text } if name == "saxpy.cu" && text.contains("saxpy"))
        );
        assert_eq!(
            launch.args,
            vec![
                LaunchArg::Scalar {
                    dtype: DType::F32,
                    bytes: 2.5f32.to_le_bytes().to_vec()
                },
                LaunchArg::Buffer {
                    name: "x".into(),
                    dtype: DType::F32,
                    data: BufferData::Bytes(x),
                    output: false
                },
                LaunchArg::Buffer {
                    name: "y".into(),
                    dtype: DType::F32,
                    data: BufferData::Fill {
                        len: 3,
                        element: 1f32.to_le_bytes().to_vec()
                    },
                    output: true
                },
                LaunchArg::Buffer {
                    name: "v".into(),
                    dtype: DType::U32,
                    data: BufferData::Bytes(
                        [7u32, 8].iter().flat_map(|v| v.to_le_bytes()).collect()
                    ),
                    output: false
                },
                LaunchArg::Scalar {
                    dtype: DType::U64,
                    bytes: 3u64.to_le_bytes().to_vec()
                },
            ]
        );
        // A file that is not whole elements, a missing file, a bad value.
        std::fs::write(dir.path().join("odd"), [1u8, 2, 3]).unwrap();
        for (args, says) in [
            (
                json!([{"buffer": "x", "type": "f32", "file": "odd"}]),
                "not a whole number of f32",
            ),
            (
                json!([{"buffer": "x", "type": "f32", "file": "missing"}]),
                "buffer `x` file",
            ),
        ] {
            let e = prepare(&spec(args.clone()), &options).unwrap_err();
            assert!(e.contains(says), "{args}: {e}");
            assert!(e.starts_with("kernel argument 0"), "{e}");
        }
        // A value that does not fit never gets this far: reading it refuses it.
        let e = KernelSpec::from_json(&json!({"source": "k", "entry": "k",
            "args": [{"buffer": "x", "type": "u8", "values": "[1, 300]"}]}))
        .unwrap_err();
        assert!(e.contains("does not fit in u8"), "{e}");
        let missing = KernelSpec::from_json(&json!({"source": "nope.cu", "entry": "k"})).unwrap();
        assert!(prepare(&missing, &options)
            .unwrap_err()
            .contains("kernel source"));
        let inline =
            KernelSpec::from_json(&json!({"ptx": ".version 8.0\n.target sm_90\n", "entry": "k"}))
                .unwrap();
        assert!(
            matches!(prepare(&inline, &options).unwrap().code, LaunchCode::Ptx { text } if text.starts_with(".version"))
        );
    }

    #[test]
    fn small_outputs_are_inline_and_large_ones_are_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![0u8; INLINE_OUTPUT_BYTES + 4];
        let report = KernelReport {
            outputs: vec![
                KernelOutput {
                    name: "sum".into(),
                    dtype: DType::F32,
                    bytes: 4f32.to_le_bytes().to_vec(),
                },
                KernelOutput {
                    name: "y".into(),
                    dtype: DType::U32,
                    bytes: big.clone(),
                },
            ],
            compile: "cached".into(),
            compile_ms: 0.0,
            kernel_ms: 0.1,
            total_ms: 0.5,
            log: String::new(),
        };
        let out = outputs(&report, dir.path(), &[]).unwrap();
        assert_eq!(out["sum"], json!([4.0]));
        assert_eq!(out["y"]["type"], "u32");
        assert_eq!(out["y"]["len"], big.len() / 4);
        let file = out["y"]["file"].as_str().unwrap();
        assert!(Path::new(file).is_absolute());
        assert_eq!(std::fs::read(file).unwrap(), big);
        // Left as artifacts: every buffer is written where it is
        // collected from, and a large one is named by its artifact.
        let produced = dir.path().join("as-artifacts");
        let declared: Vec<_> = ["sum", "y"]
            .into_iter()
            .map(|n| weft_core::artifacts::DeclaredArtifact {
                name: n.into(),
                path: format!("buffers/{n}.bin"),
                optional: false,
            })
            .collect();
        let out = outputs(&report, &produced, &declared).unwrap();
        assert_eq!(out["sum"], json!([4.0]));
        assert_eq!(
            out["y"],
            json!({"artifact": "y", "type": "u32", "len": big.len() / 4})
        );
        assert_eq!(std::fs::read(produced.join("buffers/y.bin")).unwrap(), big);
        assert_eq!(
            std::fs::read(produced.join("buffers/sum.bin"))
                .unwrap()
                .len(),
            4
        );
        let line = summary(&spec(json!([])), "0", &report);
        assert!(
            line.contains("PTX from the cache") && line.contains("kernel `saxpy` on GPU 0"),
            "{line}"
        );
    }
}
