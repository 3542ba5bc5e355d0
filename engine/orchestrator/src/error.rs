//! The orchestrator's error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the stored workflow of run {0} no longer parses")]
    StoredWorkflow(String),
    #[error("run {0} is driven by another orchestrator")]
    NotOwner(String),
    #[error("run {0} does not exist")]
    NoSuchRun(String),
    #[error("{0}")]
    Invalid(String),
    /// The workflow is bigger than the server's limits allow.
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Port(#[from] weft_core::Error),
}
