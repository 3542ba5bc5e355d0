//! The kernel runtime through its real process. Tests named `needs_gpu_*`
//! need an NVIDIA GPU and driver: they are ignored by default and run with
//! `--run-ignored all` (which `scripts/test` passes where `nvidia-smi` finds
//! a GPU); elsewhere they are reported as not run.

use std::path::Path;
use std::time::Duration;

use weft_core::kernel::DType;
use weft_core::ports::{BufferData, KernelLaunch, KernelRuntime, LaunchArg, LaunchCode};
use weft_gpu_cuda::{driver_present, CudaRuntime, Options};

fn host_runtime(cache: &Path) -> CudaRuntime {
    CudaRuntime::new(Options {
        program: env!("CARGO_BIN_EXE_weft-cuda-host").into(),
        args: vec![],
        ptx_cache: cache.to_path_buf(),
    })
}

/// A stand-in kernel process written in Python, to see how the runtime
/// treats processes that misbehave.
fn fake_runtime(script: &str, cache: &Path) -> CudaRuntime {
    CudaRuntime::new(Options {
        program: "python3".into(),
        args: vec!["-c".into(), script.into()],
        ptx_cache: cache.to_path_buf(),
    })
}

/// Python that says it is ready, as a real kernel process would.
const READY: &str = r#"
import json, os, struct, sys, time
h = json.dumps({"ready": {"name": "fake", "compute": [9, 0], "memory_bytes": 0}}).encode()
sys.stdout.buffer.write(struct.pack("<I", len(h)) + h + struct.pack("<I", 0))
sys.stdout.flush()
"#;

/// The contract every kernel runtime passes (the CPU one passes it in
/// `engine/testkit`), on GPU 0 through the real kernel process.
mod needs_gpu_contract {
    use super::*;

    weft_testkit::kernel_runtime_contract!(
        host_runtime(&std::env::temp_dir().join("weft-cuda-contract-cache")),
        "0",
        #[ignore = "needs an NVIDIA GPU and driver"]
    );
}

use weft_testkit::kernels::{check_saxpy, saxpy_launch as saxpy};

#[tokio::test]
async fn a_launch_runs_where_there_is_a_driver_and_says_why_not_where_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let result = host_runtime(dir.path()).launch("0", saxpy(1000)).await;
    if driver_present() {
        check_saxpy(&result.unwrap().outputs[0].bytes, 1000);
    } else {
        let e = result.unwrap_err().to_string();
        assert!(
            e.contains("GPU 0 cannot run kernels: no CUDA driver"),
            "{e}"
        );
        assert!(e.contains("libcuda.so"), "{e}");
    }
}

#[tokio::test]
async fn a_kernel_process_that_dies_before_it_is_ready_is_reported_with_its_last_words() {
    let dir = tempfile::tempdir().unwrap();
    let rt = fake_runtime(
        "import sys; sys.stderr.write('boom: no device\\n'); sys.exit(3)",
        dir.path(),
    );
    let e = rt.launch("0", saxpy(4)).await.unwrap_err().to_string();
    assert!(e.contains("exited before it was ready"), "{e}");
    assert!(e.contains("boom: no device"), "{e}");
}

#[tokio::test]
async fn a_kernel_process_that_dies_mid_launch_is_replaced_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    let script = format!(
        "{READY}\nopen({starts:?}, 'a').write('x')\nsys.stdin.buffer.read(4)\nsys.stderr.write('segfault, say\\n')\nsys.exit(139)\n",
        starts = starts.display().to_string()
    );
    let rt = fake_runtime(&script, dir.path());
    for _ in 0..2 {
        let e = rt.launch("0", saxpy(4)).await.unwrap_err().to_string();
        assert!(e.contains("died during the launch"), "{e}");
        assert!(e.contains("segfault, say"), "{e}");
    }
    assert_eq!(
        std::fs::read_to_string(&starts).unwrap(),
        "xx",
        "one fresh process per launch"
    );
}

#[tokio::test]
async fn dropping_a_launch_kills_its_process_so_a_hung_kernel_cannot_hold_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!(
        "{READY}\nopen({pid:?}, 'w').write(str(os.getpid()))\nsys.stdin.buffer.read(4)\ntime.sleep(600)\n",
        pid = pid_file.display().to_string()
    );
    let rt = fake_runtime(&script, dir.path());
    let hung = tokio::time::timeout(Duration::from_millis(1500), rt.launch("0", saxpy(4))).await;
    assert!(hung.is_err(), "the launch should hang");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its parent to reap it.
        stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z")
    });
    assert!(gone, "kernel process {pid} is still running");
}

