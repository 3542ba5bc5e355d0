//! What the CUDA adapter can fail with.

/// An error of the kernel process or of its pipe.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kernel process I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("kernel process protocol: {0}")]
    Protocol(String),
}
