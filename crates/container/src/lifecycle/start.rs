//! `start`: releases the init blocked on the exec fifo, exactly once.

use std::os::fd::OwnedFd;

use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};

use crate::state::{ContainerDir, OciState, State, Status, Store};
use crate::{hooks, Context, Error, Result};

pub fn start(store: &Store, id: &str) -> Result<()> {
    let dir = store.lock(id)?;
    let container = dir.container()?;
    let status = container.status();
    match (&container.state, status) {
        (Some(state), Status::Created) => release(&dir, state),
        _ => Err(Error::WrongState {
            id: id.into(),
            status: status.to_string(),
            message: "only a created container can be started".into(),
        }),
    }
}

/// Starts the created container of the locked `dir`.
pub(super) fn release(dir: &ContainerDir, state: &State) -> Result<()> {
    let id = &state.id;
    // The init holds the fifo open for reading: a non-blocking open for
    // writing succeeds exactly while it waits, and fails with ENXIO once it
    // has gone.
    let fifo = match rustix::fs::open(
        dir.fifo_path(),
        OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NXIO) => {
            return Err(Error::WrongState {
                id: id.into(),
                status: Status::Stopped.to_string(),
                message: "its init has exited".into(),
            })
        }
        Err(e) => return Err(e).ctx(|| format!("open {}", dir.fifo_path().display())),
    };
    rustix::io::write(&fifo, b"0").ctx(|| "release the container's init")?;
    dir.remove_exec_fifo()?;
    wait_for_exec(&fifo)?;
    if state.config.process().is_none() {
        return Err(Error::spec(
            "process",
            "the container has no process to start",
        ));
    }
    let hooks = state.config.hooks().clone().unwrap_or_default();
    let poststart = hooks.poststart().as_deref().unwrap_or_default();
    if !poststart.is_empty() {
        hooks::run_all_warn(
            "poststart",
            poststart,
            &OciState::for_hooks(state, Status::Running),
        );
    }
    Ok(())
}

/// Waits until the init has executed the user's program (startContainer
/// hooks run first): its fifo descriptor is close-on-exec, and once no
/// reader is left the fifo's write end polls POLLERR. (It does too if the
/// init died.)
fn wait_for_exec(fifo: &OwnedFd) -> Result<()> {
    loop {
        let mut fds = [PollFd::new(fifo, PollFlags::ERR)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) if !fds[0].revents().is_empty() => return Ok(()),
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).ctx(|| "wait for the container's program to start"),
        }
    }
}