#[tokio::test]
#[ignore = "needs an NVIDIA GPU and driver"]
async fn needs_gpu_saxpy_compiles_once_then_comes_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host_runtime(dir.path());
    let first = rt.launch("0", saxpy(100_000)).await.unwrap();
    assert_eq!(first.compile, "compiled");
    check_saxpy(&first.outputs[0].bytes, 100_000);
    let second = rt.launch("0", saxpy(100_000)).await.unwrap();
    assert_eq!(second.compile, "cached");
    check_saxpy(&second.outputs[0].bytes, 100_000);
    // A new runtime (new processes) finds the PTX on disk.
    let third = host_runtime(dir.path())
        .launch("0", saxpy(10))
        .await
        .unwrap();
    assert_eq!(third.compile, "cached");
    assert!(third.kernel_ms >= 0.0 && third.total_ms >= third.kernel_ms);
}

#[tokio::test]
#[ignore = "needs an NVIDIA GPU and driver"]
async fn needs_gpu_a_faulting_kernel_does_not_poison_the_next_launch() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host_runtime(dir.path());
    let fault = KernelLaunch {
        code: LaunchCode::Source {
            name: "fault.cu".into(),
            text: "extern \"C\" __global__ void fault(float *p) { p[1 << 30] = 1.0f; }".into(),
        },
        entry: "fault".into(),
        grid: [1, 1, 1],
        block: [1, 1, 1],
        shared_mem_bytes: 0,
        args: vec![LaunchArg::Buffer {
            name: "p".into(),
            dtype: DType::F32,
            data: BufferData::Fill {
                len: 1,
                element: vec![0; 4],
            },
            output: false,
        }],
    };
    let e = rt.launch("0", fault).await.unwrap_err().to_string();
    assert!(e.contains("CUDA"), "{e}");
    check_saxpy(
        &rt.launch("0", saxpy(1000)).await.unwrap().outputs[0].bytes,
        1000,
    );
}

#[tokio::test]
#[ignore = "needs an NVIDIA GPU and driver"]
async fn needs_gpu_every_scalar_type_reaches_the_kernel_and_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host_runtime(dir.path());
    let src = r#"extern "C" __global__ void echo(double a, long long b, unsigned char c, int d,
        unsigned long long e, unsigned int f, float g, double *out) {
        out[0] = a; out[1] = (double)b; out[2] = (double)c; out[3] = (double)d;
        out[4] = (double)e; out[5] = (double)f; out[6] = (double)g;
    }"#;
    let scalar = |dtype: DType, bytes: Vec<u8>| LaunchArg::Scalar { dtype, bytes };
    let mut launch = KernelLaunch {
        code: LaunchCode::Source {
            name: "echo.cu".into(),
            text: src.into(),
        },
        entry: "echo".into(),
        grid: [1, 1, 1],
        block: [1, 1, 1],
        shared_mem_bytes: 0,
        args: vec![
            scalar(DType::F64, 0.5f64.to_le_bytes().to_vec()),
            scalar(DType::I64, (-7i64).to_le_bytes().to_vec()),
            scalar(DType::U8, vec![200]),
            scalar(DType::I32, (-3i32).to_le_bytes().to_vec()),
            scalar(DType::U64, 9u64.to_le_bytes().to_vec()),
            scalar(DType::U32, 11u32.to_le_bytes().to_vec()),
            scalar(DType::F32, 1.25f32.to_le_bytes().to_vec()),
            LaunchArg::Buffer {
                name: "out".into(),
                dtype: DType::F64,
                data: BufferData::Fill {
                    len: 7,
                    element: vec![0; 8],
                },
                output: true,
            },
        ],
    };
    let r = rt.launch("0", launch.clone()).await.unwrap();
    let out: Vec<f64> = r.outputs[0]
        .bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(out, vec![0.5, -7.0, 200.0, -3.0, 9.0, 11.0, 1.25]);
    launch.entry = "missing".into();
    let e = rt
        .launch("0", launch.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no kernel named `missing`"), "{e}");
    launch.code = LaunchCode::Source {
        name: "bad.cu".into(),
        text: "this is not CUDA".into(),
    };
    let e = rt.launch("0", launch).await.unwrap_err().to_string();
    assert!(e.contains("compiling bad.cu"), "{e}");
}
