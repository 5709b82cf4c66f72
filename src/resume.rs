//! Resume: carrying on an interrupted `apply`, `clear` or `rollback` from its journal.
//!
//! This module owns everything `--resume` means, in one place:
//! - which run a journal belongs to ([`RunIdentity`]: the command, the input's path, size and
//!   SHA-256, the tenant and the flags that change what is written), recorded in the journal's
//!   first line and checked before anything is read from Graph or written;
//! - matching the journal to this run's rows by target user and anchor, never by row number,
//!   so that a re-ordered or filtered re-export resumes correctly;
//! - what the interrupted run did, what is left, and what is retried ([`Resume::credit`]);
//! - whether a write the interrupted run sent without journaling its answer took effect
//!   ([`applied_after_all`]);
//! - the summary shown before the resumed run asks for confirmation, and the command that
//!   continues a run ([`continue_command`]).
//!
//! The journal file itself (its format, lock and durability) is [`crate::journal`]'s.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::graph::pace::StaleRead;
use crate::graph::{Directory, GraphClient};
use crate::journal::{self, Entry, Journal, Journaled, Replay, RowHistory, Step};
use crate::outcome::{Outcome, Verdict};
use crate::planned::PlannedRow;
use crate::tenant::Tenant;

/// What a write run is: recorded in its journal's first line, checked by `--resume`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunIdentity {
    /// `apply`, `clear` or `rollback`.
    pub(crate) command: String,
    pub(crate) input: InputFingerprint,
    /// The tenant written to.
    #[serde(default)]
    pub(crate) tenant: String,
    /// The options that change what is written, as they would be typed.
    #[serde(default)]
    pub(crate) flags: Vec<String>,
}

/// Which file a run read: where it was, and what was in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct InputFingerprint {
    /// The absolute path.
    pub(crate) path: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

/// The flags that add a destructive step, and what that step does.
const DESTRUCTIVE: [(&str, &str); 4] = [
    (
        "--overwrite",
        "overwrites ImmutableIds that targets already hold",
    ),
    (
        "--purge-deleted-holders",
        "purges deleted holders from the recycle bin for good",
    ),
    (
        "--federated-hop",
        "moves UPNs out of their federated domain and back",
    ),
    (
        "--clear-object-identifier",
        "clears onPremisesObjectIdentifier on targets linked to another on-premises object",
    ),
];

impl InputFingerprint {
    /// Reads `path` once through SHA-256.
    pub(crate) fn of(path: &Path) -> crate::Result<InputFingerprint> {
        let io = |e| Error::io(path, e);
        let mut file = std::fs::File::open(path).map_err(io)?;
        // The SHA-256 of the crypto TLS already links (aws-lc-rs).
        let mut hasher = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut buffer = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buffer).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            size += n as u64;
        }
        let sha256 = hex::encode(hasher.finish());
        Ok(InputFingerprint {
            path: absolute(path).display().to_string(),
            size,
            sha256,
        })
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

impl RunIdentity {
    /// The identity of a run of `command` reading `input` with `flags` (the tenant is filled
    /// in once it has been read).
    pub(crate) fn new(
        command: &str,
        input: &Path,
        flags: Vec<String>,
    ) -> crate::Result<RunIdentity> {
        Ok(RunIdentity {
            command: command.to_string(),
            input: InputFingerprint::of(input)?,
            tenant: String::new(),
            flags,
        })
    }

    /// The first line of this run's journal.
    pub(crate) fn run_entry(&self) -> Entry {
        Entry::Run {
            version: env!("CARGO_PKG_VERSION").to_string(),
            command: crate::report::redact_args(std::env::args()),
            input: self.input.path.clone(),
            started: journal::now(),
            identity: Some(self.clone()),
        }
    }
}

/// An interrupted run's journal, locked for this run, checked against it.
pub(crate) struct Resume {
    path: PathBuf,
    journal: Journal,
    journaled: Journaled,
    recorded: Option<RunIdentity>,
    current: RunIdentity,
    /// The same input file, re-exported since (rows are matched by target and anchor).
    input_changed: bool,
}

