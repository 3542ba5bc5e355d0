//! Launch overhead of a cached CUDA step, excluding the kernel: a small
//! SAXPY launched through the runtime (worker → kernel process → back)
//! after a warm-up that compiled and loaded it. Where there is no GPU it
//! says so and measures nothing.
//!
//! `cargo bench -p weft-gpu-cuda --bench launch`

use std::time::Instant;

use weft_core::kernel::DType;
use weft_core::ports::{BufferData, KernelLaunch, KernelRuntime, LaunchArg, LaunchCode};
use weft_gpu_cuda::{driver_present, CudaRuntime, Options};

const LAUNCHES: usize = 2000;

fn launch(n: u32) -> KernelLaunch {
    let f32s = |v: f32| v.to_le_bytes().to_vec();
    KernelLaunch {
        code: LaunchCode::Source {
            name: "saxpy.cu".into(),
            text: include_str!("../../../../workflows/gpu/kernels/saxpy.cu").into(),
        },
        entry: "saxpy".into(),
        grid: [n.div_ceil(256), 1, 1],
        block: [256, 1, 1],
        shared_mem_bytes: 0,
        args: vec![
            LaunchArg::Scalar {
                dtype: DType::F32,
                bytes: f32s(2.0),
            },
            LaunchArg::Buffer {
                name: "x".into(),
                dtype: DType::F32,
                data: BufferData::Fill {
                    len: n.into(),
                    element: f32s(1.0),
                },
                output: false,
            },
            LaunchArg::Buffer {
                name: "y".into(),
                dtype: DType::F32,
                data: BufferData::Fill {
                    len: n.into(),
                    element: f32s(1.0),
                },
                output: true,
            },
            LaunchArg::Scalar {
                dtype: DType::U32,
                bytes: n.to_le_bytes().to_vec(),
            },
        ],
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    if !driver_present() {
        println!("launch overhead: not run: no CUDA driver (libcuda.so) on this machine");
        return;
    }
    let cache = tempfile::tempdir().expect("temp dir");
    let rt = CudaRuntime::new(Options {
        program: env!("CARGO_BIN_EXE_weft-cuda-host").into(),
        args: vec![],
        ptx_cache: cache.path().to_path_buf(),
    });
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio.block_on(async {
        let first = Instant::now();
        let cold = rt.launch("0", launch(256)).await.expect("first launch");
        println!(
            "first launch (process, context, NVRTC compile {:.1} ms): {:.1} ms",
            cold.compile_ms,
            first.elapsed().as_secs_f64() * 1e3
        );
        for n in [256u32, 1 << 20] {
            let mut round_trip = Vec::new();
            let mut in_process = Vec::new();
            let mut kernel = Vec::new();
            for _ in 0..LAUNCHES {
                let started = Instant::now();
                let r = rt.launch("0", launch(n)).await.expect("launch");
                let total = started.elapsed().as_secs_f64() * 1e3;
                assert_eq!(r.compile, "cached");
                round_trip.push(total - r.kernel_ms);
                in_process.push(r.total_ms - r.kernel_ms);
                kernel.push(r.kernel_ms);
            }
            for v in [&mut round_trip, &mut in_process, &mut kernel] {
                v.sort_by(f64::total_cmp);
            }
            println!(
                "n = {n} ({} KiB per buffer), {LAUNCHES} cached launches:\n  \
                 overhead excluding the kernel, worker side: median {:.3} ms, p99 {:.3} ms\n  \
                 of which in the kernel process (copies, launch, sync): median {:.3} ms\n  \
                 kernel itself: median {:.3} ms",
                n * 4 / 1024,
                percentile(&round_trip, 0.5),
                percentile(&round_trip, 0.99),
                percentile(&in_process, 0.5),
                percentile(&kernel, 0.5),
            );
        }
    });
}
