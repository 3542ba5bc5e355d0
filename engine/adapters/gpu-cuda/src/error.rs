//! What the CUDA adapter can fail with.

/// An error of the kernel process, of its pipe, or of the driver's GPU list.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kernel process I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("kernel process protocol: {0}")]
    Protocol(String),
    #[error("asking the CUDA driver for its GPUs: {0}")]
    Driver(String),
}
