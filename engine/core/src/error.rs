//! The error type of the ports.

/// What a port implementation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A write lost a race: the stored version moved on (e.g. a late report
    /// from a worker that lost its job).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A holder that has been replaced tried to write: another
    /// orchestrator took the run's lease, or another execution the claim.
    #[error("fenced: {0}")]
    Fenced(String),
    /// An append found a log (a run's events, an attempt's output) at
    /// another length than its writer expected.
    #[error("{log} ends at {actual}, its writer expected {expected}")]
    LogMoved {
        /// Which log: `run R events`, `log of R/T#A`.
        log: String,
        expected: u64,
        actual: u64,
    },
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend is closed or shutting down.
    #[error("closed: {0}")]
    Closed(String),
    /// The backend failed; the message says which and why.
    // The cause is in the message and deliberately not a `source`: printers
    // of error chains (anyhow's `{:#}`) would repeat it, once per level of
    // the backend's own chain.
    #[error("{context}: {cause}")]
    Backend {
        context: String,
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn backend(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            context: context.into(),
            cause: Box::new(source),
        }
    }
}
