//! A child that berth clones into a container, the init or an exec'd
//! process: [`start`] runs its body and reports a failure over the channel,
//! and [`serve`] answers its requests until it is ready or gone.

use std::convert::Infallible;
use std::os::fd::{AsFd, BorrowedFd};
use std::panic::AssertUnwindSafe;

use super::channel::{Channel, FromChild};
use crate::state::OciState;
use crate::sys::{clone3, Child, Cloned};
use crate::{Error, Result};

/// Clones a child with the CLONE_NEW* `flags` (into the cgroup directory
/// `cgroup` on v2) that runs `body` with its end of a channel. In the child,
/// berth's log is silenced (it may be the container's stderr), signals are
/// unblocked, and a failure is sent to the parent before the child exits;
/// the child never returns. The parent gets the child and its end.
///
/// # Safety
/// The caller must be single-threaded (see [`clone3`]).
pub unsafe fn start(
    flags: u64,
    cgroup: Option<BorrowedFd>,
    body: impl FnOnce(&Channel) -> Result<Infallible>,
) -> Result<(Child, Channel)> {
    let (ours, theirs) = Channel::pair()?;
    // The debug lines of the setup carry the names of runc's stages
    // ("nsexec container setup", "child process in init()", ...), which
    // tools and runc's own tests look for in a --debug log.
    tracing::debug!("nsexec container setup: cloning a child (namespace flags {flags:#x})");
    match clone3(flags, cgroup)? {
        Cloned::InParent(child) => {
            tracing::debug!(
                "child process in init(): pid {} sets itself up",
                child.pid()
            );
            Ok((child, ours))
        }
        Cloned::InChild => {
            drop(ours);
            let _quiet = tracing::dispatcher::set_default(&tracing::Dispatch::none());
            unblock_signals();
            let code = match std::panic::catch_unwind(AssertUnwindSafe(|| body(&theirs))) {
                Ok(Ok(never)) => match never {},
                Ok(Err(e)) => {
                    let _ = theirs.send(&FromChild::Failed(e));
                    1
                }
                Err(_) => 2,
            };
            // SAFETY: leaving without running any of berth's destructors,
            // whose resources belong to the parent.
            libc::_exit(code)
        }
    }
}

/// berth blocks signals while it waits in the foreground; its children
/// start with none blocked.
fn unblock_signals() {
    // SAFETY: plain signal-mask calls on this (only) thread.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// What berth does for a child on its request during setup.
pub trait Requests {
    /// The runtime-namespace create hooks (prestart, createRuntime), run
    /// for the child's pid; returns the state for its own create hooks.
    fn create_hooks(&mut self, pid: i32) -> Result<OciState>;
    /// Hands the seccomp listener the child made to the spec's agent.
    fn seccomp_listener(&mut self, pid: i32, listener: BorrowedFd) -> Result<()>;
}

/// How the child's setup ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It reported ready and waits (the init, for `start`).
    Ready,
    /// Its end of the channel closed: it exec'd the program (or died).
    Closed,
}

/// Answers the child's requests until it is ready or its end closes; a
/// failure it reports is returned as the error. When the child forks into
/// its pid namespace, `child` becomes the new process (the old one is
/// reaped).
pub fn serve(chan: &Channel, child: &mut Child, requests: &mut dyn Requests) -> Result<Outcome> {
    loop {
        match chan.recv::<FromChild>()? {
            Some(FromChild::Forked { pid }) => {
                // The intermediate exits by itself; dropping it reaps it.
                *child = Child::adopt(pid)?;
            }
            Some(FromChild::RunHooks) => {
                let state = requests.create_hooks(child.pid())?;
                chan.send(&super::channel::ToChild::HooksDone { state })?;
            }
            Some(FromChild::SeccompListener) => {
                let fd = chan
                    .take_fd()
                    .ok_or_else(|| Error::Message("the seccomp listener did not come".into()))?;
                requests.seccomp_listener(child.pid(), fd.as_fd())?;
            }
            Some(FromChild::Ready) => {
                tracing::debug!(
                    "init: closing the pipe to signal completion: pid {} waits for start",
                    child.pid()
                );
                return Ok(Outcome::Ready);
            }
            Some(FromChild::Failed(e)) => return Err(e),
            None => return Ok(Outcome::Closed),
        }
    }
}
