//! clone3(2): one system call creates a child in its new namespaces, hands
//! back a pidfd, and (on cgroup v2) places it in its cgroup before it runs.
//! Neither libc nor rustix wraps clone3 in its fork-like form (no new stack,
//! the child returns from the call), so it is called directly.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::Child;
use crate::{Context, Result};

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's struct clone_args (include/uapi/linux/sched.h).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Which side of the clone this is.
pub enum Cloned {
    InChild,
    InParent(Child),
}

/// Forks with `flags` (CLONE_NEW* namespaces), optionally into the cgroup
/// directory `cgroup`.
///
/// # Safety
/// The caller must be single-threaded: the child is a copy of this one
/// thread, and anything another thread held locked would stay locked.
pub unsafe fn clone3(flags: u64, cgroup: Option<BorrowedFd>) -> Result<Cloned> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: flags | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    let ret = libc::syscall(
        libc::SYS_clone3,
        &args as *const CloneArgs,
        std::mem::size_of::<CloneArgs>(),
    );
    match ret {
        0 => Ok(Cloned::InChild),
        pid if pid > 0 => Ok(Cloned::InParent(Child::new(
            pid as i32,
            OwnedFd::from_raw_fd(pidfd),
        ))),
        _ => Err(std::io::Error::last_os_error()).ctx(|| format!("clone3(flags {flags:#x})")),
    }
}
