//! The verify stage: what the sync cycle did with each row of an earlier run, told by the
//! tenant as it is now (docs/graph.md, "What the next sync cycle does with a stamp").
//!
//! It takes the records of an `apply` report (or of its journal), and the users those rows
//! name and the users that hold their anchors, and gives each row one verify outcome:
//! `matched`, `awaiting-sync`, `match-blocked`, `duplicate-created`, `anchor-changed`,
//! `target-gone` or `not-stamped`. Pure functions: the command reads, this decides.

use std::collections::HashMap;
use std::path::Path;

use crate::graph::read::Wanted;
use crate::journal::{Entry, Journal, Step};
use crate::outcome::{Outcome, Verdict};
use crate::report::Record;
use crate::tenant::{Tenant, User};

/// The records of the run to verify: its report (CSV, XLSX, JSON) or its journal, which
/// holds only the rows that were written.
pub(crate) fn load(path: &Path) -> crate::Result<Vec<Record>> {
    if Journal::is_journal_path(path) {
        from_journal(path)
    } else {
        crate::report::read::read(path)
    }
}

/// One record per journaled anchor write, with the value written and its result. A write
/// whose result was never journaled (a killed run) keeps no outcome: the tenant tells.
fn from_journal(path: &Path) -> crate::Result<Vec<Record>> {
    let journaled = Journal::read_finished(path)?;
    Ok(journaled
        .targets
        .iter()
        .filter_map(|history| {
            let (user_id, upn, previous, new) = history.first_anchor_intent()?;
            let outcome = match history.result(Step::Anchor) {
                Some(Entry::Result { outcome, .. }) => Some(*outcome),
                _ => None,
            };
            let row = history.row;
            Some(Record {
                row,
                source: format!("{} row {row}", path.display()),
                upn: upn.to_string(),
                cloud_user_id: user_id.to_string(),
                cloud_upn: upn.to_string(),
                immutable_id: new.clone().unwrap_or_default(),
                previous_immutable_id: previous.clone(),
                outcome,
                ..Record::default()
            })
        })
        .collect())
}

/// The users verify must see: every row's cloud user, and whoever holds each row's anchor.
pub(crate) fn wanted(records: &[Record]) -> Wanted {
    let mut wanted = Wanted::default();
    for record in records {
        if !record.cloud_user_id.is_empty() {
            wanted.id(&record.cloud_user_id);
        }
        if !record.immutable_id.is_empty() {
            wanted.anchor(&record.immutable_id);
        }
    }
    wanted
}

/// The tenant as it is now, indexed the ways verify looks users up.
pub(crate) struct TenantNow<'t> {
    by_id: HashMap<String, &'t User>,
    deleted_by_id: HashMap<String, &'t User>,
    by_anchor: HashMap<&'t str, &'t User>,
}

impl<'t> TenantNow<'t> {
    pub(crate) fn new(tenant: &'t Tenant) -> TenantNow<'t> {
        let by_id = |users: &'t [User]| {
            users
                .iter()
                .map(|u| (u.id.to_ascii_lowercase(), u))
                .collect::<HashMap<_, _>>()
        };
        TenantNow {
            by_id: by_id(&tenant.users),
            deleted_by_id: by_id(&tenant.deleted_users),
            by_anchor: tenant
                .users
                .iter()
                .filter_map(|u| Some((u.on_premises_immutable_id.as_deref()?, u)))
                .collect(),
        }
    }

    fn user(&self, id: &str) -> Option<&'t User> {
        self.by_id.get(&id.to_ascii_lowercase()).copied()
    }

    fn deleted(&self, id: &str) -> Option<&'t User> {
        self.deleted_by_id.get(&id.to_ascii_lowercase()).copied()
    }

    fn holder(&self, anchor: &str) -> Option<&'t User> {
        self.by_anchor.get(anchor).copied()
    }
}

/// Every record with its verify outcome in `outcome`; the run's own outcome goes to `detail`
/// where the row was not stamped.
pub(crate) fn verify_all(records: &[Record], tenant: &Tenant) -> Vec<Record> {
    let now = TenantNow::new(tenant);
    records
        .iter()
        .map(|record| {
            let verdict = verify(record, &now);
            Record {
                outcome: Some(verdict.outcome),
                detail: verdict.detail,
                action: String::new(),
                ..record.clone()
            }
        })
        .collect()
}

/// Whether the run left this row's anchor on its cloud user: stamped, already there, or
/// written by a run killed before its answer was journaled.
fn expects_anchor(record: &Record) -> bool {
    !record.immutable_id.is_empty()
        && !record.cloud_user_id.is_empty()
        && matches!(
            record.outcome,
            Some(Outcome::Stamped | Outcome::AlreadyMatched) | None
        )
}

