//! `clear`'s run: plan a null for every matched cloud user (an anchor, when the export
//! computes one, must be the one held), then clear through [`WriteRun`].

use std::path::PathBuf;

use super::connection::Connect;
use super::stages;
use super::write::{Settings, WriteRun};
use super::Input;
use crate::exit_code::ExitCode;
use crate::graph::read::ReadStrategy;
use crate::outcome::Outcome;
use crate::plan::{MatchBy, Mode, Permissions, PlanOptions};
use crate::resume::{self, RunIdentity};
use crate::source;

/// What `clear` was asked to do.
pub(crate) struct Options {
    pub(crate) input: Input,
    /// The report; the journal is written beside it.
    pub(crate) output: PathBuf,
    pub(crate) match_by: MatchBy,
    /// Clear an ImmutableId even when it is not the one the row's anchor computes to.
    pub(crate) overwrite: bool,
    /// Clear users in a federated domain through the journaled hop.
    pub(crate) federated_hop: bool,
    pub(crate) strategy: ReadStrategy,
    pub(crate) write: Settings,
}

pub(crate) fn run(args: &Options, target: &impl Connect) -> crate::Result<ExitCode> {
    args.write
        .check_report(&args.output, &args.input.path, target)?;
    let mut compute = args.input.compute.clone();
    compute.anchor_optional = true;
    let mut flags = args.input.flags.clone();
    if args.match_by == MatchBy::Mail {
        flags.push("--match mail".into());
    }
    if args.overwrite {
        flags.push("--overwrite".into());
    }
    if args.federated_hop {
        flags.push("--federated-hop".into());
    }
    let identity = RunIdentity::new("clear", &args.input.path, flags)?;
    let resume = resume::open(args.write.resume.as_deref(), &identity)?;
    let source = source::open(
        &args.input.path,
        &source::ReadOptions {
            anchor_optional: true,
            ..args.input.read.clone()
        },
    )?;
    let prepared = stages::prepare(&source, &compute)?;
    let options = PlanOptions {
        match_by: args.match_by,
        mode: Mode::Clear,
        allow: Permissions {
            overwrite: args.overwrite,
            federated_hop: args.federated_hop,
            ..Permissions::default()
        },
    };
    super::runtime()?.block_on(async {
        let connection = target.connect().await?;
        let mut wanted = prepared.wanted(options.match_by, Mode::Clear);
        // A 403 on a user Graph guards (docs/graph.md, "Sensitive attributes") must not
        // count toward the early stop, so the run must know who they are.
        wanted.with_roles();
        let read = stages::read_tenant(&connection.client, &wanted, args.strategy).await?;
        let rows = prepared.plan(&read.tenant, &options);
        let run = WriteRun::new(
            connection,
            read,
            identity,
            resume,
            &args.write,
            &args.output,
        );
        run.carry_out(rows, Outcome::Cleared).await
    })
}
