//! CUDA steps end to end. `needs_gpu_*` tests need an NVIDIA GPU and
//! driver: ignored by default, run by `scripts/test` where `nvidia-smi`
//! finds a GPU, and reported as not run elsewhere.

use std::time::Duration;

use serde_json::{json, Value as Json};
use weft_api::views::RunView;

use crate::cluster::{step, Cluster};
use crate::support::{newest_embedded_run, text, weft};

/// Whether this machine has an NVIDIA GPU and driver.
pub fn gpu_present() -> bool {
    std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cuda_step_runs_only_where_a_driver_is_and_says_so_elsewhere() {
    let mut cluster = Cluster::start(0);
    // A worker told it has a GPU, on a machine that may have no driver.
    cluster.start_worker_with(&["--gpu", "0:FakeGPU"]);
    let file = cluster.dir.path().join("cuda.toml");
    std::fs::write(
        &file,
        r#"[workflow]
name = "cuda"
[steps.k.cuda]
source = "workflows/gpu/kernels/saxpy.cu"
entry = "saxpy"
block = [4]
args = [
  { scalar = 2.0, type = "f32" },
  { buffer = "x", type = "f32", values = [1, 2, 3, 4] },
  { buffer = "y", type = "f32", len = 4, fill = 0.5, output = true },
  { scalar = 4, type = "u32" },
]
"#,
    )
    .unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    let k = step(&view, "k");
    if gpu_present() {
        assert_eq!(k.status, "succeeded", "{k:?}");
        assert_eq!(k.outputs, Some(json!({"y": [2.5, 4.5, 6.5, 8.5]})));
    } else {
        assert_eq!(k.status, "failed", "{k:?}");
        let reason = k.reason.as_deref().unwrap();
        assert!(
            reason.contains("cannot run CUDA kernels: no CUDA driver (libcuda.so)"),
            "{reason}"
        );
        // A mistake of the machine, not of the step: it is not retried.
        assert_eq!(k.tasks[0].attempts.len(), 1);
    }
}

/// `weft gpus` names each part, here as on a GPU machine; `--need` fails
/// on a part this machine lacks and names it. (The GPU image's NVRTC is
/// checked in `deploy`.)
#[test]
fn weft_gpus_names_each_part_and_need_fails_on_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = weft(&["gpus"], dir.path());
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let nvrtc_here = said.contains("compiles `source` kernels");
    if gpu_present() {
        assert!(said.contains("CUDA driver: libcuda.so loads"), "{said}");
        assert!(
            said.contains("GPUs: ") && !said.contains("GPUs: none"),
            "{said}"
        );
    } else {
        assert!(
            said.contains("CUDA driver: not found (libcuda.so): kernel steps cannot run here"),
            "{said}"
        );
        assert!(said.contains("GPUs: none"), "{said}");
        let need = weft(&["gpus", "--need", "driver", "--need", "nvrtc"], dir.path());
        assert_eq!(need.status.code(), Some(1), "{}", text(&need));
        let missing = if nvrtc_here {
            "driver"
        } else {
            "driver, nvrtc"
        };
        assert!(
            text(&need).contains(&format!("needed here but missing: {missing}")),
            "{}",
            text(&need)
        );
    }
    if !nvrtc_here {
        assert!(
            said.contains(
                "NVRTC: libnvrtc.so is not installed (or not on the loader's path): \
                           `source` kernels cannot be compiled here"
            ),
            "{said}"
        );
    }
    let bad = weft(&["gpus", "--need", "tpu"], dir.path());
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("invalid value 'tpu'"), "{}", text(&bad));
}

#[tokio::test]
#[ignore = "needs an NVIDIA GPU and driver"]
async fn needs_gpu_saxpy_and_reduction() {
    let data = tempfile::tempdir().unwrap();
    let out = weft(&["run", "workflows/gpu/saxpy.toml", "--plain"], data.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (_, record, state) = newest_embedded_run(data.path()).await;
    let view = RunView::new(&record, &state);
    let outputs = |id: &str| step(&view, id).outputs.clone().unwrap();
    // y = 2x + 1 over x = 0..1024, checked on the host.
    let y = outputs("small")["y"].as_array().unwrap().clone();
    assert_eq!(y.len(), 1024);
    for (i, v) in y.iter().enumerate() {
        assert_eq!(v.as_f64(), Some(2.0 * i as f64 + 1.0), "y[{i}]");
    }
    // A million elements came back as an artifact (4 MiB), which the
    // reduction fetched.
    let big = outputs("big")["y"].clone();
    assert_eq!(
        big,
        serde_json::json!({"artifact": "y", "type": "f32", "len": 1 << 20})
    );
    let listed = &step(&view, "big").artifacts;
    assert_eq!((listed[0].name.as_str(), listed[0].size), ("y", 4 << 20));
    assert_eq!(
        outputs("total")["sum"],
        Json::from(vec![4.0 * (1 << 20) as f64])
    );
}
