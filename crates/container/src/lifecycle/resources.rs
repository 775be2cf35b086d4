//! The verbs that act on a running container's cgroup: pause, resume,
//! update, events and ps.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use berth_cgroups::Manager;
use oci_spec::runtime::LinuxResources;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use serde::Serialize;

use crate::state::{Container, State, Status, Store};
use crate::{Context, Error, Result};

fn wrong_state(id: &str, status: Status, message: &str) -> Error {
    Error::WrongState {
        id: id.into(),
        status: status.to_string(),
        message: message.into(),
    }
}

fn cgroup_of(id: &str, state: &State) -> Result<Box<dyn Manager>> {
    let placement = state
        .cgroup
        .clone()
        .ok_or_else(|| Error::Message(format!("container {id:?} has no cgroup of its own")))?;
    Ok(berth_cgroups::open(placement))
}

/// The state of a container that is in one of `allowed`.
fn live_state(container: &Container, allowed: &[Status], message: &str) -> Result<State> {
    let status = container.status();
    match &container.state {
        Some(state) if allowed.contains(&status) => Ok(state.clone()),
        _ => Err(wrong_state(&container.id, status, message)),
    }
}

/// Freezes every process of a running container.
pub fn pause(store: &Store, id: &str) -> Result<()> {
    let dir = store.lock(id)?;
    let state = live_state(
        &dir.container()?,
        &[Status::Running],
        "only a running container can be paused",
    )?;
    cgroup_of(id, &state)?.freeze().ctx(|| "pause")
}

/// Lets a paused container run again.
pub fn resume(store: &Store, id: &str) -> Result<()> {
    let dir = store.lock(id)?;
    let state = live_state(
        &dir.container()?,
        &[Status::Paused],
        "only a paused container can be resumed",
    )?;
    cgroup_of(id, &state)?.thaw().ctx(|| "resume")
}

/// Changes the limits of a live container. Device rules are not updated
/// (as in runc); the new values are recorded in its state.
pub fn update(store: &Store, id: &str, resources: &LinuxResources) -> Result<()> {
    let dir = store.lock(id)?;
    let mut state = live_state(
        &dir.container()?,
        &[Status::Created, Status::Running, Status::Paused],
        "only a live container can be updated",
    )?;
    let cgroup = cgroup_of(id, &state)?;
    let mut change = resources.clone();
    change.set_devices(None);
    if let Some(memory) = change.memory() {
        if memory.check_before_update() == Some(true) {
            if let Some(limit) = memory.limit().filter(|l| *l > 0) {
                let usage = cgroup
                    .stats()
                    .ctx(|| "read memory usage")?
                    .memory
                    .usage
                    .usage;
                if (limit as u64) < usage {
                    return Err(Error::spec(
                        "linux.resources.memory.limit",
                        format!("{limit} is below the current usage {usage} (checkBeforeUpdate)"),
                    ));
                }
            }
        }
    }
    cgroup.apply(&change).ctx(|| "update")?;
    let mut linux = state.config.linux().clone().unwrap_or_default();
    let mut recorded = linux.resources().clone().unwrap_or_default();
    berth_cgroups::resources::merge(&mut recorded, &change);
    linux.set_resources(Some(recorded));
    state.config.set_linux(Some(linux));
    dir.write_state(&state)
}

/// One line of `events`, as runc prints it.
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<berth_cgroups::stats::Stats>,
}

/// With `stats_once`, reports the container's resource usage once.
/// Otherwise reports it every `interval`, and an `oom` event whenever the
/// OOM killer strikes, until the container stops.
pub fn events(
    store: &Store,
    id: &str,
    interval: Duration,
    stats_once: bool,
    mut emit: impl FnMut(&Event) -> Result<()>,
) -> Result<()> {
    let container = store.load(id)?;
    let state = live_state(
        &container,
        &[Status::Created, Status::Running, Status::Paused],
        "events are only reported for a live container",
    )?;
    let cgroup = cgroup_of(id, &state)?;
    let stats_event = || -> Result<Event> {
        Ok(Event {
            kind: "stats",
            id,
            data: Some(cgroup.stats().ctx(|| "read stats")?),
        })
    };
    if stats_once {
        return emit(&stats_event()?);
    }
    let tick = Duration::from_millis(100).min(interval);
    let oom_notifier = cgroup.oom_notifier();
    let mut ooms = cgroup.oom_kills();
    let mut parent_ooms = cgroup.parent_oom_kills();
    let mut next_stats = Instant::now();
    loop {
        // Known before the counts are read, so that the last look, once
        // the container has stopped, comes after its last kill.
        let stopped = store
            .load(id)
            .map(|c| c.status() == Status::Stopped)
            .unwrap_or(true);
        // systemd removes a unit's cgroup as soon as its last process is
        // gone, an OOM-killed one too, and may do so before the count is
        // read here: then a kill the parent counted since the last look is
        // taken as the container's (another cgroup of the parent killed in
        // that moment would be taken too). The kernel counts a kill in the
        // cgroup before its parents: the parent is read first.
        let parent_kills = cgroup.parent_oom_kills();
        let kills = cgroup.oom_kills();
        let struck_unseen = !cgroup.placement().exists() && parent_kills > parent_ooms;
        parent_ooms = parent_kills;
        if kills > ooms || struck_unseen {
            ooms = ooms.max(kills);
            emit(&Event {
                kind: "oom",
                id,
                data: None,
            })?;
        }
        if stopped {
            return Ok(());
        }
        if Instant::now() >= next_stats {
            emit(&stats_event()?)?;
            next_stats = Instant::now() + interval;
        }
        match &oom_notifier {
            Some(fd) => wait_for_notice(fd, tick),
            None => std::thread::sleep(tick),
        }
    }
}

/// Waits up to `timeout` for `notifier` (an inotify descriptor) to turn
/// readable, and empties it.
fn wait_for_notice(notifier: &OwnedFd, timeout: Duration) {
    let timeout = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: timeout.subsec_nanos().into(),
    };
    let mut fds = [PollFd::new(notifier, PollFlags::IN)];
    // An interrupted or failed wait only makes this tick shorter.
    let _ = poll(&mut fds, Some(&timeout));
    let mut buf = [0u8; 1024];
    while matches!(rustix::io::read(notifier, &mut buf), Ok(n) if n > 0) {}
}

/// The host pids of the container's processes: of a stopped container,
/// what is left in its cgroup (none once the cgroup is gone), as runc.
pub fn pids(store: &Store, id: &str) -> Result<Vec<i32>> {
    let container = store.load(id)?;
    let state = live_state(
        &container,
        &[
            Status::Created,
            Status::Running,
            Status::Paused,
            Status::Stopped,
        ],
        "the container is still being created",
    )?;
    let procs = cgroup_of(id, &state)?.procs();
    match procs {
        Err(e)
            if container.status() == Status::Stopped && e.raw_os_error() == Some(libc::ENOENT) =>
        {
            Ok(Vec::new())
        }
        other => other.ctx(|| "list the container's processes"),
    }
}
