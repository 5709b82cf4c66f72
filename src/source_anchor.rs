//! `--source-anchor`: which attribute, mS-DS-ConsistencyGuid or objectGUID, the tenant's sync
//! takes its anchor from. Graph does not say (docs/graph.md, "ImmutableId"), but the tenant
//! shows it: an already-synced user's onPremisesImmutableId is base64 of that attribute. With
//! `auto`, rows of the export whose cloud user is synced, holds an anchor, and whose two
//! attributes differ are that evidence.
//!
//! Compute picks the ConsistencyGuid rule first (it needs no tenant); once the tenant is read,
//! [`settle`] looks at the evidence and computes the rows again from objectGUID when that is
//! what the tenant's sync uses, or stops the run when the evidence contradicts itself.

use crate::compute::{self, ComputeOptions, SourceAnchor};
use crate::outcome::{Outcome, Warning};
use crate::plan::{MatchBy, TenantIndex};
use crate::planned::PlannedRow;
use crate::run::stages::{subject, Prepared};
use crate::source::Role;
use crate::tenant::Tenant;

/// The attribute a run uses, and on what evidence: the summary's line.
#[derive(Clone, Debug)]
pub(crate) struct Choice {
    pub(crate) note: String,
    /// Nothing settled it: rows whose attributes differ carry `anchor-source-differs`.
    pub(crate) unsettled: bool,
}

/// One row's evidence: the role whose base64 its synced cloud user holds.
struct Witness {
    line: u64,
    upn: String,
    role: Role,
}

/// Settles the source anchor for `prepared` against `tenant`, recomputing the candidates
/// when the evidence says objectGUID. Contradicting evidence is an error naming the rows.
pub(crate) fn settle(
    prepared: &mut Prepared,
    tenant: &Tenant,
    match_by: MatchBy,
    options: &ComputeOptions,
) -> crate::Result<Choice> {
    let witnesses = witnesses(prepared, tenant, match_by);
    let lines = |role: Role| -> Vec<String> {
        witnesses
            .iter()
            .filter(|w| w.role == role)
            .map(|w| format!("line {} ({})", w.line, w.upn))
            .collect()
    };
    let (by_object_guid, by_consistency_guid) =
        (lines(Role::ObjectGuid), lines(Role::ConsistencyGuid));
    match options.source_anchor {
        SourceAnchor::ConsistencyGuid => Ok(Choice {
            note: "mS-DS-ConsistencyGuid when set, else objectGUID, as asked (--source-anchor consistency-guid)".into(),
            unsettled: false,
        }),
        SourceAnchor::ObjectGuid => Ok(Choice {
            note: "objectGUID, as asked (--source-anchor object-guid)".into(),
            unsettled: false,
        }),
        SourceAnchor::Auto => match (by_object_guid.is_empty(), by_consistency_guid.is_empty()) {
            (false, false) => Err(crate::Error::Input(format!(
                "--source-anchor auto: the export's already-synced users disagree on which attribute the tenant's sync uses: base64 of objectGUID at {}; base64 of mS-DS-ConsistencyGuid at {}. Check (Get-ADSyncGlobalSettings).Parameters['Microsoft.SynchronizationOption.AnchorAttribute'] on the sync server (or which sync each forest uses), then pass --source-anchor object-guid or consistency-guid; nothing was written",
                by_object_guid.join(", "),
                by_consistency_guid.join(", ")
            ))),
            (false, true) => {
                let objectguid = ComputeOptions {
                    source_anchor: SourceAnchor::ObjectGuid,
                    ..options.clone()
                };
                prepared.candidates = compute::compute(&prepared.input, &objectguid);
                Ok(Choice {
                    note: format!(
                        "objectGUID: {} already-synced users hold base64 of their objectGUID, not of their mS-DS-ConsistencyGuid ({})",
                        by_object_guid.len(),
                        by_object_guid.join(", ")
                    ),
                    unsettled: false,
                })
            }
            (true, false) => Ok(Choice {
                note: format!(
                    "mS-DS-ConsistencyGuid when set, else objectGUID: {} already-synced users hold base64 of their mS-DS-ConsistencyGuid, not of their objectGUID ({})",
                    by_consistency_guid.len(),
                    by_consistency_guid.join(", ")
                ),
                unsettled: false,
            }),
            (true, true) => Ok(Choice {
                note: "mS-DS-ConsistencyGuid when set, else objectGUID (Cloud Sync and current Entra Connect), without evidence: no row whose attributes differ has an already-synced cloud user; rows where they differ carry anchor-source-differs".into(),
                unsettled: true,
            }),
        },
    }
}

/// The rows whose synced cloud user holds base64 of exactly one of their two attributes.
fn witnesses(prepared: &Prepared, tenant: &Tenant, match_by: MatchBy) -> Vec<Witness> {
    let index = TenantIndex::new(tenant);
    prepared
        .input
        .rows
        .iter()
        .zip(&prepared.candidates)
        .filter(|(_, c)| c.verdict.is_none())
        .filter_map(|(row, candidate)| {
            let (other_role, other) = candidate.differing_source()?;
            let user = index.target_of(&subject(row, candidate), match_by)?;
            let held = user
                .on_premises_immutable_id
                .as_deref()
                .filter(|_| user.on_premises_sync_enabled == Some(true))?;
            let role = if Some(held) == candidate.immutable_id.as_ref().map(|id| id.as_str()) {
                candidate.anchor_role?
            } else if held == other.as_str() {
                *other_role
            } else {
                return None;
            };
            Some(Witness {
                line: row.location.as_ref().map_or(0, |l| l.line()),
                upn: user.user_principal_name.clone(),
                role,
            })
        })
        .collect()
}

/// Puts `anchor-source-differs` on every row to be stamped whose two attributes differ, when
/// nothing settled which one sync uses, saying which one was used and why.
pub(crate) fn mark_unsettled(rows: &mut [PlannedRow], prepared: &Prepared, choice: &Choice) {
    if !choice.unsettled {
        return;
    }
    for (row, candidate) in rows.iter_mut().zip(&prepared.candidates) {
        let (Some(used), Some((other_role, other))) =
            (&candidate.immutable_id, candidate.differing_source())
        else {
            continue;
        };
        if row.outcome() != Outcome::WouldStamp {
            continue;
        }
        let name = |role: Role| match role {
            Role::ObjectGuid => "objectGUID",
            _ => "mS-DS-ConsistencyGuid",
        };
        let used_role = candidate.anchor_role.unwrap_or(Role::ConsistencyGuid);
        row.warnings.add(Warning::AnchorSourceDiffers);
        row.verdict.detail.push_str(&format!(
            "; {}: used {} ({used}), not {} ({other}): nothing in the export shows which one the tenant's sync uses; if its Entra Connect anchors on objectGUID (installed at 1.1.486 or older, upgraded from DirSync, or Express with ConsistencyGuid in use), plan with --source-anchor object-guid",
            Warning::AnchorSourceDiffers.code(),
            name(used_role),
            name(*other_role)
        ));
    }
}
