//! The write-ahead journal: an append-only JSON-lines file beside the report, flushed to disk
//! record by record, so that a crash loses nothing and a resume repeats nothing.
//!
//! Its first line, [`Entry::Run`], says which run it belongs to (see [`crate::resume`], which
//! checks it). Before every write the writer appends an [`Entry::Intent`] (row, user, previous
//! value, new value); after it an [`Entry::Result`]. [`Journal::read`] gives back each target
//! user's history, which tells what is done, what failed without taking effect, what is in
//! doubt (an intent without a result) and what each previous value was (for `rollback`).
//!
//! A journal is locked (an exclusive advisory lock) for as long as a run appends to it, so
//! two runs can never write the same users at once; a last line cut short by a crash is cut
//! off before anything is appended after it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::outcome::Outcome;
use crate::resume::RunIdentity;

/// One step of a row's write. Most rows have one step; the federated hop has three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Step {
    /// PATCH onPremisesImmutableId (a value, or null to clear or restore).
    Anchor,
    /// DELETE a deleted holder from the recycle bin.
    PurgeHolder,
    /// PATCH userPrincipalName to the initial domain (federated hop, out).
    UpnOut,
    /// PATCH userPrincipalName back (federated hop, home).
    UpnBack,
    /// PATCH /beta onPremisesObjectIdentifier (`--clear-object-identifier`, and its rollback);
    /// `previous` is the value rollback puts back.
    ObjectIdentifier,
}

/// A journal line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Entry {
    /// The first line: what run this journal belongs to.
    Run {
        version: String,
        /// The command line, secrets left out.
        command: String,
        input: String,
        started: String,
        /// What `--resume` checks; absent in journals written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<RunIdentity>,
    },
    /// Written and flushed before a request is sent.
    Intent {
        row: usize,
        step: Step,
        user_id: String,
        upn: String,
        previous: Option<String>,
        new: Option<String>,
        at: String,
    },
    /// Written after the response (or the final failure).
    Result {
        row: usize,
        step: Step,
        /// The target user, so that a result finds its intent even when a resumed run
        /// numbers its rows differently (empty in older journals: matched by row then).
        #[serde(default)]
        user_id: String,
        applied: bool,
        outcome: Outcome,
        http_status: Option<u16>,
        request_id: Option<String>,
        at: String,
    },
}

/// The one timestamp format of journal entries: RFC 3339, UTC, milliseconds.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An open journal that appends and flushes each entry, locked against every other run.
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Whether `path` names a journal (`REPORT.journal`) rather than a report: how `rollback`
    /// and `verify` tell which they were given.
    pub(crate) fn is_journal_path(path: &Path) -> bool {
        path.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("journal"))
    }

    /// Creates a new journal (owner-readable only) and records the run it belongs to;
    /// refuses to overwrite an existing one, which belongs to another run and may be needed
    /// for its rollback.
    pub(crate) fn create(path: &Path, run: &Entry) -> crate::Result<Journal> {
        let file = crate::private::create_new(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Usage(format!(
                    "{}: a journal already exists there; pass --resume {} to continue that run, or choose another report path",
                    path.display(),
                    path.display()
                ))
            } else {
                Error::io(path, e)
            }
        })?;
        let mut journal = Journal::locked(path, file)?;
        if let Err(e) = journal.record(run) {
            // A journal without its run line is no run's; left behind, it would make the
            // next try (once the disk has room) refuse to start with "a journal already exists".
            drop(journal);
            let _ = std::fs::remove_file(path);
            return Err(Error::Other(format!(
                "{e}: cannot start the journal, so nothing was written to the tenant"
            )));
        }
        Ok(journal)
    }

    /// Opens an existing journal to append to it (a resumed run), made private again if
    /// someone widened it meanwhile. A last line cut short by a crash or a full disk is cut
    /// off first: appended to, it would weld the next entry onto it and make the whole
    /// journal unreadable. Cutting it loses nothing that was acted on: an entry is acted on
    /// only once it is whole and on disk.
    pub(crate) fn reopen(path: &Path) -> crate::Result<Journal> {
        let file = crate::private::append(path).map_err(|e| Error::io(path, e))?;
        let journal = Journal::locked(path, file)?;
        journal.cut_torn_tail().map_err(|e| Error::io(path, e))?;
        Ok(journal)
    }

    /// Takes the journal's exclusive lock, or says which run holds it.
    fn locked(path: &Path, file: File) -> crate::Result<Journal> {
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(Journal {
                path: path.to_owned(),
                file,
            }),
            Err(fs4::TryLockError::WouldBlock) => Err(Error::Usage(format!(
                "{}: another hardmatch run is using this journal (it is locked); let that run finish or stop it, then resume",
                path.display()
            ))),
            Err(fs4::TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }

    fn cut_torn_tail(&self) -> std::io::Result<()> {
        let bytes = std::fs::read(&self.path)?;
        if bytes.is_empty() || bytes.ends_with(b"\n") {
            return Ok(());
        }
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        tracing::info!(
            "{}: cutting off a last line left unfinished ({} bytes)",
            self.path.display(),
            bytes.len() - whole
        );
        self.file.set_len(whole as u64)?;
        self.file.sync_data()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and waits until it is on disk.
    pub(crate) fn record(&mut self, entry: &Entry) -> crate::Result<()> {
        self.append(entry)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Appends one entry without waiting for the disk. One `write` call per line, so a crash
    /// can only ever cut the last line short, which [`Journal::read`] ignores.
    fn append(&mut self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).expect("journal entries serialize");
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// [`Journal::read`] of a run that has ended, for `rollback` and `verify`: a journal
    /// another hardmatch is still appending to (it holds the lock: a second terminal, or a
    /// run not yet finished) is refused, since what it writes next would be missed.
    pub(crate) fn read_finished(path: &Path) -> crate::Result<Journaled> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        match fs4::FileExt::try_lock_shared(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(Error::Usage(format!(
                    "{}: a hardmatch run is still writing this journal (it is locked); let that run finish or stop it, then run this again",
                    path.display()
                )))
            }
            Err(fs4::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
        // The shared lock is held while the journal is read, and released with `file`.
        let journaled = Journal::read(path);
        drop(file);
        journaled
    }

    /// Reads a journal back. A torn last line (a crash mid-write) is skipped; any other bad
    /// line is an error naming its line number.
    pub fn read(path: &Path) -> crate::Result<Journaled> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| Error::io(path, e))?;
        let mut journaled = Journaled::default();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Entry>(line) {
                Ok(entry) => journaled.add(entry),
                Err(_) if i + 1 == lines.len() => break,
                Err(e) => {
                    return Err(Error::Input(format!(
                        "{}:{}: not a hardmatch journal line: {e}",
                        path.display(),
                        i + 1
                    )))
                }
            }
        }
        Ok(journaled)
    }
}

