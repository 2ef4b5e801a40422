//! Why a run could not be carried out.

/// Why a run could not be carried out at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A listener address could not be bound.
    #[error("cannot bind {0} (choose another --base-ip or port flag)")]
    Bind(String),
    /// The mock cloud failed to start.
    #[error("mock cloud: {0}")]
    Cloud(String),
    /// The device command is malformed.
    #[error("device command: {0}")]
    Command(String),
    /// Files could not be written.
    #[error("work dir: {0}")]
    Io(#[from] std::io::Error),
}
