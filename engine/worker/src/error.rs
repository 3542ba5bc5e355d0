//! The worker's error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("preparing the work directory {path}: {source}")]
    WorkDir {
        path: String,
        source: std::io::Error,
    },
    #[error("starting `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("starting the plugin host: {0}")]
    Plugins(String),
    #[error("{0}")]
    StepUsers(String),
    #[error(transparent)]
    Port(#[from] weft_core::Error),
}
