//! The kernel process on its own, for this crate's tests and benchmark;
//! the `weft` binary runs the same thing as `weft cuda-host`.

fn main() -> std::process::ExitCode {
    weft_gpu_cuda::host::main()
}
