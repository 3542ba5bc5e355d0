//! The kernel process: `weft cuda-host` (or `weft-cuda-host`), started by
//! the worker once per GPU with `CUDA_VISIBLE_DEVICES` naming that GPU. It
//! opens the GPU, says hello, then runs one launch per frame on stdin and
//! answers each on stdout, keeping compiled modules for the next launch.
//! A CUDA error after the context is open may be sticky, so it answers
//! and exits; the worker starts a fresh process for the next launch.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileOptions, Ptx};
use weft_core::kernel::DType;
use weft_core::ports::{
    BufferData, KernelLaunch, KernelOutput, KernelReport, LaunchArg, LaunchCode,
};

use crate::protocol::{self, Hello, Reply};
use crate::{driver_present, nvrtc_present, PtxCache};

/// Where compiled PTX is kept, from the worker.
pub const CACHE_ENV: &str = "WEFT_PTX_CACHE";

/// Runs the kernel process on stdin and stdout until the worker closes the pipe.
pub fn main() -> ExitCode {
    let cache = PtxCache::new(
        std::env::var_os(CACHE_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("weft-ptx")),
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weft cuda-host: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(cache))
}

async fn serve(cache: PtxCache) -> ExitCode {
    let (mut input, mut output) = (tokio::io::stdin(), tokio::io::stdout());
    let opened = catch_unwind(|| Gpu::open(cache)).unwrap_or_else(|p| Err(panic_text(&p)));
    let mut gpu = match opened {
        Ok(gpu) => gpu,
        Err(message) => {
            let hello = Hello::Unavailable { message };
            let _ = protocol::write_frame(&mut output, &hello, &[]).await;
            return ExitCode::SUCCESS;
        }
    };
    if protocol::write_frame(&mut output, &gpu.hello(), &[])
        .await
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    loop {
        let (mut launch, blobs) = match protocol::read_frame::<_, KernelLaunch>(&mut input).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("weft cuda-host: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut reply = match protocol::give_launch_blobs(&mut launch, blobs) {
            Ok(()) => catch_unwind(AssertUnwindSafe(|| gpu.launch(&launch))).unwrap_or_else(|p| {
                Reply::Failed {
                    message: format!("the kernel process panicked: {}", panic_text(&p)),
                    fatal: true,
                }
            }),
            Err(e) => Reply::Failed {
                message: e.to_string(),
                fatal: true,
            },
        };
        let fatal = matches!(reply, Reply::Failed { fatal: true, .. });
        let blobs = protocol::take_reply_blobs(&mut reply);
        if protocol::write_frame(&mut output, &reply, &blobs)
            .await
            .is_err()
            || fatal
        {
            return ExitCode::FAILURE;
        }
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// An opened GPU and the modules loaded on it.
struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// `compute_XY`, what NVRTC compiles for.
    arch: String,
    cache: PtxCache,
    /// Loaded modules by content hash, so a repeated launch loads nothing.
    modules: HashMap<String, Arc<CudaModule>>,
}

/// A scalar argument, typed, so the launch pushes a value of the right size.
enum Scalar {
    F32(f32),
    F64(f64),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    U8(u8),
}

impl Scalar {
    fn of(dtype: DType, b: &[u8]) -> Result<Scalar, String> {
        let need = dtype.size();
        if b.len() != need {
            return Err(format!("a {} scalar of {} bytes", dtype.name(), b.len()));
        }
        let mut a = [0u8; 8];
        a[..need].copy_from_slice(b);
        let four = [a[0], a[1], a[2], a[3]];
        Ok(match dtype {
            DType::F32 => Scalar::F32(f32::from_le_bytes(four)),
            DType::F64 => Scalar::F64(f64::from_le_bytes(a)),
            DType::I32 => Scalar::I32(i32::from_le_bytes(four)),
            DType::U32 => Scalar::U32(u32::from_le_bytes(four)),
            DType::I64 => Scalar::I64(i64::from_le_bytes(a)),
            DType::U64 => Scalar::U64(u64::from_le_bytes(a)),
            DType::U8 => Scalar::U8(a[0]),
        })
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

impl Gpu {
    fn open(cache: PtxCache) -> Result<Gpu, String> {
        if !driver_present() {
            return Err(
                "no CUDA driver on this machine: libcuda.so could not be loaded \
                        (install the NVIDIA driver, or run cuda steps on a worker that has one)"
                    .into(),
            );
        }
        let ctx = CudaContext::new(0).map_err(|e| format!("opening the GPU: {e}"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| format!("reading the GPU's compute capability: {e}"))?;
        Ok(Gpu {
            stream: ctx.default_stream(),
            arch: format!("compute_{major}{minor}"),
            ctx,
            cache,
            modules: HashMap::new(),
        })
    }

    fn hello(&self) -> Hello {
        Hello::Ready {
            name: self.ctx.name().unwrap_or_else(|_| "NVIDIA GPU".into()),
            compute: self.ctx.compute_capability().unwrap_or((0, 0)),
            memory_bytes: self.ctx.total_mem().unwrap_or(0) as u64,
        }
    }

    /// The module for `code`, and how it was had: (`ptx` | `cached` |
    /// `compiled`, compile ms, compiler log).
    fn module(
        &mut self,
        code: &LaunchCode,
    ) -> Result<(Arc<CudaModule>, &'static str, f64, String), String> {
        let (key, text) = match code {
            LaunchCode::Ptx { text } => (PtxCache::key(text, "ptx", &[]), text),
            LaunchCode::Source { text, .. } => {
                (PtxCache::key(text, &self.arch, &self.options()), text)
            }
        };
        if text.contains('\0') {
            return Err("the kernel's code contains a NUL byte".into());
        }
        if let Some(m) = self.modules.get(&key) {
            let how = if matches!(code, LaunchCode::Ptx { .. }) {
                "ptx"
            } else {
                "cached"
            };
            return Ok((m.clone(), how, 0.0, String::new()));
        }
        let (ptx, how, compile_ms) = match code {
            LaunchCode::Ptx { text } => (text.clone(), "ptx", 0.0),
            LaunchCode::Source { name, text } => {
                let started = Instant::now();
                let options = self.options();
                let (ptx, hit) = self.cache.get_or_compile(text, &self.arch, &options, || {
                    if !nvrtc_present() {
                        return Err("NVRTC (libnvrtc.so) is not installed on this worker, so a \
                                    `source` kernel cannot be compiled here; install the CUDA \
                                    toolkit's NVRTC, or give `ptx`"
                            .into());
                    }
                    let compiled = cudarc::nvrtc::compile_ptx_with_opts(
                        text,
                        CompileOptions {
                            options: options.clone(),
                            name: Some(name.clone()),
                            ..Default::default()
                        },
                    )
                    .map_err(|e| format!("compiling {name}: {e}"))?;
                    Ok(compiled.to_src())
                })?;
                if hit {
                    (ptx, "cached", 0.0)
                } else {
                    (ptx, "compiled", ms(started))
                }
            }
        };
        let module = self
            .ctx
            .load_module(Ptx::from_src(ptx))
            .map_err(|e| format!("loading the kernel's PTX: {e}"))?;
        self.modules.insert(key, module.clone());
        Ok((module, how, compile_ms, String::new()))
    }

    fn options(&self) -> Vec<String> {
        vec![format!("--gpu-architecture={}", self.arch)]
    }

    fn launch(&mut self, launch: &KernelLaunch) -> Reply {
        let started = Instant::now();
        let failed = |message: String, fatal: bool| Reply::Failed { message, fatal };
        let (module, compile, compile_ms, log) = match self.module(&launch.code) {
            Ok(m) => m,
            Err(e) => return failed(e, false),
        };
        let function = match module.load_function(&launch.entry) {
            Ok(f) => f,
            Err(e) => {
                return failed(
                    format!(
                        "no kernel named `{}` in the module ({e}); declare it `extern \"C\"` so its name is kept",
                        launch.entry
                    ),
                    false,
                )
            }
        };
        let scalars = match launch
            .args
            .iter()
            .filter_map(|a| match a {
                LaunchArg::Scalar { dtype, bytes } => Some(Scalar::of(*dtype, bytes)),
                LaunchArg::Buffer { .. } => None,
            })
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(s) => s,
            Err(e) => return failed(e, false),
        };
        match self.run(&function, launch, &scalars) {
            Ok((outputs, kernel_ms)) => Reply::Done(KernelReport {
                outputs,
                compile: compile.into(),
                compile_ms,
                kernel_ms,
                total_ms: ms(started),
                log,
            }),
            // The context may hold a sticky error now: answer, then exit.
            Err(e) => failed(format!("CUDA: {e}"), true),
        }
    }

    /// Copies the buffers in, launches, waits, and copies the outputs back.
    #[allow(unsafe_code)]
    fn run(
        &self,
        function: &CudaFunction,
        launch: &KernelLaunch,
        scalars: &[Scalar],
    ) -> Result<(Vec<KernelOutput>, f64), cudarc::driver::DriverError> {
        let stream = &self.stream;
        let mut buffers: Vec<(CudaSlice<u8>, u64)> = Vec::new();
        for arg in &launch.args {
            let LaunchArg::Buffer { data, .. } = arg else {
                continue;
            };
            let filled;
            let host: &[u8] = match data {
                BufferData::Bytes(b) => b,
                BufferData::Fill { len, element } => {
                    filled = if element.iter().all(|b| *b == 0) {
                        Vec::new()
                    } else {
                        element.repeat(*len as usize)
                    };
                    &filled
                }
            };
            let len = data.byte_len();
            // A zero-filled buffer needs no copy; an empty one still gets an address.
            let slice = if host.is_empty() {
                stream.alloc_zeros::<u8>(len.max(1) as usize)?
            } else {
                stream.clone_htod(host)?
            };
            buffers.push((slice, len));
        }
        let config = LaunchConfig {
            grid_dim: (launch.grid[0], launch.grid[1], launch.grid[2]),
            block_dim: (launch.block[0], launch.block[1], launch.block[2]),
            shared_mem_bytes: launch.shared_mem_bytes,
        };
        let start = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        let end = self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        {
            let mut builder = stream.launch_builder(function);
            let mut scalars = scalars.iter();
            let mut slices = buffers.iter_mut();
            for arg in &launch.args {
                match arg {
                    LaunchArg::Scalar { .. } => match scalars.next() {
                        Some(Scalar::F32(v)) => builder.arg(v),
                        Some(Scalar::F64(v)) => builder.arg(v),
                        Some(Scalar::I32(v)) => builder.arg(v),
                        Some(Scalar::U32(v)) => builder.arg(v),
                        Some(Scalar::I64(v)) => builder.arg(v),
                        Some(Scalar::U64(v)) => builder.arg(v),
                        Some(Scalar::U8(v)) => builder.arg(v),
                        None => unreachable!("one scalar per scalar argument"),
                    },
                    LaunchArg::Buffer { .. } => match slices.next() {
                        Some((slice, _)) => builder.arg(slice),
                        None => unreachable!("one slice per buffer argument"),
                    },
                };
            }
            start.record(stream)?;
            // SAFETY: the arguments are the workflow's to match to the
            // kernel's parameters; a mismatch can fault only this process,
            // which is why kernels run here and not in the worker.
            unsafe { builder.launch(config) }?;
            end.record(stream)?;
        }
        stream.synchronize()?;
        let kernel_ms = f64::from(start.elapsed_ms(&end)?);
        let mut outputs = Vec::new();
        let mut slices = buffers.iter();
        for arg in &launch.args {
            let LaunchArg::Buffer {
                name,
                dtype,
                output,
                ..
            } = arg
            else {
                continue;
            };
            let Some((slice, len)) = slices.next() else {
                break;
            };
            if *output {
                let mut bytes = stream.clone_dtoh(slice)?;
                bytes.truncate(*len as usize);
                outputs.push(KernelOutput {
                    name: name.clone(),
                    dtype: *dtype,
                    bytes,
                });
            }
        }
        Ok((outputs, kernel_ms))
    }
}
