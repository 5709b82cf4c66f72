//! Files only their owner can read: reports, plans, snapshots and journals name every user of
//! a migration and the tenant they live in.
//!
//! A new file is created with mode 0600 (and [`create_new`] refuses any existing path, a link
//! included). An existing file is written only if it is a regular
//! file of the user running hardmatch: it is tightened to 0600 *before* it is emptied and
//! written, never the other way round. A path that is a symbolic link to a file is refused
//! (in a shared directory, a planted link would make hardmatch overwrite the file it points
//! to); a link to a device or a pipe (`-o /dev/stdout`) is written through as it is.
//! On Windows, a file hardmatch writes gets an ACL that lets in the user running it only,
//! before it is emptied and written ([`owner_only`]); links are not checked there.
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
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        options.access_mode(owner_only::access(true));
    }
    let file = options.open(path)?;
    #[cfg(windows)]
    owner_only::restrict(&file)?;
    Ok(file)
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

/// Windows: the file is opened with the right to change its ACL, made owner-only
/// ([`owner_only::restrict`]) and only then emptied, as on Unix.
#[cfg(windows)]
fn open(path: &Path, append: bool) -> io::Result<File> {
    use std::os::windows::fs::OpenOptionsExt;

    let mut options = std::fs::OpenOptions::new();
    if append {
        options.append(true);
    } else {
        // Not truncated yet: only once the file is private.
        options.write(true).create(true);
    }
    options.access_mode(owner_only::access(append));
    let file = options.open(path)?;
    if !on_disk(&file) {
        return Ok(file);
    }
    owner_only::restrict(&file)?;
    if !append {
        file.set_len(0)?;
    }
    Ok(file)
}

/// Windows: whether `file` is a file on a disk, not a device (NUL, CON) or a pipe. Asked of
/// the handle's type, since a device has no file metadata to read.
#[cfg(windows)]
fn on_disk(file: &File) -> bool {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{GetFileType, FILE_TYPE_DISK};
    // SAFETY: the handle is open for the life of `file`; GetFileType only reads its type.
    unsafe { GetFileType(file.as_raw_handle()) == FILE_TYPE_DISK }
}

#[cfg(not(any(unix, windows)))]
fn open(path: &Path, append: bool) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    if append {
        options.append(true);
    } else {
        options.write(true).create(true).truncate(true);
    }
    options.open(path)
}

/// The Windows equivalent of mode 0600: a protected DACL (nothing inherited from the folder)
/// with a single entry, full access for the user running hardmatch. Administrators can still
/// take ownership, as root can read a 0600 file; nobody else is let in.
#[cfg(windows)]
mod owner_only {
    use std::fs::File;
    use std::io;
    use std::os::windows::io::AsRawHandle;
    use std::ptr::null_mut;

    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
    use windows_sys::Win32::Security::{
        AddAccessAllowedAce, GetLengthSid, GetTokenInformation, InitializeAcl,
        InitializeSecurityDescriptor, SetKernelObjectSecurity, SetSecurityDescriptorControl,
        SetSecurityDescriptorDacl, TokenUser, ACCESS_ALLOWED_ACE, ACL, ACL_REVISION,
        DACL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID,
        SECURITY_DESCRIPTOR, SE_DACL_PROTECTED, TOKEN_QUERY, TOKEN_USER,
    };
    use windows_sys::Win32::Storage::FileSystem::{
        FILE_ALL_ACCESS, FILE_GENERIC_WRITE, FILE_READ_ATTRIBUTES, FILE_WRITE_DATA, READ_CONTROL,
        WRITE_DAC,
    };
    use windows_sys::Win32::System::SystemServices::SECURITY_DESCRIPTOR_REVISION;
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    /// The rights to open a file with: what std asks for to write or append (appending: to
    /// the end, nowhere else), and to read its type and replace its ACL.
    pub(super) fn access(append: bool) -> u32 {
        let write = if append {
            FILE_GENERIC_WRITE & !FILE_WRITE_DATA
        } else {
            FILE_GENERIC_WRITE
        };
        write | FILE_READ_ATTRIBUTES | READ_CONTROL | WRITE_DAC
    }

