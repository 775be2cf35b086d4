//! `kill`: a signal to the container's init, or with --all to every process
//! of its cgroup.

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
                Some(placement) if cgroup_remains(placement) => signal_all(state, signal),
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
    send(&pidfd, signal).ctx(|| format!("signal {signal} to the init (pid {})", state.pid))
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
        Err(e) => return Err(e).ctx(|| format!("pidfd_open {}", state.pid)),
    };
    Ok(is_alive(state.pid, state.pid_start_time).then_some(pidfd))
}

fn send(pidfd: &std::os::fd::OwnedFd, signal: i32) -> rustix::io::Result<()> {
    // rustix's Signal covers the named signals only; real-time ones need
    // the raw number.
    // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(pidfd),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        let errno = std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL);
        if errno == libc::ESRCH {
            return Ok(());
        }
        return Err(rustix::io::Errno::from_raw_os_error(errno));
    }
    Ok(())
}

/// Signals every process in the container's cgroup, and the init. The
/// cgroup is frozen meanwhile, so that no process forks past the signal.
pub fn signal_all(state: &State, signal: i32) -> Result<()> {
    signal_init(state, signal)?;
    let Some(placement) = &state.cgroup else {
        return Ok(());
    };
    let cgroup = berth_cgroups::open(placement.clone());
    let was_frozen = berth_cgroups::is_frozen(placement);
    let frozen = !was_frozen && cgroup.freeze().is_ok();
    let result = signal_pids(cgroup.as_ref(), signal);
    // A frozen process takes SIGKILL only once thawed; a paused container
    // stays paused for any other signal.
    if frozen || (was_frozen && signal == libc::SIGKILL) {
        cgroup.thaw().ctx(|| "thaw after signalling")?;
    }
    result
}

/// Whether the container's cgroup is still there: a systemd unit's goes
/// with its last process.
fn cgroup_remains(placement: &berth_cgroups::Placement) -> bool {
    match placement {
        berth_cgroups::Placement::V2 { dir, .. } => dir.exists(),
        berth_cgroups::Placement::V1 { dirs, .. } => dirs.iter().any(|d| d.dir.exists()),
    }
}

fn signal_pids(cgroup: &dyn berth_cgroups::Manager, signal: i32) -> Result<()> {
    for pid in cgroup.procs().ctx(|| "list the container's processes")? {
        // SAFETY: kill(2) with plain integers.
        if unsafe { libc::kill(pid, signal) } < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err).ctx(|| format!("signal {signal} to pid {pid}"));
            }
        }
    }
    Ok(())
}
