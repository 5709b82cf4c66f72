//! `rollback`'s run: every change an earlier apply or clear made, from its journal (best) or
//! its report, checked against the user as it is now and put back through [`WriteRun`].

use std::path::{Path, PathBuf};

use super::connection::Connect;
use super::stages;
use super::write::{Settings, WriteRun};
use crate::exit_code::ExitCode;
use crate::graph::read::{ReadStrategy, Wanted};
use crate::journal::{Entry, Journal, Step};
use crate::outcome::Outcome;
use crate::plan::{Action, TenantIndex};
use crate::report::{self, Record};
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
    report::check_output(&args.output, report::REPORT_FORMATS)?;
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
        let records = changes
            .iter()
            .map(|c| {
                let now = users.get(c.user_id.as_str()).copied();
                let mut record = record_for(c, now, &args.source);
                if let Some(user) = now {
                    route_federated(&mut record, user, &index, args.federated_hop);
                }
                record
            })
            .collect();
        let run = WriteRun {
            connection,
            read,
            write: &args.write,
            output: &args.output,
            identity,
            resume,
        };
        let code = run
            .carry_out(records, Outcome::Restored, |r| {
                r.previous_immutable_id.clone().filter(|v| !v.is_empty())
            })
            .await?;
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
            purged: (r.action == Action::PurgeHolderThenStamp.code() && !r.holder_id.is_empty())
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
fn put_back_object_identifier(record: &mut Record, linked: &str) {
    let nothing_else = record.action == Action::None.code()
        && matches!(
            record.outcome,
            Some(Outcome::Restored | Outcome::AlreadyMatched)
        );
    let putting_back = Action::from_code(&record.action)
        .is_some_and(|a| matches!(a, Action::Stamp | Action::Clear));
    if !(nothing_else || putting_back) {
        return;
    }
    record.detail = if nothing_else {
        record.outcome = Some(match record.previous_immutable_id {
            Some(_) => Outcome::WouldStamp,
            None => Outcome::WouldClear,
        });
        format!("will put back onPremisesObjectIdentifier {linked} (and send again the previous ImmutableId the user already holds)")
    } else {
        format!("{} and onPremisesObjectIdentifier {linked}", record.detail)
    };
    record.action = Action::PutBackObjectIdentifier.code().to_string();
    record.object_identifier = Some(linked.to_string());
}

/// A planned restore to a user in a federated domain goes through the hop, or is refused
/// `federated-domain` without `--federated-hop`.
fn route_federated(record: &mut Record, user: &User, index: &TenantIndex, hop: bool) {
    let Some(action) = Action::from_code(&record.action) else {
        return;
    };
    match index.federated_route(action, user, hop) {
        Ok(action) => record.action = action.code().to_string(),
        Err(verdict) => {
            record.outcome = Some(verdict.outcome);
            record.detail = verdict.detail;
            record.action = Action::None.code().to_string();
        }
    }
}

/// The planned rollback of one change, checked against the user as it is now (`None`: gone).
fn record_for(change: &Change, now: Option<&User>, source: &Path) -> Record {
    let mut record = Record {
        row: change.row,
        source: format!("{} row {}", source.display(), change.row),
        line: change.row as u64,
        upn: change.upn.clone(),
        cloud_user_id: change.user_id.clone(),
        cloud_upn: change.upn.clone(),
        immutable_id: change.written.clone().unwrap_or_default(),
        previous_immutable_id: change.previous.clone(),
        ..Record::default()
    };
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
    record.outcome = Some(outcome);
    record.action = action.code().to_string();
    record.detail = detail;
    if let (Some(linked), Some(_)) = (&change.object_identifier, now) {
        put_back_object_identifier(&mut record, linked);
    }
    // The holder columns name the deleted user the run purged: what this row cannot undo.
    if let Some(holder) = &change.purged {
        record.holder_id = holder.clone();
    }
    record
}
