//! `snapshot`'s run: every user, deleted user, domain and role the plan reads, to a tenant
//! file for offline plans and rehearsals. Read-only.

use std::path::Path;

use super::connection::Connect;
use super::stages;
use crate::exit_code::ExitCode;
use crate::graph::read::{ReadStrategy, Wanted};
use crate::report;

pub(crate) fn run(output: &Path, target: &impl Connect) -> crate::Result<ExitCode> {
    let tenant_file = (&[report::Format::Json][..], report::Format::Json);
    report::check_output(output, tenant_file, &target.files())?;
    let (tenant, requests) = super::runtime()?.block_on(async {
        let connection = target.connect().await?;
        let everyone = Wanted::everyone();
        let tenant = stages::read_tenant(&connection.client, &everyone, ReadStrategy::Bulk)
            .await?
            .tenant;
        let requests = connection.client.requests();
        connection.close().await;
        Ok::<_, crate::Error>((tenant, requests))
    })?;
    tenant.save(output)?;
    eprintln!(
        "{}: {} users, {} deleted users, {} domains ({requests} Graph requests)",
        output.display(),
        tenant.users.len(),
        tenant.deleted_users.len(),
        tenant.domains.len()
    );
    Ok(ExitCode::Success)
}
