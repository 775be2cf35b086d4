//! `run`: create and start; in the foreground, also wait (forwarding
//! signals to the container) and delete.

use std::os::fd::{FromRawFd, OwnedFd};

use super::{create, delete, start, CreateOptions, Created};
use crate::state::Store;
use crate::{Context, Error, Result};

/// Runs a container. Detached, returns 0 once it is started; otherwise
/// returns its exit status (128+N for death by signal N).
pub fn run(store: &Store, id: &str, opts: &CreateOptions, detach: bool) -> Result<i32> {
    // In the foreground every signal is taken through a signalfd from the
    // start, so none is lost between the start and the wait. The init
    // clears the mask for itself.
    let signals = if detach {
        None
    } else {
        Some(SignalFd::block_all()?)
    };
    let created = create(store, id, opts)?;
    if let Err(e) = start(store, id) {
        let _ = delete(store, id, true);
        return Err(e);
    }
    let Some(signals) = signals else {
        return Ok(0);
    };
    let code = signals.wait_forwarding(&created)?;
    if let Err(e) = delete(store, id, true) {
        tracing::warn!("delete {id}: {e}");
    }
    Ok(code)
}

struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    fn block_all() -> Result<SignalFd> {
        // SAFETY: signal-set calls on local values; signalfd returns a new
        // descriptor that is owned here.
        unsafe {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigfillset(&mut set);
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) < 0 {
                return Err(std::io::Error::last_os_error()).ctx(|| "sigprocmask");
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).ctx(|| "signalfd");
            }
            Ok(SignalFd {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Forwards every signal berth gets to the init until it exits, reaping
    /// any other child on the way; returns the init's exit status.
    fn wait_forwarding(&self, init: &Created) -> Result<i32> {
        loop {
            if let Some(code) = reap(init.pid)? {
                return Ok(code);
            }
            let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
            match rustix::io::read(&self.fd, &mut info) {
                Ok(n) if n == info.len() => {}
                Ok(_) => continue,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e).ctx(|| "read the signalfd"),
            }
            // SAFETY: the kernel wrote a whole signalfd_siginfo.
            let info: libc::signalfd_siginfo =
                unsafe { std::ptr::read_unaligned(info.as_ptr().cast()) };
            let signal = info.ssi_signo as i32;
            if signal == libc::SIGCHLD {
                continue;
            }
            // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    std::os::fd::AsRawFd::as_raw_fd(&init.pidfd),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
    }
}

/// Reaps every exited child; the init's exit status once it is among them.
fn reap(init: i32) -> Result<Option<i32>> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on any child, without blocking.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid == 0 {
            return Ok(None);
        }
        if pid < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ECHILD) {
                return Err(Error::Message(
                    "the container's init is not a child of berth".into(),
                ));
            }
            return Err(err).ctx(|| "waitpid");
        }
        if pid == init {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            return Ok(Some(code));
        }
    }
}
