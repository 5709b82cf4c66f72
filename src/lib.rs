//! hardmatch links on-premises Active Directory users to existing Microsoft Entra ID cloud
//! users by stamping `onPremisesImmutableId`, so that the next sync cycle hard-matches.
//!
//! The pipeline, and the module that owns each stage:
//!
//! ```text
//!  AD export --source--> rows --compute--> candidates --plan--> plan --write--> outcomes --report--> CSV/XLSX/JSON
//! ```
//!
//! - [`anchor`]: the ImmutableId type and every anchor form it converts from and to.
//! - [`source`]: the reader stage (CSV, LDIF, XLSX), rows with their source positions.
//! - [`compute`]: rows to candidates on rayon, duplicate detection inside the input.
//! - [`ids`]: the `ids` command for an export of any size, computed a batch at a time.
//! - [`source_anchor`]: which attribute the tenant's sync anchors on, from the evidence.
//! - [`planned`]: a write run's typed plan, one row per input row, that the writer carries
//!   out and the report is made from.
//! - [`plan_file`]: the versioned plan file a change board approves and `apply` carries out,
//!   with its integrity record.
//! - [`outcome`]: the stable outcome codes of the report, in one place.
//! - [`report`]: the reporter stage, one report row per input row.
//! - [`verify`]: after the sync cycle, what it did with each row of an earlier run.
//! - [`journal`] and [`resume`]: the write-ahead journal, and continuing an interrupted run
//!   from it (which run it is, what is done, left and retried).
//! - [`tenant`]: the tenant file format shared by `snapshot`, `plan --snapshot` and the emulator.
//! - [`emulator`]: a local Microsoft Graph emulator for rehearsals and tests.
//! - [`run`]: the one place where the stages meet: every command's run (read, compute, plan,
//!   drift check, confirmation, write, report), called by its command file.
//! - [`cli`]: one file per subcommand: its help text and examples, its arguments, one call.
//! - [`error`] and [`exit_code`]: what stops a command, and how every command ends.

pub mod anchor;
pub mod cli;
pub mod compute;
pub mod emulator;
pub mod error;
pub mod exit_code;
pub mod graph;
pub(crate) mod ids;
pub(crate) mod journal;
pub(crate) mod logging;
pub mod outcome;
pub(crate) mod plan;
pub(crate) mod plan_file;
pub(crate) mod planned;
pub(crate) mod private;
pub(crate) mod progress;
pub mod report;
pub(crate) mod resume;
pub mod run;
pub mod source;
pub(crate) mod source_anchor;
pub mod tenant;
pub(crate) mod verify;
pub(crate) mod write;

pub use error::{Error, Result};