/// What the sync cycle did with one row.
pub(crate) fn verify(record: &Record, now: &TenantNow) -> Verdict {
    let anchor = record.immutable_id.as_str();
    if !expects_anchor(record) {
        return not_stamped(record, now);
    }
    let Some(target) = now.user(&record.cloud_user_id) else {
        return target_gone(record, now);
    };
    let holds = target.on_premises_immutable_id.as_deref().unwrap_or("");
    if holds != anchor {
        if let Some(holder) = now.holder(anchor).filter(|h| is_synced(h)) {
            return duplicate(holder, target);
        }
        return Verdict::new(
            Outcome::AnchorChanged,
            match holds {
                "" => format!("{} holds no anchor now, not the stamped {anchor}: something cleared it since the run; stamp it again or look at the tenant's audit log", target.user_principal_name),
                other => format!("{} holds {other} now, not the stamped {anchor}: something changed it since the run", target.user_principal_name),
            },
        );
    }
    if is_synced(target) {
        return matched(target);
    }
    if !target.on_premises_provisioning_errors.is_empty() {
        return blocked(target);
    }
    Verdict::new(
        Outcome::AwaitingSync,
        "cloud-only, holds the stamped anchor, no sync error: no sync cycle has run since the stamp, or the AD object is out of sync scope (check the connector's scoping and run a delta sync)",
    )
}

fn is_synced(user: &User) -> bool {
    user.on_premises_sync_enabled == Some(true)
}

fn matched(user: &User) -> Verdict {
    Verdict::new(
        Outcome::Matched,
        match &user.on_premises_last_sync_date_time {
            Some(at) => format!("synced (last sync {at}), same object, the anchor as stamped"),
            None => "synced, same object, the anchor as stamped".to_string(),
        },
    )
}

fn blocked(user: &User) -> Verdict {
    let errors: Vec<String> = user
        .on_premises_provisioning_errors
        .iter()
        .map(|e| e.describe())
        .collect();
    let hardening = errors.iter().any(|e| e.contains("security hardening"));
    let remedy = if hardening {
        "the 2026 hard-match protections refused the match: the cloud user holds or is eligible for a privileged role (remove it, sync, restore it), or its onPremisesObjectIdentifier is set (clear it, then sync)"
    } else {
        "fix what the error names, then run a sync cycle"
    };
    Verdict::new(
        Outcome::MatchBlocked,
        format!("sync error: {}; {remedy}", errors.join("; ")),
    )
}

fn duplicate(holder: &User, target: &User) -> Verdict {
    Verdict::new(
        Outcome::DuplicateCreated,
        format!(
            "sync created or matched another object: {} ({}) is synced and holds the row's anchor, while {} holds {}; delete the duplicate on-premises or take it out of sync scope, purge it from the recycle bin, then stamp the intended user again",
            holder.user_principal_name,
            holder.id,
            target.user_principal_name,
            target.on_premises_immutable_id.as_deref().unwrap_or("no anchor")
        ),
    )
}

fn target_gone(record: &Record, now: &TenantNow) -> Verdict {
    let detail = match now.deleted(&record.cloud_user_id) {
        Some(user) => format!(
            "{} was deleted ({}); it is in the recycle bin: restore it, or plan the row again",
            user.user_principal_name,
            user.deleted_date_time.as_deref().unwrap_or("date unknown")
        ),
        None => format!(
            "the stamped user {} ({}) no longer exists",
            record.cloud_upn, record.cloud_user_id
        ),
    };
    Verdict::new(Outcome::TargetGone, detail)
}

