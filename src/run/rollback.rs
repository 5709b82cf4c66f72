//! `rollback`'s run: every change an earlier apply or clear made, from its journal (best) or
//! its report, checked against the user as it is now and put back through [`WriteRun`].

use std::path::{Path, PathBuf};

use super::connection::Connect;
use super::stages;
use super::write::{Settings, WriteRun};
use crate::exit_code::ExitCode;
use crate::graph::read::{ReadStrategy, Wanted};
use crate::journal::{Entry, Journal, Step};
use crate::outcome::{Outcome, Verdict};
use crate::plan::{Action, Holder, TargetState, TenantIndex};
use crate::planned::{Named, PlannedRow};
use crate::report;
use crate::resume::{self, RunIdentity};
use crate::tenant::User;

/// What `rollback` was asked to do.
pub(crate) struct Options {
    /// The journal (REPORT.journal) or the report (.csv, .xlsx or .json) of the run to undo.
    pub(crate) source: PathBuf,
    /// The rollback's own report; its journal is written beside it.
    pub(crate) output: PathBuf,
    /// Put values back on users in a federated domain through the journaled hop.
    pub(crate) federated_hop: bool,
    pub(crate) strategy: ReadStrategy,
    pub(crate) write: Settings,
}

/// One change to undo: which user, what the run wrote, what was there before.
struct Change {
    row: usize,
    user_id: String,
    upn: String,
    written: Option<String>,
    previous: Option<String>,
    /// The run was killed between sending the write and journaling its answer: whether it
    /// took effect is told by the user as it is now.
    in_doubt: bool,
    /// The deleted holder the run purged for good before writing: nothing brings it back.
    purged: Option<String>,
    /// The onPremisesObjectIdentifier the run cleared (`--clear-object-identifier`): put
    /// back before the anchor.
    object_identifier: Option<String>,
}

pub(crate) fn run(args: &Options, target: &impl Connect) -> crate::Result<ExitCode> {
    args.write
        .check_report(&args.output, &args.source, target)?;
    let flags = if args.federated_hop {
        vec!["--federated-hop".to_string()]
    } else {
        Vec::new()
    };
    let identity = RunIdentity::new("rollback", &args.source, flags)?;
    let resume = resume::open(args.write.resume.as_deref(), &identity)?;
    let changes = if Journal::is_journal_path(&args.source) {
        from_journal(&args.source)?
    } else {
        from_report(&args.source)?
    };
    let purged: Vec<&str> = changes.iter().filter_map(|c| c.purged.as_deref()).collect();
    let has_purged = !purged.is_empty();
    if has_purged {
        eprintln!(
            "CANNOT UNDO: the run purged {} deleted users from the recycle bin for good ({}); hardmatch cannot bring them back",
            purged.len(),
            purged.join(", ")
        );
    }
    super::runtime()?.block_on(async {
        let connection = target.connect().await?;
        let mut wanted = Wanted::default();
        for change in &changes {
            wanted.id(&change.user_id);
        }
        // A 403 on a user Graph guards must not count toward the early stop.
        wanted.with_roles();
        let read = stages::read_tenant(&connection.client, &wanted, args.strategy).await?;
        let users = read.tenant.users_by_id();
        let index = TenantIndex::new(&read.tenant);
        let rows = changes
            .iter()
            .map(|c| {
                let now = users.get(c.user_id.as_str()).copied();
                let mut planned = planned_for(c, now, &args.source);
                if let Some(user) = now {
                    route_federated(&mut planned, user, &index, args.federated_hop);
                }
                planned
            })
            .collect();
        let run = WriteRun::new(
            connection,
            read,
            identity,
            resume,
            &args.write,
            &args.output,
        );
        let code = run.carry_out(rows, Outcome::Restored).await?;
        Ok(if code == ExitCode::Success && has_purged {
            eprintln!("not everything was undone: the purged users are gone for good");
            ExitCode::NeedsAttention
        } else {
            code
        })
    })
}

/// Every anchor write the journal shows as applied, or as sent with its answer never
/// journaled (a killed run), with the value before it, target user by target user.
fn from_journal(path: &Path) -> crate::Result<Vec<Change>> {
    let journaled = Journal::read_finished(path)?;
    Ok(journaled
        .targets
        .iter()
        .filter_map(|history| {
            let object_identifier = history.cleared_object_identifier().map(str::to_string);
            // A stamp Graph refused after the object identifier was cleared: only that to undo.
            let (in_doubt, anchor_refused) = match history.result(Step::Anchor) {
                Some(Entry::Result { applied: true, .. }) => (false, false),
                Some(_) if object_identifier.is_some() => (false, true),
                Some(_) => return None,
                None => (true, false),
            };
            let (user_id, upn, previous, new) = history.first_anchor_intent()?;
            Some(Change {
                row: history.row,
                user_id: user_id.to_string(),
                upn: upn.to_string(),
                written: if anchor_refused { previous } else { new }.clone(),
                previous: previous.clone(),
                in_doubt,
                purged: history.purged_holder().map(str::to_string),
                object_identifier,
            })
        })
        .collect())
}

