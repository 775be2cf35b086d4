//! `delete`: removes a stopped container (any container with --force) and
//! everything berth made for it.

use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

use super::kill::{init_pidfd, signal_all};
use crate::state::{OciState, State, Status, Store};
use crate::{hooks, rootfs, Context, Error, Result};

pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    let dir = match store.lock(id) {
        // Engines delete, then delete --force, the same id.
        Err(Error::NotFound(_)) if force => return Ok(()),
        other => other?,
    };
    let container = dir.container()?;
    let status = container.status();
    let Some(state) = container.state else {
        // We hold the lock, so the create that made this directory died
        // before it recorded anything; the cgroup it was making, if any,
        // is in its plan.
        if let Some(placement) = dir.cgroup_plan()? {
            remove_planned_cgroup(placement)?;
        }
        return dir.remove();
    };
    match status {
        Status::Stopped => {}
        _ if force => {
            signal_all(&state, libc::SIGKILL)?;
            wait_for_exit(&state, Duration::from_secs(10))?;
        }
        _ => {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                message: "only a stopped container can be deleted (or use --force)".into(),
            })
        }
    }
    clean_up(&state)?;
    dir.remove()?;
    let hooks = state.config.hooks().clone().unwrap_or_default();
    let poststop = hooks.poststop().as_deref().unwrap_or_default();
    if !poststop.is_empty() {
        hooks::run_all_warn(
            "poststop",
            poststop,
            &OciState::for_hooks(&state, Status::Stopped),
        );
    }
    Ok(())
}

/// Removes what outlives the init: processes left in the cgroup (when the
/// container had no pid namespace of its own, the init's death did not take
/// them), mounts left on the host (when it had no mount namespace of its
/// own), and the cgroup.
fn clean_up(state: &State) -> Result<()> {
    let linux = state.config.linux().clone().unwrap_or_default();
    let has = |typ| linux.namespaces().iter().flatten().any(|n| n.typ() == typ);
    if let Some(placement) = &state.cgroup {
        let cgroup = berth_cgroups::open(placement.clone());
        // Under the systemd driver, systemd removes a scope's cgroup once
        // its last process is gone: then there is nothing left to kill.
        if !has(oci_spec::runtime::LinuxNamespaceType::Pid) && placement.exists() {
            cgroup
                .kill_all(Duration::from_secs(10))
                .ctx(|| "kill the container's processes")?;
        }
        cgroup.destroy().ctx(|| "remove the container's cgroup")?;
    }
    if let Some(group) = &state.intel_rdt {
        group.remove()?;
    }
    if !has(oci_spec::runtime::LinuxNamespaceType::Mount) {
        rootfs::detach_host_mounts(&state.rootfs)?;
    }
    Ok(())
}

/// Removes the cgroup a killed create noted it would make. Its init may
/// be in it (and is killed); a directory not made yet lists no process
/// and is not there to remove.
fn remove_planned_cgroup(placement: berth_cgroups::Placement) -> Result<()> {
    let cgroup = berth_cgroups::open(placement);
    if cgroup.procs().is_ok() {
        cgroup
            .kill_all(Duration::from_secs(10))
            .ctx(|| "kill the processes of the unfinished container")?;
    }
    cgroup
        .destroy()
        .ctx(|| "remove the cgroup of the unfinished container")
}

/// Waits until the init has exited (a zombie counts: it will run no more).
fn wait_for_exit(state: &State, timeout: Duration) -> Result<()> {
    let Some(pidfd) = init_pidfd(state)? else {
        return Ok(());
    };
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    let timeout = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: 0,
    };
    loop {
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => {
                return Err(Error::Message(format!(
                    "the init (pid {}) did not die",
                    state.pid
                )))
            }
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).ctx(|| "wait for the init"),
        }
    }
}
