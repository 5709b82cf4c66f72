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
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(|e| {
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

    /// Appends one entry and waits until it is on disk. One `write` call per line, so a
    /// crash can only ever cut the last line short, which [`Journal::replay`] ignores.
    pub fn record(&mut self, entry: &Entry) -> crate::Result<()> {
        let mut line = serde_json::to_vec(entry).expect("journal entries serialize");
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
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

    /// The value the anchor had before this run first wrote it: what rollback puts back.
    pub fn previous_anchor(&self) -> Option<(String, Option<String>)> {
        self.intents.iter().find_map(|e| match e {
            Entry::Intent {
                step: Step::Anchor,
                user_id,
                previous,
                ..
            } => Some((user_id.clone(), previous.clone())),
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
        assert_eq!(
            replay.rows[&2].previous_anchor(),
            Some(("u2".into(), Some("OLD".into())))
        );
        assert!(
            Journal::create(&path).is_err(),
            "an existing journal is never overwritten"
        );
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
