//! Helpers every integration test uses: a private directory per test and the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A test's own directory, removed when the test ends.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Writes a file into the test directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    /// The real binary, run in this directory.
    pub fn hardmatch(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hardmatch"));
        cmd.current_dir(self.path());
        cmd
    }
}

/// A file of the repository's samples/ folder.
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

/// Runs a command and returns its output, printing both streams if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run hardmatch")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts equality and shows both sides in full when they differ.
#[track_caller]
pub fn assert_same(expected: &str, actual: &str) {
    if expected != actual {
        panic!("\n--- expected ---\n{expected}\n--- actual ---\n{actual}\n----------------");
    }
}
