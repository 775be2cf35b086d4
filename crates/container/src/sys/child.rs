//! A child process held by its pidfd, so that it is signalled without the
//! risk of a reused pid, and never left behind: a `Child` that is dropped
//! before its owner lets it go is killed and reaped.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::process::{Pid, PidfdFlags, WaitOptions};

use crate::{Context, Error, Result};

pub struct Child {
    pid: i32,
    /// Taken out only by `release`, which ends the `Child`.
    pidfd: Option<OwnedFd>,
}

impl Child {
    /// A child just made (by clone3 with CLONE_PIDFD).
    pub fn new(pid: i32, pidfd: OwnedFd) -> Child {
        Child {
            pid,
            pidfd: Some(pidfd),
        }
    }

    /// A process that became berth's child by being reparented to it (berth
    /// is its subreaper): opened by pid while it cannot yet be reaped.
    pub fn adopt(pid: i32) -> Result<Child> {
        let raw = Pid::from_raw(pid).ok_or_else(|| Error::Message(format!("bad pid {pid}")))?;
        let pidfd = rustix::process::pidfd_open(raw, PidfdFlags::empty())
            .ctx(|| format!("pidfd_open {pid}"))?;
        Ok(Child::new(pid, pidfd))
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn pidfd(&self) -> BorrowedFd<'_> {
        let pidfd = self.pidfd.as_ref().expect("held until released");
        std::os::fd::AsFd::as_fd(pidfd)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) -> rustix::io::Result<()> {
        pidfd_signal(self.pidfd(), signal)
    }

    /// Lets the process live on: its owner now waits for it (or not).
    pub fn release(mut self) -> (i32, OwnedFd) {
        let pidfd = self.pidfd.take().expect("held until released");
        (self.pid, pidfd)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let Some(pidfd) = &self.pidfd else {
            return;
        };
        let _ = pidfd_signal(std::os::fd::AsFd::as_fd(pidfd), libc::SIGKILL);
        if let Some(pid) = Pid::from_raw(self.pid) {
            let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
        }
    }
}

/// pidfd_send_signal(2) of any signal number (rustix's `Signal` lacks the
/// real-time ones); a process already gone is no error.
pub fn pidfd_signal(pidfd: BorrowedFd, signal: i32) -> rustix::io::Result<()> {
    // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL);
        if errno != libc::ESRCH {
            return Err(rustix::io::Errno::from_raw_os_error(errno));
        }
    }
    Ok(())
}
