//! File descriptors: only stdio, the --preserve-fds ones and berth's own
//! (close-on-exec) descriptors may survive into the container.

use std::os::fd::{AsRawFd, RawFd};

use crate::{Context, Result};

/// Closes every descriptor from `first` up except those in `keep` (which
/// must be close-on-exec), so that nothing the caller leaked, not even a
/// directory that `process.cwd` could reach through /proc/self/fd
/// (CVE-2024-21626), is open once the container's cwd is entered.
pub fn close_all_from(first: RawFd, keep: &[RawFd]) -> Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= first).collect();
    keep.sort_unstable();
    let mut start = first as u32;
    for fd in keep {
        let fd = fd as u32;
        if fd > start {
            close_range(start, fd - 1)?;
        }
        start = fd + 1;
    }
    close_range(start, u32::MAX)
}

fn close_range(first: u32, last: u32) -> Result<()> {
    // SAFETY: the caller owns every descriptor in the range; none is used
    // after this point.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| format!("close_range({first}, {last})"));
    }
    Ok(())
}

/// Clears close-on-exec on fds 3 .. 3+n so that --preserve-fds hands them on.
pub fn preserve(n: u32) -> Result<()> {
    for fd in 3..3 + n as RawFd {
        // SAFETY: fcntl on a descriptor number; an fd that is not open
        // fails with EBADF, which is reported.
        let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        if ret < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| format!("--preserve-fds: fd {fd}"));
        }
    }
    Ok(())
}

/// Gives stdio to the process's user (its uid; the group is left as the
/// file system set it, as runc leaves it), so that a terminal or a pipe
/// the engine handed over stays usable after the user switch. /dev/null is
/// never touched; a descriptor the user namespace cannot chown is left
/// as it is.
pub fn give_stdio_to(uid: u32) -> Result<()> {
    let null = rustix::fs::stat("/dev/null").ok().map(|st| st.st_rdev);
    for fd in 0..3 {
        // SAFETY: the standard descriptors are this process's; borrowed
        // for the duration of the calls only.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let Ok(st) = rustix::fs::fstat(fd) else {
            continue;
        };
        let is_char = rustix::fs::FileType::from_raw_mode(st.st_mode)
            == rustix::fs::FileType::CharacterDevice;
        if st.st_uid == uid || (is_char && Some(st.st_rdev) == null) {
            continue;
        }
        let owner = rustix::process::Uid::from_raw(uid);
        match rustix::fs::fchown(fd, Some(owner), None) {
            Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::PERM) => {}
            Err(e) => return Err(e).ctx(|| format!("chown fd {} to uid {uid}", fd.as_raw_fd())),
        }
    }
    Ok(())
}
