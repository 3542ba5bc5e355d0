//! Launching GPU kernels: what the worker asks of a CUDA runtime.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::kernel::DType;
use crate::Error;

/// One kernel launch, with everything it needs already read: the code,
/// the launch shape and every argument's bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelLaunch {
    pub code: LaunchCode,
    pub entry: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_mem_bytes: u32,
    pub args: Vec<LaunchArg>,
}

/// The kernel's code, as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaunchCode {
    /// CUDA C++ for NVRTC; `name` (the file's) appears in its messages.
    Source {
        name: String,
        text: String,
    },
    Ptx {
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LaunchArg {
    /// Passed by value: the scalar's little-endian bytes.
    Scalar { dtype: DType, bytes: Vec<u8> },
    /// Copied to device memory; the kernel gets its address.
    Buffer {
        name: String,
        dtype: DType,
        data: BufferData,
        /// Copied back after the kernel ran.
        output: bool,
    },
}

/// A buffer's contents before the kernel runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BufferData {
    Bytes(Vec<u8>),
    /// `len` elements, each the bytes of `element`: built where the buffer
    /// is, so a large generated buffer is never carried around.
    Fill {
        len: u64,
        element: Vec<u8>,
    },
}

impl BufferData {
    pub fn byte_len(&self) -> u64 {
        match self {
            BufferData::Bytes(b) => b.len() as u64,
            BufferData::Fill { len, element } => len * element.len() as u64,
        }
    }
}

/// An output buffer's bytes after the kernel ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelOutput {
    pub name: String,
    pub dtype: DType,
    pub bytes: Vec<u8>,
}

/// What a launch did, for the step's outputs and log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelReport {
    pub outputs: Vec<KernelOutput>,
    /// How the code became a module: `ptx` given, `cached` PTX, or `compiled`.
    pub compile: String,
    /// Milliseconds spent compiling with NVRTC (0 unless `compiled`).
    pub compile_ms: f64,
    /// The kernel's own time on the GPU, from events around it.
    pub kernel_ms: f64,
    /// The whole launch in the kernel process: module, copies, kernel, copies back.
    pub total_ms: f64,
    /// Compiler messages (warnings), if any.
    pub log: String,
}

/// The kernel runtime port.
#[async_trait]
pub trait KernelRuntime: Send + Sync {
    /// Runs one launch on GPU `device` (as [`GpuSlot::device_id`] names the
    /// GPU the worker assigned) and waits for it. A mistake in the kernel or its arguments is
    /// `Error::Invalid`. Dropping the future stops the launch: the process
    /// running it is killed, so a hung kernel cannot hold the GPU.
    ///
    /// [`GpuSlot::device_id`]: crate::ports::GpuSlot::device_id
    async fn launch(&self, device: &str, launch: KernelLaunch) -> Result<KernelReport, Error>;
}
