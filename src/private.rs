//! Files only their owner can read: reports, plans, snapshots and journals name every user of
//! a migration and the tenant they live in.
//!
//! A new file is created with mode 0600 (and [`create_new`] refuses any existing path, a link
//! included). An existing file is written only if it is a regular
//! file of the user running hardmatch: it is tightened to 0600 *before* it is emptied and
//! written, never the other way round. A path that is a symbolic link to a file is refused
//! (in a shared directory, a planted link would make hardmatch overwrite the file it points
//! to); a link to a device or a pipe (`-o /dev/stdout`) is written through as it is.
//! Elsewhere than on Unix, files are opened the ordinary way.

use std::fs::File;
use std::io;
use std::path::Path;

/// Opens `path` to write a whole new content (a report, a plan, a snapshot).
pub fn create(path: &Path) -> io::Result<File> {
    open(path, false)
}

/// Opens an existing `path` to append to it (a journal on resume).
pub fn append(path: &Path) -> io::Result<File> {
    open(path, true)
}

/// Creates `path` to append to it, failing with `AlreadyExists` if anything is there, a
/// symbolic link included (a new journal: an existing one belongs to another run).
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(unix)]
fn open(path: &Path, append: bool) -> io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

    let mut options = std::fs::OpenOptions::new();
    if append {
        options.append(true);
    } else {
        // Not truncated yet: only once the file is known to be ours and private.
        options.write(true).create(true);
    }
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    let file = match options.open(path) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return through_link(path, append),
        other => other?,
    };
    let metadata = file.metadata()?;
    if !metadata.file_type().is_file() {
        return Ok(file);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if metadata.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "belongs to another user (uid {}); hardmatch writes only into its own files",
                metadata.uid()
            ),
        ));
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    if !append {
        file.set_len(0)?;
    }
    Ok(file)
}

/// `path` is a symbolic link: written through only to a device or a pipe.
#[cfg(unix)]
fn through_link(path: &Path, append: bool) -> io::Result<File> {
    if std::fs::metadata(path)?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symbolic link to a file; give the real path instead",
        ));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .append(append)
        .open(path)
}

#[cfg(not(unix))]
fn open(path: &Path, append: bool) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    if append {
        options.append(true);
    } else {
        options.write(true).create(true).truncate(true);
    }
    options.open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_files_are_private_and_open_ones_are_tightened_before_they_are_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.csv");
        create(&new).unwrap().write_all(b"x").unwrap();
        assert_eq!(mode(&new), 0o600);

        let old = dir.path().join("old.csv");
        std::fs::write(&old, "old content, longer").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o664)).unwrap();
        create(&old).unwrap().write_all(b"new").unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "new");

        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        append(&old).unwrap().write_all(b"+more").unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "new+more");

        let journal = dir.path().join("new.journal");
        create_new(&journal).unwrap().write_all(b"1").unwrap();
        assert_eq!(mode(&journal), 0o600);
        let again = create_new(&journal).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&journal).unwrap(), "1");
    }

    #[test]
    fn a_link_to_a_file_is_refused_and_the_file_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("report.csv");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let error = create(&link).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
        assert!(append(&link).is_err());
        assert!(create_new(&link).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");

        let null = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &null).unwrap();
        create(&null).unwrap().write_all(b"gone").unwrap();
    }
}
