//! berth's side of the init: the clone and the setup conversation.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use berth_cgroups::Manager;
use oci_spec::runtime::{Linux, LinuxResources};

use super::channel::{Channel, FromInit, ToInit};
use super::clone::{clone3, Cloned};
use super::namespaces::ParentNamespaces;
use super::InitConfig;
use crate::{Context, Error, Result};

/// An init that reported ready and waits for `start`.
pub struct Spawned {
    /// The init's pid in berth's pid namespace.
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// Whether the init is berth's child (else a second fork made it, and it
    /// was reparented to berth as subreaper).
    pub is_child: bool,
    channel: Channel,
}

impl Spawned {
    /// Tells the init the container is recorded (giving it the state for
    /// startContainer hooks); it then blocks on the exec fifo.
    pub fn commit(&self, state: String) -> Result<()> {
        self.channel.send(&ToInit::Committed { state })
    }
}

/// An init on its way: killed and reaped if setup fails.
struct Pending {
    pid: i32,
    pidfd: OwnedFd,
    intermediate: Option<i32>,
}

impl Pending {
    fn kill(&self) {
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::KILL);
        for pid in std::iter::once(self.pid).chain(self.intermediate) {
            reap(pid);
        }
    }
}

fn reap(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
    }
}

/// The container's cgroup (created, still empty) and the limits to write.
pub struct CgroupSetup<'a> {
    pub manager: &'a dyn Manager,
    pub resources: &'a LinuxResources,
}

/// Clones the init and takes it through setup. `create_hooks` runs the
/// runtime-namespace create hooks for the init's pid and returns the state
/// for the init's own. On error the init is dead and reaped.
pub fn spawn(
    cfg: &InitConfig,
    linux: &Linux,
    cgroup: Option<CgroupSetup>,
    mut create_hooks: impl FnMut(i32) -> Result<String>,
    mut seccomp_listener: impl FnMut(i32, BorrowedFd) -> Result<()>,
) -> Result<Spawned> {
    let (ours, theirs) = Channel::pair()?;
    if cfg.plan.fork_into_pid_ns {
        // The real init will be a grandchild: make it ours when its parent
        // exits, so that it can be waited for.
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .ctx(|| "PR_SET_CHILD_SUBREAPER")?;
    }
    let clone_into = cgroup.as_ref().and_then(|c| c.manager.clone_into_fd());
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
    let cloned = unsafe { clone3(cfg.plan.clone_flags, clone_into.as_ref().map(|f| f.as_fd())) };
    if let Ok(Cloned::Child) = cloned {
        drop(ours);
        super::main(cfg, &theirs);
    }
    let left = joined.leave();
    drop(theirs);
    let Cloned::Parent { pid, pidfd } = cloned? else {
        unreachable!("the child never returns from init::main")
    };
    let mut init = Pending {
        pid,
        pidfd,
        intermediate: None,
    };
    let result = left.and_then(|()| {
        let late = cgroup.as_ref().map(|c| CgroupSetup {
            manager: c.manager,
            resources: rest.as_ref().unwrap_or(c.resources),
        });
        converse(
            cfg,
            linux,
            late.as_ref(),
            clone_into.is_some(),
            &ours,
            &mut init,
            &mut create_hooks,
            &mut seccomp_listener,
        )
    });
    match result {
        Ok(()) => Ok(Spawned {
            pid: init.pid,
            pidfd: init.pidfd,
            is_child: init.intermediate.is_none(),
            channel: ours,
        }),
        Err(e) => {
            init.kill();
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn converse(
    cfg: &InitConfig,
    linux: &Linux,
    cgroup: Option<&CgroupSetup>,
    cloned_into_cgroup: bool,
    chan: &Channel,
    init: &mut Pending,
    create_hooks: &mut impl FnMut(i32) -> Result<String>,
    seccomp_listener: &mut impl FnMut(i32, BorrowedFd) -> Result<()>,
) -> Result<()> {
    if cfg.plan.new_user {
        cfg.plan.id_mapper.write(
            init.pid,
            linux.uid_mappings().as_deref().unwrap_or_default(),
            linux.gid_mappings().as_deref().unwrap_or_default(),
        )?;
    }
    // The cgroup work (on v1 a migration that waits for an RCU grace
    // period; everywhere the limits and the device program) is done while
    // the init builds the rootfs, which needs neither. The init must be in
    // its cgroup before it forks or makes a cgroup namespace, though.
    let join = cgroup.filter(|_| !cloned_into_cgroup).map(|c| c.manager);
    let join_now =
        cfg.plan.fork_into_pid_ns || cfg.plan.unshare_flags & libc::CLONE_NEWCGROUP as u64 != 0;
    let add_init = |manager: &dyn Manager| {
        manager
            .add_process(init.pid)
            .ctx(|| "join the container's cgroup")
    };
    if let Some(manager) = join.filter(|_| join_now) {
        add_init(manager)?;
    }
    chan.send(&ToInit::Go)?;
    if let Some(manager) = join.filter(|_| !join_now) {
        add_init(manager)?;
    }
    if let Some(c) = cgroup {
        c.manager.apply(c.resources).ctx(|| "linux.resources")?;
    }
    chan.send(&ToInit::CgroupReady)?;
    loop {
        match chan.recv::<FromInit>()? {
            Some(FromInit::Forked { pid }) => {
                reap(init.pid);
                init.intermediate = Some(init.pid);
                init.pid = pid;
                init.pidfd = rustix::process::pidfd_open(
                    rustix::process::Pid::from_raw(pid)
                        .ok_or_else(|| Error::Message(format!("bad init pid {pid}")))?,
                    rustix::process::PidfdFlags::empty(),
                )
                .ctx(|| "pidfd_open of the init")?;
            }
            Some(FromInit::RunHooks) => {
                let state = create_hooks(init.pid)?;
                chan.send(&ToInit::HooksDone { state })?;
            }
            Some(FromInit::SeccompListener) => {
                let fd = chan
                    .take_fd()
                    .ok_or_else(|| Error::Message("the seccomp listener did not come".into()))?;
                seccomp_listener(init.pid, fd.as_fd())?;
            }
            Some(FromInit::Ready) => return Ok(()),
            Some(FromInit::Failed(e)) => return Err(e),
            None => {
                return Err(Error::Message(
                    "the container's init exited during setup".into(),
                ))
            }
        }
    }
}