/// What the journal says about this run's rows, once matched to them.
#[derive(Debug, Default)]
pub(crate) struct Credit {
    /// For the writer: the rows whose write is in doubt, by this run's row numbers.
    pub(crate) replay: Replay,
    /// Results to journal for writes the interrupted run sent but never saw answered, which
    /// the tenant shows took effect.
    pub(crate) settled: Vec<Entry>,
    /// Rows the interrupted run wrote.
    pub(crate) done: usize,
    /// Rows whose journaled write did not take effect, planned again.
    pub(crate) retried: usize,
    /// Rows whose write may or may not have reached Graph: re-read before sending again.
    pub(crate) in_doubt: usize,
    /// Users in the journal that no row of this input matches (by target and anchor).
    pub(crate) not_in_input: usize,
}

impl Resume {
    /// Opens and locks the journal at `path` and checks that it belongs to `current`: the
    /// same command, the same input file (by content, or by path for a re-export), and a
    /// journal hardmatch can read. Nothing is read from Graph or written before this.
    pub(crate) fn open(path: &Path, current: RunIdentity) -> crate::Result<Resume> {
        let journal = Journal::reopen(path)?;
        let journaled = Journal::read(path)?;
        let recorded = match &journaled.run {
            Some(Entry::Run {
                identity: Some(identity),
                ..
            }) => Some(identity.clone()),
            Some(Entry::Run { input, .. }) if !same_file(Path::new(input), &current) => {
                return Err(another_input(path, input, &current));
            }
            Some(_) => None,
            None if journaled.targets.is_empty() => None,
            None => {
                return Err(Error::Input(format!(
                    "{}: no run line at its start; not a journal hardmatch wrote",
                    path.display()
                )))
            }
        };
        let mut resume = Resume {
            path: path.to_owned(),
            journal,
            journaled,
            recorded,
            current,
            input_changed: false,
        };
        resume.check_run()?;
        if resume.journaled.run.is_none() {
            let entry = resume.current.run_entry();
            resume.journal.record(&entry)?;
        }
        Ok(resume)
    }

    fn check_run(&mut self) -> crate::Result<()> {
        let Some(recorded) = &self.recorded else {
            return Ok(());
        };
        if recorded.command != self.current.command {
            return Err(Error::Usage(format!(
                "{} is the journal of a `hardmatch {}` run; `hardmatch {}` cannot resume it. Nothing was written.",
                self.path.display(),
                recorded.command,
                self.current.command
            )));
        }
        if recorded.input.sha256 == self.current.input.sha256 {
            return Ok(());
        }
        if recorded.input.path != self.current.input.path {
            return Err(another_input(
                &self.path,
                &recorded.input.path,
                &self.current,
            ));
        }
        self.input_changed = true;
        Ok(())
    }

    /// Refuses to resume against another tenant than the journal's.
    pub(crate) fn check_tenant(&mut self, tenant: &str) -> crate::Result<()> {
        self.current.tenant = tenant.to_string();
        match &self.recorded {
            Some(recorded) if !recorded.tenant.is_empty() && recorded.tenant != tenant => {
                Err(Error::Usage(format!(
                    "{} is the journal of a run on tenant {}; this run is signed in to tenant {}. Nothing was written.",
                    self.path.display(),
                    recorded.tenant,
                    tenant
                )))
            }
            _ => Ok(()),
        }
    }

