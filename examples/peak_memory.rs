//! `peak_memory OUT PROGRAM [ARGS...]`: runs PROGRAM and writes its peak resident memory
//! (KiB) to OUT, exiting as PROGRAM did. For the memory tests (tests/kit): a child started
//! straight from the test process inherits that process's memory high-water mark (vfork,
//! then exec records the parent's mark as the child's), so every test that once held a large
//! buffer would count in every later measurement. Started from this small process instead,
//! PROGRAM's peak is its own.

#[cfg(unix)]
fn main() {
    use std::os::unix::process::ExitStatusExt;

    let mut args = std::env::args_os().skip(1);
    let (Some(out), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: peak_memory OUT PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let child = std::process::Command::new(program)
        .args(args)
        .spawn()
        .expect("start the program");
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // SAFETY: waits for our own child, which std has not reaped (child.wait is never called).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    std::fs::write(out, usage.ru_maxrss.to_string()).expect("write the peak");
    let status = std::process::ExitStatus::from_raw(status);
    std::process::exit(status.code().unwrap_or(128 + status.signal().unwrap_or(0)));
}

#[cfg(not(unix))]
fn main() {
    eprintln!("peak_memory measures with wait4, on Unix only");
    std::process::exit(2);
}