    /// Replaces the ACL of `file` (opened with [`access`]) by one that lets in its user only.
    /// Set on the handle as a whole security descriptor marked protected, the way
    /// SetKernelObjectSecurity takes it: SetSecurityInfo would look up the folder to compute
    /// inherited entries, which a protected ACL has none of (and Wine adds them anyway).
    pub(super) fn restrict(file: &File) -> io::Result<()> {
        let user = CurrentUser::read()?;
        let mut acl = only(user.sid())?;
        let mut descriptor = SECURITY_DESCRIPTOR::default();
        let pointer: PSECURITY_DESCRIPTOR = (&raw mut descriptor).cast();
        // SAFETY: `descriptor` and `acl` (a valid ACL) outlive every call that points at them;
        // the handle is open for the life of `file`, with WRITE_DAC.
        let set = unsafe {
            InitializeSecurityDescriptor(pointer, SECURITY_DESCRIPTOR_REVISION) != 0
                && SetSecurityDescriptorDacl(pointer, 1, acl.as_mut_ptr().cast::<ACL>(), 0) != 0
                && SetSecurityDescriptorControl(pointer, SE_DACL_PROTECTED, SE_DACL_PROTECTED) != 0
                && SetKernelObjectSecurity(
                    file.as_raw_handle() as HANDLE,
                    DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                    pointer,
                ) != 0
        };
        if set {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// An ACL with one entry: full access for `sid`. In `u32`s, the alignment an ACL needs.
    fn only(sid: PSID) -> io::Result<Vec<u32>> {
        // SAFETY: `sid` is a valid SID (from the process token) for these calls.
        let sid_length = unsafe { GetLengthSid(sid) } as usize;
        let size =
            size_of::<ACL>() + size_of::<ACCESS_ALLOWED_ACE>() - size_of::<u32>() + sid_length;
        let mut acl = vec![0u32; size.div_ceil(size_of::<u32>())];
        let acl_pointer = acl.as_mut_ptr().cast::<ACL>();
        // SAFETY: `acl` is `size` bytes or more, u32-aligned, and lives across both calls.
        let made = unsafe {
            InitializeAcl(acl_pointer, size as u32, ACL_REVISION) != 0
                && AddAccessAllowedAce(acl_pointer, ACL_REVISION, FILE_ALL_ACCESS, sid) != 0
        };
        if made {
            Ok(acl)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The user this process runs as: its token's TOKEN_USER, whose SID points into the same
    /// buffer (in `u64`s, the alignment TOKEN_USER needs).
    struct CurrentUser(Vec<u64>);

    impl CurrentUser {
        fn read() -> io::Result<CurrentUser> {
            let mut token: HANDLE = null_mut();
            // SAFETY: GetCurrentProcess is a pseudo-handle; `token` is a valid out pointer.
            if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
                return Err(io::Error::last_os_error());
            }
            let user = Self::from_token(token);
            // SAFETY: `token` was opened above and is closed once.
            unsafe { CloseHandle(token) };
            user
        }

        fn from_token(token: HANDLE) -> io::Result<CurrentUser> {
            let mut needed = 0u32;
            // SAFETY: a null buffer of length 0 only asks for the size, which fails with
            // ERROR_INSUFFICIENT_BUFFER and writes `needed`.
            unsafe { GetTokenInformation(token, TokenUser, null_mut(), 0, &mut needed) };
            let mut buffer = vec![0u64; (needed as usize).div_ceil(size_of::<u64>())];
            let length = (buffer.len() * size_of::<u64>()) as u32;
            // SAFETY: `buffer` is `length` bytes, aligned for TOKEN_USER.
            let read = unsafe {
                GetTokenInformation(
                    token,
                    TokenUser,
                    buffer.as_mut_ptr().cast(),
                    length,
                    &mut needed,
                )
            };
            if read == 0 || needed == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(CurrentUser(buffer))
        }

        fn sid(&self) -> PSID {
            // SAFETY: the buffer holds a TOKEN_USER, written by GetTokenInformation.
            unsafe { (*self.0.as_ptr().cast::<TOKEN_USER>()).User.Sid }
        }
    }
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