    /// The flags given now that the interrupted run was not given, and the other way round.
    fn flag_changes(&self) -> (Vec<&str>, Vec<&str>) {
        fn missing_from<'a>(flags: &'a [String], other: &[String]) -> Vec<&'a str> {
            flags
                .iter()
                .filter(|f| !other.contains(f))
                .map(String::as_str)
                .collect()
        }
        let Some(recorded) = &self.recorded else {
            return (Vec::new(), Vec::new());
        };
        (
            missing_from(&self.current.flags, &recorded.flags),
            missing_from(&recorded.flags, &self.current.flags),
        )
    }

    /// Destructive flags this resumed run adds to the interrupted one's.
    pub(crate) fn added_destructive_flags(&self) -> Vec<&'static str> {
        let (added, _) = self.flag_changes();
        DESTRUCTIVE
            .iter()
            .map(|(flag, _)| *flag)
            .filter(|flag| added.contains(flag))
            .collect()
    }

    /// Matches the journal to this run's planned `rows` by target user and the anchor each
    /// would set, and credits the rows the interrupted run wrote: they keep the outcome, the
    /// request and the true previous value the journal recorded, not what the tenant shows
    /// now (the value this run wrote). Rows whose journaled write did not take effect are left
    /// as planned, so they are written again.
    pub(crate) fn credit(&self, rows: &mut [PlannedRow], tenant: &Tenant) -> Credit {
        let users = tenant.users_by_id();
        let mut credit = Credit::default();
        let mut matched = std::collections::HashSet::new();
        for row in rows.iter_mut() {
            let Some(history) = self.matching(row) else {
                continue;
            };
            matched.insert(history.user_id.as_str());
            let in_doubt = history.result(Step::Anchor).is_none();
            if in_doubt {
                let now_holds = users
                    .get(history.user_id.as_str())
                    .and_then(|u| u.on_premises_immutable_id.clone())
                    .filter(|v| !v.is_empty());
                if now_holds == row.new_anchor {
                    credit.settled.push(self.settle(row, history));
                } else {
                    credit.in_doubt += 1;
                    credit.replay.rows.insert(row.row, history.clone());
                    continue;
                }
            } else if !history.applied(Step::Anchor) {
                credit.retried += 1;
                continue;
            }
            self.mark_done(row, history);
            credit.done += 1;
        }
        credit.not_in_input = self
            .journaled
            .targets
            .iter()
            .filter(|h| h.first_anchor_intent().is_some() && !matched.contains(h.user_id.as_str()))
            .count();
        credit
    }

    /// The journal's history of this row's target, if it wrote the same anchor there.
    fn matching(&self, row: &PlannedRow) -> Option<&RowHistory> {
        let target = row.target.as_ref().filter(|t| !t.id.is_empty())?;
        let history = self.journaled.target(&target.id)?;
        let (_, _, _, written) = history.first_anchor_intent()?;
        (*written == row.new_anchor).then_some(history)
    }

    /// The result to journal for an in-doubt write that the tenant shows took effect.
    fn settle(&self, row: &PlannedRow, history: &RowHistory) -> Entry {
        Entry::Result {
            row: row.row,
            step: Step::Anchor,
            user_id: history.user_id.clone(),
            applied: true,
            outcome: self.success(),
            http_status: None,
            request_id: None,
            at: journal::now(),
        }
    }

    fn success(&self) -> Outcome {
        match self.current.command.as_str() {
            "clear" => Outcome::Cleared,
            "rollback" => Outcome::Restored,
            _ => Outcome::Stamped,
        }
    }

    /// A row the interrupted run wrote: its outcome, request and previous value from the
    /// journal; nothing is sent for it again.
    fn mark_done(&self, row: &mut PlannedRow, history: &RowHistory) {
        row.settle(Verdict::new(
            self.success(),
            "written by the interrupted run (from its journal); not sent again",
        ));
        if let Some(Entry::Result {
            http_status,
            request_id,
            at,
            ..
        }) = history.result(Step::Anchor)
        {
            row.answer.http_status = *http_status;
            row.answer.request_id = request_id.clone().unwrap_or_default();
            row.answer.timestamp = at.clone();
        }
        // A rollback's report shows the value it puts back in this column; apply and clear
        // show the value before the write, which the tenant no longer holds: the journal does.
        if self.current.command != "rollback" {
            if let Some((_, _, previous, _)) = history.first_anchor_intent() {
                row.previous_immutable_id = previous.clone();
            }
        }
    }

    /// What the interrupted run did and what this one will do, for the confirmation.
    pub(crate) fn summary(&self, credit: &Credit) -> String {
        let mut text = format!("resuming the run journaled in {}", self.path.display());
        if let Some(Entry::Run { started, .. }) = &self.journaled.run {
            text.push_str(&format!(" (started {started})"));
        }
        text.push_str(&format!(
            ":\n  the interrupted run wrote {} rows (not sent again)\n",
            credit.done
        ));
        if credit.retried > 0 {
            text.push_str(&format!(
                "  {} rows it could not write are planned again (their journaled result did not take effect)\n",
                credit.retried
            ));
        }
        if credit.in_doubt > 0 {
            text.push_str(&format!(
                "  {} writes it sent without seeing the answer are re-read before being sent again\n",
                credit.in_doubt
            ));
        }
        if credit.not_in_input > 0 {
            text.push_str(&format!(
                "  {} users in the journal match no row of this input (by target and anchor); left as they are\n",
                credit.not_in_input
            ));
        }
        if self.input_changed {
            text.push_str(&format!(
                "  NOTE: {} changed since the interrupted run (a new export?); rows are matched to the journal by target and anchor\n",
                self.current.input.path
            ));
        }
        let (added, dropped) = self.flag_changes();
        for flag in &added {
            match DESTRUCTIVE.iter().find(|(f, _)| f == flag) {
                Some((_, what)) => text.push_str(&format!(
                    "  DESTRUCTIVE: {flag} was not given to the interrupted run; this run {what}\n"
                )),
                None => text.push_str(&format!("  {flag} was not given to the interrupted run\n")),
            }
        }
        for flag in &dropped {
            text.push_str(&format!(
                "  {flag} was given to the interrupted run, not to this one\n"
            ));
        }
        text
    }

    /// On resume, before the tenant is read: a federated hop cut short between moving the
    /// UPN out and moving it back leaves the user under the stopover domain, where the plan
    /// would not find it. Move each such user home first, journaled like any step.
    pub(crate) async fn repair_interrupted_hops(
        &mut self,
        client: &GraphClient,
    ) -> crate::Result<usize> {
        let stranded: Vec<(usize, String, String)> = self
            .journaled
            .targets
            .iter()
            .filter(|h| h.applied(Step::UpnOut) && !h.applied(Step::UpnBack))
            .filter_map(|h| {
                h.intents.iter().find_map(|e| match e {
                    Entry::Intent {
                        step: Step::UpnOut,
                        row,
                        user_id,
                        upn,
                        ..
                    } => Some((*row, user_id.clone(), upn.clone())),
                    _ => None,
                })
            })
            .collect();
        for (row, user_id, home) in &stranded {
            self.journal.record(&Entry::Intent {
                row: *row,
                step: Step::UpnBack,
                user_id: user_id.clone(),
                upn: home.clone(),
                previous: None,
                new: Some(home.clone()),
                at: journal::now(),
            })?;
            let result = client.set_upn(user_id, home).await;
            self.journal.record(&Entry::Result {
                row: *row,
                step: Step::UpnBack,
                user_id: user_id.clone(),
                applied: result.is_ok(),
                outcome: result
                    .as_ref()
                    .map_or(Outcome::GraphError, |_| Outcome::Stamped),
                http_status: result.as_ref().ok().and_then(|a| a.meta.status),
                request_id: result.as_ref().ok().and_then(|a| a.meta.request_id.clone()),
                at: journal::now(),
            })?;
            result.map_err(|e| Error::Other(format!("cannot move {home} back from its federated hop: {e}; move it back by hand, then resume")))?;
        }
        Ok(stranded.len())
    }

    /// The locked journal, for the resumed run's writer to append to.
    pub(crate) fn into_journal(self) -> Journal {
        self.journal
    }
}

