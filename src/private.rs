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
//!
//! [`check_writable`] applies the same rules before a command starts, so that a path that
//! will be refused is refused before the tenant is read, not after.

use std::fs::File;
use std::io;
use std::path::Path;

/// Opens `path` to write a whole new content (a report, a plan, a snapshot).
pub(crate) fn create(path: &Path) -> io::Result<File> {
    open(path, false)
}

/// Opens an existing `path` to append to it (a journal on resume).
pub(crate) fn append(path: &Path) -> io::Result<File> {
    open(path, true)
}

/// Whether [`create`] will be able to write `path`, without touching it: its directory exists
/// and can take a new file, or the file is a regular file of ours we may write, or a device
/// or pipe; never a symbolic link to a file, a file of another user, or a directory.
#[cfg(unix)]
pub(crate) fn check_writable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;

    let metadata = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return check_directory(path),
        other => other?,
    };
    if metadata.file_type().is_symlink() {
        return match std::fs::metadata(path) {
            Ok(target) if target.is_file() => Err(link_to_a_file()),
            Ok(target) if target.is_dir() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link to a directory; give a file name",
            )),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link to nothing; give the real path instead",
            )),
            Err(e) => Err(e),
        };
    }
    if metadata.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a directory; give a file name",
        ));
    }
    if !metadata.is_file() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if metadata.uid() != me {
        return Err(another_users(metadata.uid()));
    }
    if !may(path, libc::W_OK) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "is read-only; make it writable or give another name",
        ));
    }
    Ok(())
}

/// The directory a new file would go into exists and takes new files.
#[cfg(unix)]
fn check_directory(path: &Path) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::metadata(directory) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a directory", directory.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "the directory {} does not exist; create it first",
                    directory.display()
                ),
            ))
        }
        Err(e) => return Err(e),
    }
    if !may(directory, libc::W_OK | libc::X_OK) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the directory {} does not let you create files",
                directory.display()
            ),
        ));
    }
    Ok(())
}

/// access(2) with the effective ids, as opening the file will use them.
#[cfg(unix)]
fn may(path: &Path, mode: libc::c_int) -> bool {
    use std::os::unix::ffi::OsStrExt;

    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `path` is a NUL-terminated string that lives across the call.
    unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), mode, libc::AT_EACCESS) == 0 }
}

#[cfg(unix)]
fn link_to_a_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "is a symbolic link to a file; give the real path instead",
    )
}

#[cfg(unix)]
fn another_users(uid: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("belongs to another user (uid {uid}); hardmatch writes only into its own files"),
    )
}

#[cfg(not(unix))]
pub(crate) fn check_writable(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "the directory {} does not exist; create it first",
                parent.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Creates `path` to append to it, failing with `AlreadyExists` if anything is there, a
/// symbolic link included (a new journal: an existing one belongs to another run).
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
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
        return Err(another_users(metadata.uid()));
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
        return Err(link_to_a_file());
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

    #[test]
    fn check_writable_says_what_create_would_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let error = |path: &Path| check_writable(path).unwrap_err().to_string();
        assert!(check_writable(&dir.path().join("new.csv")).is_ok());
        assert!(
            error(&dir.path().join("missing/plan.xlsx")).contains("does not exist"),
            "{}",
            error(&dir.path().join("missing/plan.xlsx"))
        );
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("report.csv");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(error(&link).contains("symbolic link"));
        assert!(error(dir.path()).contains("is a directory"));
        assert!(check_writable(Path::new("/dev/null")).is_ok());
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            let locked = dir.path().join("locked");
            std::fs::create_dir(&locked).unwrap();
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
            assert!(error(&locked.join("r.csv")).contains("does not let you create files"));
            std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
    }
}
