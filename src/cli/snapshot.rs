//! `hardmatch snapshot`: a read-only copy of the tenant, for offline plans and rehearsals.
//! The run itself is [`crate::run::snapshot`].

use std::path::PathBuf;

use super::target::TargetArgs;
use crate::exit_code::ExitCode;
use crate::run;

const EXAMPLES: &str = "\
Examples:
  # Signed in with the Azure CLI (`az login`), the whole tenant to a file:
  hardmatch snapshot -o tenant.json

  # An app registration with a client secret from the environment, in US Government L4:
  AZURE_TENANT_ID=... AZURE_CLIENT_ID=... AZURE_CLIENT_SECRET=... hardmatch snapshot --cloud usgov -o tenant.json

  # Then plan offline, or rehearse against an emulated copy:
  hardmatch plan users.csv --snapshot tenant.json -o plan.xlsx
  hardmatch emulator --tenant tenant.json --access-token rehearsal

Reads users (with onPremisesImmutableId, proxyAddresses, onPremisesSyncEnabled, userType and
beta's onPremisesObjectIdentifier), deleted users, domains, the hard-match takeover setting, and
the privileged roles: definitions, assignments, eligibilities, and every role-assignable group
with its members and owners. Needs User.Read.All and Domain.Read.All; RoleManagement.Read.Directory,
RoleEligibilitySchedule.Read.Directory and GroupMember.Read.All for the roles (without them the
file records the roles as unknown, and plans mark rows roles-unknown).";

/// Save the tenant's users, deleted users and domains to a file (read-only).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    /// Where to write the tenant file (JSON).
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,

    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

pub(crate) fn run(args: Args) -> crate::Result<ExitCode> {
    run::snapshot::run(&args.output, &args.target)
}