/// A row the run did not stamp: matched all the same if its cloud user is synced with the
/// row's anchor, a duplicate if another synced user holds it, else not stamped.
fn not_stamped(record: &Record, now: &TenantNow) -> Verdict {
    let earlier = match record.outcome {
        Some(outcome) if record.detail.is_empty() => outcome.code().to_string(),
        Some(outcome) => format!("{}: {}", outcome.code(), record.detail),
        None => "no outcome".to_string(),
    };
    let holder = (!record.immutable_id.is_empty())
        .then(|| now.holder(&record.immutable_id))
        .flatten()
        .filter(|h| is_synced(h));
    match holder {
        Some(holder) if holder.id.eq_ignore_ascii_case(&record.cloud_user_id) => Verdict::new(
            Outcome::Matched,
            format!("synced with the row's anchor, though the run did not stamp it ({earlier}): sync matched it on its own (soft match by UPN or mail, or an earlier stamp)"),
        ),
        Some(holder) => Verdict::new(
            Outcome::DuplicateCreated,
            format!(
                "the run did not stamp this row ({earlier}), and sync created or matched {} ({}), which holds the row's anchor; if that is not the intended user, delete it on-premises or take it out of sync scope and purge it from the recycle bin",
                holder.user_principal_name, holder.id
            ),
        ),
        None => match now.user(&record.cloud_user_id) {
            Some(target) if !target.on_premises_provisioning_errors.is_empty() => {
                let blocked = blocked(target);
                Verdict::new(
                    Outcome::MatchBlocked,
                    format!("the run did not stamp this row ({earlier}), and sync tried to match it: {}", blocked.detail),
                )
            }
            _ => Verdict::new(
                Outcome::NotStamped,
                format!("the run did not stamp this row ({earlier})"),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::ProvisioningError;

    const ANCHOR: &str = "1wfM9xV8fUSHbcAbDlqeOA==";

    fn user(id: &str, anchor: Option<&str>, synced: bool) -> User {
        User {
            id: id.into(),
            user_principal_name: format!("{id}@contoso.com"),
            on_premises_immutable_id: anchor.map(str::to_string),
            on_premises_sync_enabled: Some(synced),
            ..User::default()
        }
    }

    fn stamped(outcome: Outcome) -> Record {
        Record {
            row: 1,
            cloud_user_id: "alice".into(),
            cloud_upn: "alice@contoso.com".into(),
            immutable_id: ANCHOR.into(),
            outcome: Some(outcome),
            ..Record::default()
        }
    }

    fn outcome_of(record: &Record, users: Vec<User>, deleted: Vec<User>) -> Verdict {
        let tenant = Tenant {
            users,
            deleted_users: deleted,
            ..Tenant::default()
        };
        verify(record, &TenantNow::new(&tenant))
    }

    #[test]
    fn a_stamped_user_now_synced_with_its_anchor_is_matched() {
        let verdict = outcome_of(
            &stamped(Outcome::Stamped),
            vec![user("ALICE", Some(ANCHOR), true)],
            vec![],
        );
        assert_eq!(verdict.outcome, Outcome::Matched, "{}", verdict.detail);
    }

    #[test]
    fn still_cloud_only_is_awaiting_sync_and_a_sync_error_is_blocked() {
        let cloud_only = user("alice", Some(ANCHOR), false);
        let verdict = outcome_of(&stamped(Outcome::Stamped), vec![cloud_only.clone()], vec![]);
        assert_eq!(verdict.outcome, Outcome::AwaitingSync);

        let mut blocked = cloud_only;
        blocked.on_premises_provisioning_errors = vec![ProvisioningError {
            category: Some("PropertyConflict".into()),
            property_causing_error: Some("SourceAnchor".into()),
            value: Some("Hard match operation blocked due to security hardening. Review OnPremisesObjectIdentifier mapping.".into()),
            occurred_date_time: Some("2026-12-03T10:00:00Z".into()),
        }];
        let verdict = outcome_of(&stamped(Outcome::Stamped), vec![blocked], vec![]);
        assert_eq!(verdict.outcome, Outcome::MatchBlocked);
        assert!(
            verdict.detail.contains("security hardening"),
            "{}",
            verdict.detail
        );
        assert!(
            verdict.detail.contains("privileged role"),
            "{}",
            verdict.detail
        );
    }

    #[test]
    fn another_synced_user_with_the_anchor_is_a_duplicate_and_a_lone_change_is_not() {
        let verdict = outcome_of(
            &stamped(Outcome::Stamped),
            vec![
                user("alice", None, false),
                user("alice1", Some(ANCHOR), true),
            ],
            vec![],
        );
        assert_eq!(verdict.outcome, Outcome::DuplicateCreated);
        assert!(
            verdict.detail.contains("alice1@contoso.com"),
            "{}",
            verdict.detail
        );

        let verdict = outcome_of(
            &stamped(Outcome::Stamped),
            vec![user("alice", Some("BpazOkLGm0iEtljAONPvOQ=="), false)],
            vec![],
        );
        assert_eq!(verdict.outcome, Outcome::AnchorChanged);
        assert!(verdict.detail.contains("BpazOkLGm0iEtljAONPvOQ=="));
    }

    #[test]
    fn a_deleted_or_missing_target_is_gone() {
        let mut deleted = user("alice", Some(ANCHOR), false);
        deleted.deleted_date_time = Some("2026-12-01T00:00:00Z".into());
        let verdict = outcome_of(&stamped(Outcome::Stamped), vec![], vec![deleted]);
        assert_eq!(verdict.outcome, Outcome::TargetGone);
        assert!(verdict.detail.contains("recycle bin"), "{}", verdict.detail);
        let verdict = outcome_of(&stamped(Outcome::Stamped), vec![], vec![]);
        assert_eq!(verdict.outcome, Outcome::TargetGone);
    }

    #[test]
    fn rows_the_run_did_not_stamp_say_so_unless_sync_acted_on_their_anchor() {
        let mut not_found = stamped(Outcome::TargetNotFound);
        not_found.detail = "no cloud user".into();
        let verdict = outcome_of(&not_found, vec![], vec![]);
        assert_eq!(verdict.outcome, Outcome::NotStamped);
        assert_eq!(
            verdict.detail,
            "the run did not stamp this row (target-not-found: no cloud user)"
        );
        let verdict = outcome_of(&not_found, vec![user("new", Some(ANCHOR), true)], vec![]);
        assert_eq!(verdict.outcome, Outcome::DuplicateCreated);
    }

    #[test]
    fn a_write_whose_answer_was_never_journaled_is_judged_by_the_tenant() {
        let mut in_doubt = stamped(Outcome::Stamped);
        in_doubt.outcome = None;
        let verdict = outcome_of(&in_doubt, vec![user("alice", Some(ANCHOR), false)], vec![]);
        assert_eq!(verdict.outcome, Outcome::AwaitingSync);
    }
}