/// The rows of a report (CSV, XLSX or JSON) that an apply or clear wrote.
fn from_report(path: &Path) -> crate::Result<Vec<Change>> {
    let records = report::read::read(path)?;
    Ok(records
        .into_iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Some(Outcome::Stamped | Outcome::Cleared | Outcome::Restored)
            )
        })
        .map(|r| Change {
            purged: (Action::from_code(&r.action) == Some(Action::PurgeHolderThenStamp)
                && !r.holder_id.is_empty())
            .then(|| r.holder_id.clone()),
            row: r.row,
            written: (r.outcome == Some(Outcome::Stamped)).then(|| r.immutable_id.clone()),
            previous: r.previous_immutable_id.filter(|v| !v.is_empty()),
            user_id: r.cloud_user_id,
            upn: r.cloud_upn,
            in_doubt: false,
            // A report has no column for it: only the journal can put it back.
            object_identifier: None,
        })
        .collect())
}

/// The object identifier a `--clear-object-identifier` run cleared goes back before the
/// anchor. When the anchor needs nothing (it already holds its previous value), the anchor
/// write re-sends that value: the one write that carries a row in a rollback.
fn put_back_object_identifier(planned: &mut PlannedRow, linked: &str) {
    let nothing_else = planned.action == Some(Action::None)
        && matches!(
            planned.outcome(),
            Outcome::Restored | Outcome::AlreadyMatched
        );
    let putting_back = matches!(planned.action, Some(Action::Stamp | Action::Clear));
    if !(nothing_else || putting_back) {
        return;
    }
    planned.verdict = if nothing_else {
        let outcome = match planned.previous_immutable_id {
            Some(_) => Outcome::WouldStamp,
            None => Outcome::WouldClear,
        };
        Verdict::new(outcome, format!("will put back onPremisesObjectIdentifier {linked} (and send again the previous ImmutableId the user already holds)"))
    } else {
        let detail = format!(
            "{} and onPremisesObjectIdentifier {linked}",
            planned.verdict.detail
        );
        Verdict::new(planned.outcome(), detail)
    };
    planned.action = Some(Action::PutBackObjectIdentifier);
    planned.object_identifier = Some(linked.to_string());
}

/// A planned restore to a user in a federated domain goes through the hop, or is refused
/// `federated-domain` without `--federated-hop`.
fn route_federated(planned: &mut PlannedRow, user: &User, index: &TenantIndex, hop: bool) {
    let Some(action) = planned.action else {
        return;
    };
    match index.federated_route(action, user, hop) {
        Ok(action) => planned.action = Some(action),
        Err(verdict) => planned.settle(verdict),
    }
}

/// The planned rollback of one change, checked against the user as it is now (`None`: gone).
fn planned_for(change: &Change, now: Option<&User>, source: &Path) -> PlannedRow {
    let named = Named {
        source: format!("{} row {}", source.display(), change.row),
        line: change.row as u64,
        upn: change.upn.clone(),
        immutable_id: change.written.clone().unwrap_or_default(),
        ..Named::default()
    };
    let (verdict, action) = restore(change, now);
    let mut planned = PlannedRow::new(change.row, named, verdict);
    planned.action = Some(action);
    planned.target = Some(TargetState {
        id: change.user_id.clone(),
        user_principal_name: change.upn.clone(),
        on_premises_immutable_id: now.and_then(|u| u.on_premises_immutable_id.clone()),
        on_premises_sync_enabled: now.and_then(|u| u.on_premises_sync_enabled) == Some(true),
        on_premises_object_identifier: None,
    });
    planned.previous_immutable_id = change.previous.clone();
    planned.new_anchor = change.previous.clone().filter(|v| !v.is_empty());
    if let (Some(linked), Some(_)) = (&change.object_identifier, now) {
        put_back_object_identifier(&mut planned, linked);
    }
    // The holder columns name the deleted user the run purged: what this row cannot undo.
    planned.holder = change.purged.as_ref().map(|id| Holder {
        id: id.clone(),
        user_principal_name: String::new(),
        deleted_date_time: None,
    });
    planned
}

/// What putting one change back calls for, given the user as it is now (`None`: gone).
fn restore(change: &Change, now: Option<&User>) -> (Verdict, Action) {
    let holds = now
        .and_then(|u| u.on_premises_immutable_id.clone())
        .filter(|v| !v.is_empty());
    let (outcome, action, detail) = match now {
        None => (
            Outcome::TargetNotFound,
            Action::None,
            "the user no longer exists".to_string(),
        ),
        Some(_) if change.in_doubt && holds == change.previous => (
            Outcome::AlreadyMatched,
            Action::None,
            "the interrupted run's write never took effect; nothing to put back".to_string(),
        ),
        Some(_) if holds == change.previous => (
            Outcome::Restored,
            Action::None,
            format!(
                "already holds its previous value ({}); nothing to put back",
                holds.as_deref().unwrap_or("no value")
            ),
        ),
        Some(_) if holds != change.written => (
            Outcome::TargetChangedSincePlan,
            Action::None,
            format!(
                "changed since the run: holds {} where the run wrote {}; left alone",
                holds.as_deref().unwrap_or("no value"),
                change.written.as_deref().unwrap_or("no value")
            ),
        ),
        Some(_) => match &change.previous {
            Some(previous) => (
                Outcome::WouldStamp,
                Action::Stamp,
                format!("will put back {previous}"),
            ),
            None => (
                Outcome::WouldClear,
                Action::Clear,
                "will put back no value (null)".to_string(),
            ),
        },
    };
    (Verdict::new(outcome, detail), action)
}
