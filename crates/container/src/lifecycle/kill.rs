//! `kill`: a signal to the container's init, or with --all to every process
//! of its cgroup.

use std::os::fd::AsFd;

use crate::state::{is_alive, State, Status, Store};
use crate::{Context, Error, Result};

pub fn kill(store: &Store, id: &str, signal: i32, all: bool) -> Result<()> {
    let dir = store.lock(id)?;
    let container = dir.container()?;
    let status = container.status();
    // The words "container not running" are runc's: containerd's shim
    // knows a container that has already finished only by them.
    let state = match (&container.state, status) {
        (Some(state), Status::Created | Status::Running | Status::Paused) => state,
        // As runc: --all still reaches what is left in the cgroup of a
        // stopped container (processes of a pid namespace it did not own),
        // and succeeds when nothing is; engines send it after every stop.
        (Some(state), Status::Stopped) if all => {
            return match &state.cgroup {
                Some(placement) if placement.exists() => signal_all(state, signal),
                _ => Ok(()),
            };
        }
        (None, Status::Stopped) if all => return Ok(()),
        _ => {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                message: "container not running".into(),
            })
        }
    };
    if all {
        signal_all(state, signal)
    } else {
        signal_init(state, signal)
    }
}

/// Signals the init through a pidfd opened, then checked to still be the
/// init (by start time), so a reused pid is never signalled.
pub fn signal_init(state: &State, signal: i32) -> Result<()> {
    let Some(pidfd) = init_pidfd(state)? else {
        return Ok(());
    };
    crate::sys::pidfd_signal(pidfd.as_fd(), signal)
        .ctx(|| format!("signal {signal} to the init (pid {})", state.pid))
}

/// A pidfd of the container's init, checked after opening to still be the
/// init (by start time); None when it is gone.
pub(super) fn init_pidfd(state: &State) -> Result<Option<std::os::fd::OwnedFd>> {
    let Some(pid) = rustix::process::Pid::from_raw(state.pid) else {
        return Ok(None);
    };
    let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(None),
        // The pid now names a thread of another process (pidfd_open takes
        // thread-group leaders only): the init is gone and its pid reused,
        // soon on a machine with few pids in use.
        Err(rustix::io::Errno::INVAL) => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("pidfd_open {}", state.pid)),
    };
    Ok(is_alive(state.pid, state.pid_start_time).then_some(pidfd))
}

/// Signals every process in the container's cgroup, and the init.
pub fn signal_all(state: &State, signal: i32) -> Result<()> {
    signal_init(state, signal)?;
    let Some(placement) = &state.cgroup else {
        return Ok(());
    };
    match berth_cgroups::open(placement.clone()).signal_all(signal) {
        // A systemd unit's cgroup goes with its last process, maybe while
        // it is signalled: then nothing is left to signal.
        Err(_) if !placement.exists() => Ok(()),
        result => result.ctx(|| format!("signal {signal} to the container's processes")),
    }
}