/// A journal that the writer's tasks share. Every entry goes to one thread, which appends all
/// that has queued up and syncs once for the lot (group commit): a write waits only until its
/// own intent is on disk, the async runtime never blocks on the disk, and the writes in flight
/// share one fsync instead of paying one each (a disk that syncs 300 times a second would
/// otherwise cap a run at 150 writes a second).
pub(crate) struct GroupCommit {
    queue: Option<mpsc::Sender<Queued>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// An entry on its way to the disk, and who to tell once it is there.
struct Queued {
    entry: Entry,
    synced: tokio::sync::oneshot::Sender<Result<(), String>>,
}

impl GroupCommit {
    pub(crate) fn start(mut journal: Journal) -> GroupCommit {
        let (queue, entries) = mpsc::channel::<Queued>();
        let thread = std::thread::spawn(move || {
            // After a failed write or sync, every later entry fails too: the journal can no
            // longer be trusted to say what was sent.
            let mut broken: Option<String> = None;
            while let Ok(first) = entries.recv() {
                let group: Vec<Queued> = std::iter::once(first).chain(entries.try_iter()).collect();
                if broken.is_none() {
                    let written = group
                        .iter()
                        .try_for_each(|q| journal.append(&q.entry))
                        .and_then(|()| journal.file.sync_data());
                    if let Err(e) = written {
                        broken = Some(format!("{}: {e}", journal.path.display()));
                    }
                }
                for queued in group {
                    let _ = queued.synced.send(broken.clone().map_or(Ok(()), Err));
                }
            }
        });
        GroupCommit {
            queue: Some(queue),
            thread: Some(thread),
        }
    }

    /// Queues `entry` and waits until it is on disk.
    pub(crate) async fn record(&self, entry: Entry) -> crate::Result<()> {
        let (synced, on_disk) = tokio::sync::oneshot::channel();
        let failed = |why: String| Error::Other(format!("cannot write the journal: {why}"));
        self.queue
            .as_ref()
            .expect("the journal is open until finish")
            .send(Queued { entry, synced })
            .map_err(|_| failed("its writer has stopped".into()))?;
        on_disk
            .await
            .map_err(|_| failed("its writer has stopped".into()))?
            .map_err(failed)
    }
}

impl Drop for GroupCommit {
    /// Closes the queue and waits until everything queued is on disk.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a journal says, target user by target user, in the order they were first written.
#[derive(Clone, Debug, Default)]
pub(crate) struct Journaled {
    pub(crate) run: Option<Entry>,
    pub(crate) targets: Vec<RowHistory>,
    /// Position of each user id in `targets`.
    by_user: HashMap<String, usize>,
    /// The user of the last intent of each (row, step), for results of older journals that
    /// do not name their user.
    last_intent: HashMap<(usize, Step), String>,
}

impl Journaled {
    fn add(&mut self, entry: Entry) {
        let user_id = match &entry {
            Entry::Run { .. } => {
                self.run = Some(entry);
                return;
            }
            Entry::Intent {
                row, step, user_id, ..
            } => {
                self.last_intent.insert((*row, *step), user_id.clone());
                user_id.clone()
            }
            Entry::Result {
                row, step, user_id, ..
            } if user_id.is_empty() => match self.last_intent.get(&(*row, *step)) {
                Some(user_id) => user_id.clone(),
                None => return,
            },
            Entry::Result { user_id, .. } => user_id.clone(),
        };
        let history = self.history_mut(&user_id, &entry);
        match entry {
            Entry::Intent { .. } => history.intents.push(entry),
            _ => history.results.push(entry),
        }
    }