/// Whether the user `user_id` holds `new_anchor` now (`None`: no anchor): an in-doubt write
/// took effect. A read that says no may be stale (the write could have landed a moment before
/// the interruption), so it is asked again with backoff before the write is sent again.
pub(crate) async fn applied_after_all<D: Directory>(
    directory: &D,
    user_id: &str,
    new_anchor: Option<&str>,
) -> bool {
    let holds_new = || async {
        match directory.get_user(user_id).await {
            Ok(Some(user)) => {
                user.on_premises_immutable_id
                    .as_deref()
                    .filter(|v| !v.is_empty())
                    == new_anchor
            }
            _ => false,
        }
    };
    let first = holds_new().await;
    StaleRead::default()
        .settle(
            "was the in-doubt write applied",
            first,
            holds_new,
            |applied| !applied,
        )
        .await
}

/// `--resume`'s journal, opened, locked and checked against this run.
pub(crate) fn open(
    journal: Option<&Path>,
    identity: &RunIdentity,
) -> crate::Result<Option<Resume>> {
    journal
        .map(|journal| Resume::open(journal, identity.clone()))
        .transpose()
}

/// The journal: `--resume`'s, or a new one beside the report.
pub(crate) fn journal_path(resume: Option<&Path>, report: &Path) -> PathBuf {
    if let Some(resume) = resume {
        return resume.to_path_buf();
    }
    if report == Path::new("-") {
        return PathBuf::from(format!(
            "hardmatch-{}.journal",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
    }
    let mut name = report.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// Whether an older journal (one without a fingerprint) names the same file as `current`.
/// It recorded the path as typed, relative to a directory it did not record: only the file
/// names can be compared.
fn same_file(recorded: &Path, current: &RunIdentity) -> bool {
    recorded.file_name() == Path::new(&current.input.path).file_name()
}

fn another_input(journal: &Path, recorded: &str, current: &RunIdentity) -> Error {
    Error::Usage(format!(
        "{} is the journal of a run that read {}, not {}: resuming it with another input would \
         skip or repeat the wrong users. Nothing was written. Resume with the input it was made \
         for, or start a new run with another report (-o).",
        journal.display(),
        recorded,
        current.input.path
    ))
}

/// The command that continues this run from `journal`: the same command line with
/// `--resume JOURNAL` (and without `--max-writes` when `drop_canary`), secrets left out.
pub(crate) fn continue_command(journal: &Path, drop_canary: bool) -> String {
    let mut args = std::env::args();
    let _program = args.next();
    let mut kept = vec!["hardmatch".to_string()];
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let dropped = |flag: &str| arg == flag || arg.starts_with(&format!("{flag}="));
        if dropped("--resume") || (drop_canary && dropped("--max-writes")) {
            skip_value = !arg.contains('=');
            continue;
        }
        kept.push(arg);
    }
    kept.push("--resume".into());
    kept.push(journal.display().to_string());
    crate::report::redact_args(kept.into_iter().map(|a| shell_quoted(&a)))
}

fn shell_quoted(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan::{Action, TargetState};
    use crate::planned::Named;
    use crate::tenant::User;

    fn intent(row: usize, user: &str, previous: Option<&str>, new: &str) -> Entry {
        Entry::Intent {
            row,
            step: Step::Anchor,
            user_id: user.into(),
            upn: format!("{user}@contoso.com"),
            previous: previous.map(str::to_string),
            new: Some(new.into()),
            at: journal::now(),
        }
    }

    fn result(row: usize, user: &str, applied: bool) -> Entry {
        Entry::Result {
            row,
            step: Step::Anchor,
            user_id: user.into(),
            applied,
            outcome: if applied {
                Outcome::Stamped
            } else {
                Outcome::GraphError
            },
            http_status: Some(if applied { 204 } else { 401 }),
            request_id: Some(format!("req-{user}")),
            at: journal::now(),
        }
    }

    fn planned(row: usize, user: &str, anchor: &str, holds: Option<&str>) -> PlannedRow {
        let mut planned =
            PlannedRow::new(row, Named::default(), Verdict::new(Outcome::WouldStamp, ""));
        planned.action = Some(Action::Stamp);
        planned.target = Some(TargetState {
            id: user.into(),
            user_principal_name: format!("{user}@contoso.com"),
            on_premises_immutable_id: holds.map(str::to_string),
            on_premises_sync_enabled: false,
            on_premises_object_identifier: None,
        });
        planned.previous_immutable_id = holds.map(str::to_string);
        planned.new_anchor = Some(anchor.into());
        planned
    }

    /// A journal of an interrupted stamp: `a` written (it held OLD before), `b` failed, `c`
    /// and `d` sent without an answer (only `c`'s took effect); `e` is another anchor.
    #[test]
    fn the_journal_is_matched_by_target_and_anchor_not_by_row() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("users.csv");
        std::fs::write(&input, "upn\n").unwrap();
        let identity = RunIdentity::new("apply", &input, Vec::new()).unwrap();
        let path = dir.path().join("r.csv.journal");
        let mut journal = Journal::create(&path, &identity.run_entry()).unwrap();
        for entry in [
            intent(1, "a", Some("OLD"), "A"),
            result(1, "a", true),
            intent(2, "b", None, "B"),
            result(2, "b", false),
            intent(3, "c", None, "C"),
            intent(4, "d", None, "D"),
            intent(5, "e", None, "E-then"),
            result(5, "e", true),
        ] {
            journal.record(&entry).unwrap();
        }
        drop(journal);
        let resume = Resume::open(&path, identity).unwrap();
        let holds = |id: &str, value: Option<&str>| User {
            id: id.into(),
            on_premises_immutable_id: value.map(str::to_string),
            ..User::default()
        };
        let tenant = Tenant {
            users: vec![
                holds("a", Some("A")),
                holds("b", None),
                holds("c", Some("C")),
                holds("d", None),
                holds("e", Some("E-then")),
            ],
            ..Tenant::default()
        };
        // A re-export in another order; `e` now has another anchor.
        let mut rows = vec![
            planned(1, "e", "E-now", Some("E-then")),
            planned(2, "d", "D", None),
            planned(3, "c", "C", Some("C")),
            planned(4, "b", "B", None),
            planned(5, "a", "A", Some("A")),
        ];
        let credit = resume.credit(&mut rows, &tenant);
        assert_eq!(
            (
                credit.done,
                credit.retried,
                credit.in_doubt,
                credit.not_in_input
            ),
            (2, 1, 1, 1)
        );
        let a = &rows[4];
        assert_eq!(a.outcome(), Outcome::Stamped);
        assert_eq!(a.action, Some(Action::None), "nothing is sent for it again");
        assert_eq!(
            a.previous_immutable_id.as_deref(),
            Some("OLD"),
            "the value before the run"
        );
        assert_eq!(a.answer.request_id, "req-a");
        assert_eq!(rows[2].outcome(), Outcome::Stamped, "c took effect");
        assert_eq!(credit.settled.len(), 1, "and its result is journaled now");
        assert!(rows[3].writes(), "b is written again");
        assert!(rows[0].writes(), "e is planned anew");
        assert_eq!(
            credit.replay.rows.keys().copied().collect::<Vec<_>>(),
            vec![2],
            "d is re-read before it is sent, under this run's row number"
        );
    }

    #[test]
    fn a_journal_of_another_input_or_command_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (dir.path().join("wave1.csv"), dir.path().join("wave2.csv"));
        std::fs::write(&one, "upn\na@x\n").unwrap();
        std::fs::write(&two, "upn\nb@x\n").unwrap();
        let path = dir.path().join("r.csv.journal");
        let first = RunIdentity::new("apply", &one, Vec::new()).unwrap();
        drop(Journal::create(&path, &first.run_entry()).unwrap());
        let other_input = RunIdentity::new("apply", &two, Vec::new()).unwrap();
        let refused = Resume::open(&path, other_input).err().unwrap().to_string();
        assert!(
            refused.contains("wave1.csv") && refused.contains("wave2.csv"),
            "{refused}"
        );
        let other_command = RunIdentity::new("clear", &one, Vec::new()).unwrap();
        let refused = Resume::open(&path, other_command)
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("`hardmatch clear` cannot resume it"),
            "{refused}"
        );
        // The same file, exported again: accepted, matched by target and anchor.
        std::fs::write(&one, "upn\nb@x\na@x\n").unwrap();
        let re_export = RunIdentity::new("apply", &one, Vec::new()).unwrap();
        assert!(Resume::open(&path, re_export).is_ok());
    }

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quoted("r.csv.journal"), "r.csv.journal");
        assert_eq!(shell_quoted("my report.csv"), "'my report.csv'");
        assert_eq!(shell_quoted("o'brien"), r"'o'\''brien'");
    }

    #[test]
    fn the_same_bytes_give_the_same_fingerprint_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        std::fs::write(&a, "upn\nx@y\n").unwrap();
        std::fs::write(&b, "upn\nx@y\n").unwrap();
        let (fa, fb) = (
            InputFingerprint::of(&a).unwrap(),
            InputFingerprint::of(&b).unwrap(),
        );
        assert_eq!((fa.size, &fa.sha256), (fb.size, &fb.sha256));
        assert_ne!(fa.path, fb.path);
        std::fs::write(&b, "upn\nx@z\n").unwrap();
        assert_ne!(fa.sha256, InputFingerprint::of(&b).unwrap().sha256);
    }
}
