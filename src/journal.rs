//! The write-ahead journal: an append-only JSON-lines file beside the report, flushed to disk
//! record by record, so that a crash loses nothing and a resume repeats nothing.
//!
//! Before every write the writer appends an [`Entry::Intent`] (row, user, previous value, new
//! value); after it an [`Entry::Result`]. On `--resume`, [`Journal::replay`] tells which rows
//! are done (skip them), which are in doubt (an intent without a result: re-read the user
//! before writing again) and what each previous value was (for `rollback`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::outcome::Outcome;

/// One step of a row's write. Most rows have one step; the federated hop has three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// PATCH onPremisesImmutableId (a value, or null to clear or restore).
    Anchor,
    /// DELETE a deleted holder from the recycle bin.
    PurgeHolder,
    /// PATCH userPrincipalName to the initial domain (federated hop, out).
    UpnOut,
    /// PATCH userPrincipalName back (federated hop, home).
    UpnBack,
}

/// A journal line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Entry {
    /// The first line: what run this journal belongs to.
    Run {
        version: String,
        command: String,
        input: String,
        started: String,
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
        applied: bool,
        outcome: Outcome,
        http_status: Option<u16>,
        request_id: Option<String>,
        at: String,
    },
}

/// An open journal that appends and flushes each entry.
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Creates a new journal (owner-readable only); refuses to overwrite an existing one,
    /// which belongs to another run and may be needed for its rollback.
    pub fn create(path: &Path) -> crate::Result<Journal> {
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
        Ok(Journal {
            path: path.to_owned(),
            file,
        })
    }

    /// Opens an existing journal to append to it (a resumed run), made private again if
    /// someone widened it meanwhile.
    pub fn append_to(path: &Path) -> crate::Result<Journal> {
        let file = crate::private::append(path).map_err(|e| Error::io(path, e))?;
        Ok(Journal {
            path: path.to_owned(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and waits until it is on disk.
    pub fn record(&mut self, entry: &Entry) -> crate::Result<()> {
        self.append(entry)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Appends one entry without waiting for the disk. One `write` call per line, so a crash
    /// can only ever cut the last line short, which [`Journal::replay`] ignores.
    fn append(&mut self, entry: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).expect("journal entries serialize");
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// Reads a journal back. A torn last line (a crash mid-write) is skipped; any other bad
    /// line is an error naming its line number.
    pub fn replay(path: &Path) -> crate::Result<Replay> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|e| Error::io(path, e))?;
        let mut replay = Replay::default();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Entry>(line) {
                Ok(entry) => replay.apply(entry),
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
        Ok(replay)
    }
}

/// A journal that the writer's tasks share. Every entry goes to one thread, which appends all
/// that has queued up and syncs once for the lot (group commit): a write waits only until its
/// own intent is on disk, the async runtime never blocks on the disk, and the writes in flight
/// share one fsync instead of paying one each (a disk that syncs 300 times a second would
/// otherwise cap a run at 150 writes a second).
pub struct GroupCommit {
    queue: Option<mpsc::Sender<Queued>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// An entry on its way to the disk, and who to tell once it is there.
struct Queued {
    entry: Entry,
    synced: tokio::sync::oneshot::Sender<Result<(), String>>,
}

impl GroupCommit {
    pub fn start(mut journal: Journal) -> GroupCommit {
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
    pub async fn record(&self, entry: Entry) -> crate::Result<()> {
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

/// What a journal says about each row.
#[derive(Clone, Debug, Default)]
pub struct Replay {
    pub run: Option<Entry>,
    pub rows: BTreeMap<usize, RowHistory>,
}

/// The steps of one row, in the order they were journaled.
#[derive(Clone, Debug, Default)]
pub struct RowHistory {
    pub intents: Vec<Entry>,
    pub results: Vec<Entry>,
}

impl RowHistory {
    /// The result recorded for a step, if any.
    pub fn result(&self, step: Step) -> Option<&Entry> {
        self.results
            .iter()
            .rev()
            .find(|e| matches!(e, Entry::Result { step: s, .. } if *s == step))
    }

    /// The row's final outcome: the last result written for it.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.results.last() {
            Some(Entry::Result { outcome, .. }) => Some(*outcome),
            _ => None,
        }
    }

    /// Steps whose intent was written but whose result was not: the request may or may not
    /// have reached Graph, so the target must be re-read before anything is sent again.
    pub fn in_doubt(&self) -> Vec<Step> {
        self.intents
            .iter()
            .filter_map(|e| match e {
                Entry::Intent { step, .. } if self.result(*step).is_none() => Some(*step),
                _ => None,
            })
            .collect()
    }

    /// The row's first anchor write: (user id, UPN, the value before it, the value written).
    /// Its previous value is what the anchor held before this run: what rollback puts back.
    pub fn first_anchor_intent(&self) -> Option<(&str, &str, &Option<String>, &Option<String>)> {
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
}

impl Replay {
    fn apply(&mut self, entry: Entry) {
        match &entry {
            Entry::Run { .. } => self.run = Some(entry),
            Entry::Intent { row, .. } => self.rows.entry(*row).or_default().intents.push(entry),
            Entry::Result { row, .. } => self.rows.entry(*row).or_default().results.push(entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(row: usize) -> Entry {
        Entry::Intent {
            row,
            step: Step::Anchor,
            user_id: format!("u{row}"),
            upn: format!("user{row}@contoso.com"),
            previous: (row == 2).then(|| "OLD".to_string()),
            new: Some(format!("NEW{row}")),
            at: "2026-11-22T12:00:00Z".into(),
        }
    }

    fn result(row: usize) -> Entry {
        Entry::Result {
            row,
            step: Step::Anchor,
            applied: true,
            outcome: Outcome::Stamped,
            http_status: Some(204),
            request_id: Some("r".into()),
            at: "2026-11-22T12:00:01Z".into(),
        }
    }

    #[test]
    fn replay_tells_done_in_doubt_and_previous_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal");
        let mut journal = Journal::create(&path).unwrap();
        for entry in [intent(1), result(1), intent(2)] {
            journal.record(&entry).unwrap();
        }
        let replay = Journal::replay(&path).unwrap();
        assert_eq!(replay.rows[&1].outcome(), Some(Outcome::Stamped));
        assert!(replay.rows[&1].in_doubt().is_empty());
        assert_eq!(replay.rows[&2].in_doubt(), vec![Step::Anchor]);
        let (user, _, previous, _) = replay.rows[&2].first_anchor_intent().unwrap();
        assert_eq!((user, previous.as_deref()), ("u2", Some("OLD")));
        assert!(
            Journal::create(&path).is_err(),
            "an existing journal is never overwritten"
        );
    }

    #[test]
    fn group_commit_puts_every_concurrent_entry_on_disk_before_answering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal");
        let journal = GroupCommit::start(Journal::create(&path).unwrap());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            let writes = (1..=200).map(|row| {
                let (journal, path) = (&journal, &path);
                async move {
                    journal.record(intent(row)).await.unwrap();
                    // Answered only once on disk: a replay now already sees it.
                    let replay = Journal::replay(path).unwrap();
                    assert!(replay.rows.contains_key(&row));
                    journal.record(result(row)).await.unwrap();
                }
            });
            futures::future::join_all(writes).await;
        });
        drop(journal);
        let replay = Journal::replay(&path).unwrap();
        assert_eq!(replay.rows.len(), 200);
        assert!(replay.rows.values().all(|h| h.in_doubt().is_empty()));
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_a_torn_middle_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.journal");
        let good = serde_json::to_string(&intent(1)).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"kind\":\"res")).unwrap();
        assert_eq!(Journal::replay(&path).unwrap().rows.len(), 1);
        std::fs::write(&path, format!("{{\"kind\":\"res\n{good}\n")).unwrap();
        let err = Journal::replay(&path).unwrap_err().to_string();
        assert!(err.contains("run.journal:1"), "{err}");
    }
}
