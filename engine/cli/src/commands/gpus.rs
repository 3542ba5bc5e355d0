//! `weft gpus`: what this machine gives a worker for kernel steps (the
//! CUDA driver's GPUs, and NVRTC compiling a kernel), asked without a
//! server, so a GPU machine or image is checked before steps land on it.

use std::process::ExitCode;

/// What `--need` may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Need {
    /// The CUDA driver library (`libcuda.so`) loads.
    Driver,
    /// The driver sees at least one GPU.
    Gpu,
    /// NVRTC loads and compiles a kernel (no GPU needed).
    Nvrtc,
}

#[derive(clap::Args)]
pub struct Args {
    /// Exit 1 unless this works here (repeatable): `driver`, `gpu`, `nvrtc`.
    #[arg(long = "need", value_enum)]
    pub needs: Vec<Need>,
}

/// Prints one line per part, and fails where a part in `--need` is missing.
pub fn gpus(args: &Args) -> ExitCode {
    let mut missing = Vec::new();
    if weft_gpu_cuda::driver_present() {
        println!("CUDA driver: libcuda.so loads");
    } else {
        println!("CUDA driver: not found (libcuda.so): kernel steps cannot run here");
        missing.push(Need::Driver);
    }
    match weft_gpu_cuda::devices() {
        Ok(gpus) if gpus.is_empty() => {
            println!("GPUs: none");
            missing.push(Need::Gpu);
        }
        Ok(gpus) => {
            println!("GPUs: {}", gpus.len());
            for gpu in gpus {
                let uuid = gpu.uuid.as_deref().unwrap_or("no UUID");
                let gib = gpu.memory_bytes as f64 / (1u64 << 30) as f64;
                println!("  {}: {} ({gib:.1} GiB, {uuid})", gpu.index, gpu.name);
            }
        }
        Err(e) => {
            println!("GPUs: {e}");
            missing.push(Need::Gpu);
        }
    }
    match weft_gpu_cuda::check_nvrtc() {
        Ok(check) => println!(
            "NVRTC: {}.{}, compiles `source` kernels ({} bytes of PTX for a probe kernel)",
            check.version.0, check.version.1, check.ptx_bytes
        ),
        Err(e) => {
            println!("{e}: `source` kernels cannot be compiled here (`ptx` ones can run)");
            missing.push(Need::Nvrtc);
        }
    }
    let unmet: Vec<_> = args.needs.iter().filter(|n| missing.contains(n)).collect();
    if unmet.is_empty() {
        return ExitCode::SUCCESS;
    }
    // As `--need` spells them.
    let names: Vec<_> = unmet
        .iter()
        .filter_map(|n| clap::ValueEnum::to_possible_value(*n))
        .map(|v| v.get_name().to_string())
        .collect();
    eprintln!("error: needed here but missing: {}", names.join(", "));
    ExitCode::FAILURE
}
