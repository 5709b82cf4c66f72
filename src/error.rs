//! The crate's concrete error type: what can stop a command before or while it runs.
//!
//! Per-row problems are never errors: they become report rows with an outcome
//! (see [`crate::outcome`]). An [`Error`] is for what stops a whole command: an unreadable
//! file, an export with no usable column, a bad option, a tenant that cannot be reached.
//!
//! `main` prints an error once, by its `Display`, which already carries its cause: it never
//! walks the `source()` chain as well, which would print every cause twice.

use std::path::PathBuf;

use crate::graph::GraphError;

/// A failure that stops a command. Its message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The input as a whole cannot be used (no anchor column, unknown format, ...).
    #[error("{0}")]
    Input(String),
    /// A command-line value that clap could not check for us.
    #[error("{0}")]
    Usage(String),
    /// The tenant file could not be read or parsed.
    #[error("{path}: {message}")]
    Tenant { path: PathBuf, message: String },
    /// Graph could not be reached, signed in to, or read.
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The reader of stdout went away (`hardmatch ids big.csv -o - | head`): not a failure,
    /// the command ends quietly as ripgrep does.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
