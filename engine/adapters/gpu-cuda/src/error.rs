//! What the CUDA adapter can fail with.

/// An error of the kernel process, of its pipe, of the driver's GPU list,
/// or of NVRTC's check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kernel process I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("kernel process protocol: {0}")]
    Protocol(String),
    #[error("asking the CUDA driver for its GPUs: {0}")]
    Driver(String),
    #[error("NVRTC: {0}")]
    Nvrtc(String),
}
