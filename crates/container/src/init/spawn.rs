//! berth's side of the init: the clone and the setup conversation.

use std::os::fd::{AsFd, OwnedFd};

use berth_cgroups::Manager;
use oci_spec::runtime::{Linux, LinuxResources};

use super::channel::{Channel, FromChild, ToChild};
use super::child::{self, Outcome, Requests};
use super::enter::ParentNamespaces;
use super::InitConfig;
use crate::state::OciState;
use crate::sys::Child;
use crate::{Context, Error, Result};

/// An init that reported ready and waits for `start`; killed and reaped if
/// dropped before it is released.
pub struct Spawned {
    pub init: Child,
    channel: Channel,
}

impl Spawned {
    /// Tells the init the container is recorded (giving it the state for
    /// startContainer hooks); it then blocks on the exec fifo.
    pub fn commit(&self, state: OciState) -> Result<()> {
        self.channel.send(&ToChild::Committed { state })
    }

    /// Lets the committed init live on: its pid and pidfd.
    pub fn release(self) -> (i32, OwnedFd) {
        self.init.release()
    }
}

/// The container's cgroup (created, still empty) and the limits to write.
pub struct CgroupSetup<'a> {
    pub manager: &'a dyn Manager,
    pub resources: &'a LinuxResources,
}

/// What is left of the cgroup's setup once the init is cloned.
struct LateCgroup<'a> {
    manager: &'a dyn Manager,
    /// The limits still to write.
    resources: &'a LinuxResources,
    /// Whether the clone placed the init in the cgroup already (v2).
    holds_init: bool,
}

/// Clones the init and takes it through setup. On error the init is dead
/// and reaped.
pub fn spawn(
    cfg: &InitConfig,
    linux: &Linux,
    cgroup: Option<CgroupSetup>,
    requests: &mut dyn Requests,
) -> Result<Spawned> {
    if cfg.plan.fork_into_pid_ns {
        // The real init will be a grandchild: make it ours when its parent
        // exits, so that it can be waited for.
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .ctx(|| "PR_SET_CHILD_SUBREAPER")?;
    }
    let clone_into: Option<OwnedFd> = match &cgroup {
        Some(c) => c.manager.clone_into_fd(None).ctx(|| "cgroups")?,
        None => None,
    };
    // v1 writes device rules one at a time (deny all, then each allow):
    // they must be complete before the init, which makes device nodes,
    // joins. Everything else (and v2's device program, attached at once)
    // can come while the init works.
    let rest = match &cgroup {
        Some(c) if clone_into.is_none() => {
            let mut devices = LinuxResources::default();
            devices.set_devices(c.resources.devices().clone());
            c.manager
                .apply(&devices)
                .ctx(|| "linux.resources.devices")?;
            let mut rest = c.resources.clone();
            rest.set_devices(None);
            Some(rest)
        }
        _ => None,
    };
    let joined = ParentNamespaces::enter(cfg.plan, linux)?;
    // SAFETY: berth is single-threaded.
    let started = unsafe {
        child::start(
            cfg.plan.clone_flags,
            clone_into.as_ref().map(|f| f.as_fd()),
            |chan| super::run(cfg, chan),
        )
    };
    let left = joined.leave();
    let (mut init, chan) = started?;
    left?;
    let late = cgroup.as_ref().map(|c| LateCgroup {
        manager: c.manager,
        resources: rest.as_ref().unwrap_or(c.resources),
        holds_init: clone_into.is_some(),
    });
    converse(cfg, linux, late.as_ref(), &chan, &mut init, requests)?;
    Ok(Spawned {
        init,
        channel: chan,
    })
}

/// The init's setup as berth sees it: id maps, cgroup, then the init's
/// requests until it is ready.
fn converse(
    cfg: &InitConfig,
    linux: &Linux,
    cgroup: Option<&LateCgroup>,
    chan: &Channel,
    init: &mut Child,
    requests: &mut dyn Requests,
) -> Result<()> {
    if cfg.plan.new_user {
        cfg.plan.id_mapper.write(
            init.pid(),
            linux.uid_mappings().as_deref().unwrap_or_default(),
            linux.gid_mappings().as_deref().unwrap_or_default(),
        )?;
    }
    // The cgroup work (on v1 a migration that waits for an RCU grace
    // period; everywhere the limits and the device program) is done while
    // the init builds the rootfs, which needs neither. The init must be in
    // its cgroup before it forks or makes a cgroup namespace, though.
    let join = cgroup.filter(|c| !c.holds_init).map(|c| c.manager);
    // Without a cgroup namespace a cgroup mount binds the container's
    // cgroup directories, which a systemd unit makes only once started
    // with the init in it.
    let mounts_cgroup_dirs = !cfg.plan.has_cgroupns
        && cfg
            .bundle
            .spec
            .mounts()
            .iter()
            .flatten()
            .any(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")));
    let join_now = cfg.plan.fork_into_pid_ns
        || cfg.plan.unshare_flags & libc::CLONE_NEWCGROUP as u64 != 0
        || (mounts_cgroup_dirs && join.is_some_and(|m| !m.placement().exists()));
    let add_init = |manager: &dyn Manager| {
        manager
            .join(init.pid(), None)
            .ctx(|| "join the container's cgroup")
    };
    if let Some(manager) = join.filter(|_| join_now) {
        add_init(manager)?;
    }
    // Before the init can fork, so that what it forks inherits the reset.
    crate::process::sched::reset_affinity(init.pid());
    // The init is in its network namespace from the clone on.
    if let Some(devices) = linux.net_devices() {
        crate::netdev::move_into(init.pid(), devices)?;
    }
    if let Some(group) = cfg.intel_rdt {
        group.add(init.pid())?;
    }
    chan.send(&ToChild::Go)?;
    // From here the init works too, and may fail first: its reason, when
    // it sent one, says more than the broken channel or the ESRCH it left.
    let late = || -> Result<()> {
        if let Some(manager) = join.filter(|_| !join_now) {
            add_init(manager)?;
        }
        if let Some(c) = cgroup {
            c.manager.apply(c.resources).ctx(|| "linux.resources")?;
        }
        chan.send(&ToChild::CgroupReady)
    };
    late().map_err(|e| failure_sent(chan).unwrap_or(e))?;
    match child::serve(chan, init, requests)? {
        Outcome::Ready => Ok(()),
        Outcome::Closed => Err(Error::Message(
            "the container's init exited during setup".into(),
        )),
    }
}

/// The error the init reported before it went, if one is waiting.
fn failure_sent(chan: &Channel) -> Option<Error> {
    let mut poll = [rustix::event::PollFd::from_borrowed_fd(
        chan.as_fd(),
        rustix::event::PollFlags::IN,
    )];
    let readable = rustix::event::poll(&mut poll, Some(&rustix::event::Timespec::default()))
        .is_ok_and(|n| n > 0);
    if !readable {
        return None;
    }
    match chan.recv::<FromChild>() {
        Ok(Some(FromChild::Failed(e))) => Some(e),
        _ => None,
    }
}
