//! The CPU kernel runtime passes the kernel runtime contract, and takes
//! arguments of every type the way the real one does.

use weft_core::kernel::DType;
use weft_core::ports::{BufferData, KernelLaunch, KernelRuntime, LaunchArg, LaunchCode};
use weft_testkit::kernels::CpuKernels;

weft_testkit::kernel_runtime_contract!(CpuKernels, "0");

fn scalar(dtype: DType, v: serde_json::Value) -> LaunchArg {
    let mut bytes = Vec::new();
    dtype.encode(&v, &mut bytes).unwrap();
    LaunchArg::Scalar { dtype, bytes }
}

#[tokio::test]
async fn every_scalar_type_and_buffer_kind_reaches_the_kernel() {
    let mut args: Vec<LaunchArg> = DType::ALL
        .iter()
        .map(|t| scalar(*t, serde_json::json!(7)))
        .collect();
    for t in DType::ALL {
        let mut element = Vec::new();
        t.encode(&serde_json::json!(3), &mut element).unwrap();
        args.push(LaunchArg::Buffer {
            name: format!("fill-{}", t.name()),
            dtype: t,
            data: BufferData::Fill { len: 4, element },
            output: false,
        });
    }
    args.push(LaunchArg::Buffer {
        name: "out".into(),
        dtype: DType::F64,
        data: BufferData::Fill {
            len: 32,
            element: vec![0; 8],
        },
        output: true,
    });
    let launch = KernelLaunch {
        code: LaunchCode::Ptx {
            text: "// describe".into(),
        },
        entry: "describe".into(),
        grid: [1; 3],
        block: [1; 3],
        shared_mem_bytes: 0,
        args,
    };
    let report = CpuKernels.launch("0", launch).await.unwrap();
    let out = DType::F64.decode(&report.outputs[0].bytes);
    let mut want: Vec<f64> = vec![7.0; 7];
    for _ in DType::ALL {
        want.extend([4.0, 12.0]);
    }
    want.resize(32, 0.0);
    assert_eq!(
        out.iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>(),
        want
    );
}

#[tokio::test]
async fn arguments_that_do_not_match_the_kernel_are_invalid() {
    let mut launch = weft_testkit::kernels::saxpy_launch(8);
    launch.args.pop();
    let e = CpuKernels.launch("0", launch).await.unwrap_err();
    assert!(e.to_string().contains("takes 4 arguments, not 3"), "{e}");
    let mut launch = weft_testkit::kernels::saxpy_launch(8);
    launch.args[0] = scalar(DType::F64, serde_json::json!(2.0));
    let e = CpuKernels.launch("0", launch).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("argument 0 is a scalar of f32, not a scalar of f64"),
        "{e}"
    );
}