    fn history_mut(&mut self, user_id: &str, entry: &Entry) -> &mut RowHistory {
        let next = self.targets.len();
        let at = *self.by_user.entry(user_id.to_string()).or_insert(next);
        if at == next {
            let row = match entry {
                Entry::Intent { row, .. } | Entry::Result { row, .. } => *row,
                Entry::Run { .. } => 0,
            };
            self.targets.push(RowHistory {
                user_id: user_id.to_string(),
                row,
                ..RowHistory::default()
            });
        }
        &mut self.targets[at]
    }

    /// The history of one target user.
    pub(crate) fn target(&self, user_id: &str) -> Option<&RowHistory> {
        self.by_user.get(user_id).map(|&i| &self.targets[i])
    }
}

/// What an earlier, interrupted run did to the rows of this run, by this run's row numbers
/// (built by [`crate::resume`], which matches journal and input by target and anchor).
#[derive(Clone, Debug, Default)]
pub(crate) struct Replay {
    pub(crate) rows: BTreeMap<usize, RowHistory>,
}

/// The steps written for one target user, in the order they were journaled.
#[derive(Clone, Debug, Default)]
pub(crate) struct RowHistory {
    pub(crate) user_id: String,
    /// The report row it was first journaled under.
    pub(crate) row: usize,
    pub(crate) intents: Vec<Entry>,
    pub(crate) results: Vec<Entry>,
}

impl RowHistory {
    /// The result recorded for a step, if any.
    pub(crate) fn result(&self, step: Step) -> Option<&Entry> {
        self.results
            .iter()
            .rev()
            .find(|e| matches!(e, Entry::Result { step: s, .. } if *s == step))
    }

    /// Whether a step's last result says it took effect.
    pub(crate) fn applied(&self, step: Step) -> bool {
        matches!(self.result(step), Some(Entry::Result { applied: true, .. }))
    }

    /// The row's final outcome: the last result written for it.
    #[cfg(test)]
    pub fn outcome(&self) -> Option<Outcome> {
        match self.results.last() {
            Some(Entry::Result { outcome, .. }) => Some(*outcome),
            _ => None,
        }
    }

    /// Steps whose intent was written but whose result was not: the request may or may not
    /// have reached Graph, so the target must be re-read before anything is sent again.
    pub(crate) fn in_doubt(&self) -> Vec<Step> {
        self.intents
            .iter()
            .filter_map(|e| match e {
                Entry::Intent { step, .. } if self.result(*step).is_none() => Some(*step),
                _ => None,
            })
            .collect()
    }

    /// The onPremisesObjectIdentifier the row cleared, when that write took effect: what
    /// rollback puts back.
    pub(crate) fn cleared_object_identifier(&self) -> Option<&str> {
        if !self.applied(Step::ObjectIdentifier) {
            return None;
        }
        self.intents.iter().find_map(|e| match e {
            Entry::Intent {
                step: Step::ObjectIdentifier,
                previous,
                ..
            } => previous.as_deref(),
            _ => None,
        })
    }

    /// The row's first anchor write: (user id, UPN, the value before it, the value written).
    /// Its previous value is what the anchor held before this run: what rollback puts back.
    pub(crate) fn first_anchor_intent(
        &self,
    ) -> Option<(&str, &str, &Option<String>, &Option<String>)> {
        self.intents.iter().find_map(|e| match e {
            Entry::Intent {
                step: Step::Anchor,
                user_id,
                upn,
                previous,
                new,
                ..
            } => Some((user_id.as_str(), upn.as_str(), previous, new)),
            _ => None,
        })
    }

