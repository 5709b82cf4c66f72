//! The one place where the stages meet: every command that reads, plans or writes runs here,
//! read -> compute -> plan -> write -> report, with the drift check, the confirmation and
//! resume on the way. The command files in `src/cli/` parse arguments into the options below
//! and make one call.
//!
//! - [`stages`]: the stages joined: an export read and computed ([`stages::Prepared`]), the
//!   tenant read, the planner's decisions as report rows, the writes carried out journaled.
//! - [`write`]: what `apply`, `clear` and `rollback` share once their rows are planned:
//!   confirm, journal, execute, report ([`write::WriteRun`]).
//! - one module per command that runs the stages: [`plan`], [`apply`], [`clear`],
//!   [`rollback`], [`verify`], [`snapshot`], [`rehearse`].
//! - [`connection`]: the Graph a run talks to, however the command line chose it.
//!
//! Resume (which run a journal belongs to, what it finished) is [`crate::resume`]'s.

pub(crate) mod apply;
pub(crate) mod clear;
pub(crate) mod connection;
pub(crate) mod plan;
pub(crate) mod rehearse;
pub(crate) mod rollback;
pub(crate) mod snapshot;
pub mod stages;
pub(crate) mod verify;
pub(crate) mod write;

use std::path::PathBuf;

use crate::compute::ComputeOptions;
use crate::report::{self, Summary};
use crate::source::{self, ReadOptions, Source};

/// Lines of a report's summary: (what, what about it).
pub(crate) type Notes = Vec<(String, String)>;

/// The export a run reads, and how to read and compute it.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub(crate) path: PathBuf,
    pub(crate) read: ReadOptions,
    pub(crate) compute: ComputeOptions,
    /// The options given that change which users are written and with what (for a write
    /// run's journal), as typed.
    pub(crate) flags: Vec<String>,
}

impl Input {
    /// Opens the export for [`stages::prepare`].
    pub(crate) fn open(&self) -> crate::Result<Source> {
        source::open(&self.path, &self.read)
    }
}

/// The summary of a run that started at `started` and ends now, for its report: the command
/// line (without secrets), the tenant, the version, and the run's own `notes`.
fn summary(tenant: String, started: chrono::DateTime<chrono::Utc>, notes: Notes) -> Summary {
    Summary {
        command_line: report::redact_args(std::env::args()),
        tenant,
        started: started.to_rfc3339(),
        finished: chrono::Utc::now().to_rfc3339(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        notes,
    }
}

/// The runtime for commands that talk to Graph.
pub(crate) fn runtime() -> crate::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::Error::Other(format!("cannot start the async runtime: {e}")))
}
