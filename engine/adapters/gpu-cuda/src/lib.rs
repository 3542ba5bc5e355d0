//! A [`KernelRuntime`](weft_core::ports::KernelRuntime) on NVIDIA GPUs,
//! through cudarc: CUDA C++ is compiled with NVRTC and its PTX cached by
//! content hash; buffers are copied in, the kernel launched, outputs
//! copied back.
//!
//! Kernels run in a child process per GPU ([`host`]), never in the worker:
//! a faulting kernel leaves a sticky error in its CUDA context, so the
//! process that held it is dropped and the next launch gets a fresh one.
//! The CUDA libraries are loaded at run time, so weft builds and runs where
//! they are absent; there [`driver_present`] is false and a launch fails
//! with a message that says so.

mod devices;
mod error;
pub mod host;
mod probe;
mod protocol;
mod ptx_cache;
mod runtime;

pub use devices::devices;
pub use error::Error;
pub use probe::{check_nvrtc, driver_present, nvrtc_present, NvrtcCheck};
pub use ptx_cache::PtxCache;
pub use runtime::{CudaRuntime, Options};