    /// The deleted holder the run purged for good, if it did: nothing can bring it back.
    pub(crate) fn purged_holder(&self) -> Option<&str> {
        if !self.applied(Step::PurgeHolder) {
            return None;
        }
        self.intents.iter().find_map(|e| match e {
            Entry::Intent {
                step: Step::PurgeHolder,
                previous,
                ..
            } => previous.as_deref(),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Entry {
        Entry::Run {
            version: "test".into(),
            command: "hardmatch apply x.csv".into(),
            input: "x.csv".into(),
            started: now(),
            identity: None,
        }
    }

    fn intent(row: usize) -> Entry {
        Entry::Intent {
            row,
            step: Step::Anchor,
            user_id: format!("u{row}"),
            upn: format!("user{row}@contoso.com"),
            previous: (row == 2).then(|| "OLD".to_string()),
            new: Some(format!("NEW{row}")),
            at: "2026-11-22T12:00:00.000Z".into(),
        }
    }

    fn result(row: usize) -> Entry {
        Entry::Result {
            row,
            step: Step::Anchor,
            user_id: format!("u{row}"),
            applied: true,
            outcome: Outcome::Stamped,
            http_status: Some(204),
            request_id: Some("r".into()),
            at: "2026-11-22T12:00:01.000Z".into(),
        }
    }

    #[test]
    fn reading_tells_done_in_doubt_and_previous_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal");
        let mut journal = Journal::create(&path, &run()).unwrap();
        for entry in [intent(1), result(1), intent(2)] {
            journal.record(&entry).unwrap();
        }
        let journaled = Journal::read(&path).unwrap();
        assert!(journaled.run.is_some());
        assert_eq!(
            journaled.target("u1").unwrap().outcome(),
            Some(Outcome::Stamped)
        );
        assert!(journaled.target("u1").unwrap().in_doubt().is_empty());
        assert_eq!(
            journaled.target("u2").unwrap().in_doubt(),
            vec![Step::Anchor]
        );
        let (user, _, previous, _) = journaled
            .target("u2")
            .unwrap()
            .first_anchor_intent()
            .unwrap();
        assert_eq!((user, previous.as_deref()), ("u2", Some("OLD")));
        drop(journal);
        assert!(
            Journal::create(&path, &run()).is_err(),
            "an existing journal is never overwritten"
        );
    }

    #[test]
    fn a_result_finds_its_user_when_a_resumed_run_numbers_rows_differently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal");
        let mut journal = Journal::create(&path, &run()).unwrap();
        // The first run wrote u1 as row 1; a re-ordered export made u1 row 2 and u2 row 1.
        let mut resumed = result(1);
        if let Entry::Result { row, .. } = &mut resumed {
            *row = 2;
        }
        for entry in [intent(1), intent(2), resumed] {
            journal.record(&entry).unwrap();
        }
        let journaled = Journal::read(&path).unwrap();
        assert!(journaled.target("u1").unwrap().applied(Step::Anchor));
        assert_eq!(
            journaled.target("u2").unwrap().in_doubt(),
            vec![Step::Anchor]
        );
    }

    #[test]
    fn a_second_run_cannot_open_a_journal_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal");
        let first = Journal::create(&path, &run()).unwrap();
        let refused = Journal::reopen(&path).err().expect("locked").to_string();
        assert!(refused.contains("another hardmatch run"), "{refused}");
        drop(first);
        Journal::reopen(&path).expect("free once the first run closed it");
    }

    #[test]
    fn a_torn_last_line_is_cut_off_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal");
        let good = serde_json::to_string(&intent(1)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"kind\":\"res")).unwrap();
        let mut journal = Journal::reopen(&path).unwrap();
        journal.record(&result(1)).unwrap();
        let journaled = Journal::read(&path).unwrap();
        assert!(journaled.target("u1").unwrap().applied(Step::Anchor));
    }

    #[test]
    fn group_commit_puts_every_concurrent_entry_on_disk_before_answering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal");
        let journal = GroupCommit::start(Journal::create(&path, &run()).unwrap());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            let writes = (1..=200).map(|row| {
                let (journal, path) = (&journal, &path);
                async move {
                    journal.record(intent(row)).await.unwrap();
                    // Answered only once on disk: a read now already sees it.
                    let journaled = Journal::read(path).unwrap();
                    assert!(journaled.target(&format!("u{row}")).is_some());
                    journal.record(result(row)).await.unwrap();
                }
            });
            futures::future::join_all(writes).await;
        });
        drop(journal);
        let journaled = Journal::read(&path).unwrap();
        assert_eq!(journaled.targets.len(), 200);
        assert!(journaled.targets.iter().all(|h| h.in_doubt().is_empty()));
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_a_torn_middle_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal");
        let good = serde_json::to_string(&intent(1)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"kind\":\"res")).unwrap();
        assert_eq!(Journal::read(&path).unwrap().targets.len(), 1);
        std::fs::write(&path, format!("{{\"kind\":\"res\n{good}\n")).unwrap();
        let err = Journal::read(&path).unwrap_err().to_string();
        assert!(err.contains("run.journal:1"), "{err}");
    }
}
