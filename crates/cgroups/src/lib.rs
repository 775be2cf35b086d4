//! Cgroup management for berth.
//!
//! One interface, [`Manager`], with a v1 backend (also used on hybrid hosts,
//! where the v1 controllers sit beside a cgroup2 hierarchy) and a v2 backend;
//! [`create`] picks one from the [`Host`] layout found at run time. A created
//! cgroup is described by a serialisable [`Placement`], which the runtime keeps
//! in the container's state so that later commands ([`open`]) reach the same
//! directories whatever cgroup the caller itself is in.

mod convert;
mod device_state;
mod devices_bpf;
mod error;
mod fsutil;
mod host;
pub mod mountinfo;
mod path;
pub mod resources;
pub mod stats;
mod sub;
pub mod systemd;
mod v1;
mod v2;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use host::{Hierarchy, Host, OwnCgroups, CGROUP_MOUNT};
pub use path::CgroupsPath;
pub use sub::SubCgroup;

/// What every backend offers the runtime.
pub trait Manager {
    /// Where this cgroup lives, for the container's state.
    fn placement(&self) -> &Placement;
    /// Writes every limit of `resources` to the cgroup's files.
    fn apply(&self, resources: &LinuxResources) -> Result<()>;
    /// Moves process `pid` into the cgroup (in every hierarchy of it), or
    /// into its existing sub-cgroup `sub`, as `exec --cgroup` asks.
    fn join(&self, pid: i32, sub: Option<&SubCgroup>) -> Result<()> {
        let value = pid.to_string();
        for dir in self.placement().dirs_for(sub)? {
            fsutil::write(&dir, "cgroup.procs", &value).map_err(|e| match e {
                Error::Write { path, source, .. } => Error::Io {
                    path: format!("adding pid {pid} to {}", path.display()).into(),
                    source,
                },
                other => other,
            })?;
        }
        Ok(())
    }
    /// The pids of the processes in the cgroup.
    fn procs(&self) -> Result<Vec<i32>>;
    /// Removes the cgroup, and the parents that creating it made.
    fn destroy(&self) -> Result<()>;
    /// A directory fd of the cgroup (or of its sub-cgroup `sub`, as in
    /// [`Manager::join`]) for clone3's CLONE_INTO_CGROUP; `None` where one
    /// fd cannot place a process (cgroup v1).
    fn clone_into_fd(&self, sub: Option<&SubCgroup>) -> Result<Option<OwnedFd>> {
        let Placement::V2 { .. } = self.placement() else {
            return Ok(None);
        };
        let dir = self.placement().dirs_for(sub)?.remove(0);
        rustix::fs::open(
            &dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(Some)
        .map_err(|e| Error::Io {
            path: format!("the cgroup {}", dir.display()).into(),
            source: e.into(),
        })
    }
    /// Stops every process of the cgroup (v1 freezer, v2 cgroup.freeze) and
    /// waits until they are stopped.
    fn freeze(&self) -> Result<()>;
    /// Lets the processes of a frozen cgroup run again.
    fn thaw(&self) -> Result<()>;
    /// Resource usage, for `events`.
    fn stats(&self) -> Result<stats::Stats>;
    /// How many processes the OOM killer has killed in the cgroup so far.
    fn oom_kills(&self) -> u64;
    /// A descriptor that turns readable when `oom_kills` may have grown, so
    /// that a watcher reads the count at once: a systemd unit's cgroup is
    /// removed right after its last process is OOM-killed, too soon for a
    /// reader that polls. None where the kernel gives no such notice.
    fn oom_notifier(&self) -> Option<OwnedFd> {
        None
    }
    /// The OOM kills the parent cgroup has counted, its children's among
    /// them (v2's memory.events is hierarchical): what is left to read
    /// once a systemd unit's cgroup is gone. None where no one else
    /// removes the cgroup, or there is no such count (v1).
    fn parent_oom_kills(&self) -> Option<u64> {
        None
    }

    /// Sends `signal` to every process of the cgroup. The cgroup is frozen
    /// meanwhile, so that no process forks past the signal; a paused
    /// cgroup stays paused, but for SIGKILL, which a frozen process only
    /// takes once thawed.
    fn signal_all(&self, signal: i32) -> Result<()> {
        let was_frozen = is_frozen(self.placement());
        let frozen = !was_frozen && self.freeze().is_ok();
        let result = self.procs().and_then(|pids| signal_pids(&pids, signal));
        if frozen || (was_frozen && signal == libc::SIGKILL) {
            self.thaw()?;
        }
        result
    }

    /// SIGKILLs the cgroup's processes until none is left, or fails after
    /// `timeout`.
    fn kill_all(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let pids = self.procs()?;
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Invalid {
                    field: "cgroup".into(),
                    message: format!("processes {pids:?} of the container do not die"),
                });
            }
            signal_pids(&pids, libc::SIGKILL)?;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// kill(2) of each pid; one already gone is no error.
fn signal_pids(pids: &[i32], signal: i32) -> Result<()> {
    for &pid in pids {
        // SAFETY: kill(2) with plain integers.
        if unsafe { libc::kill(pid, signal) } < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(Error::io(Path::new(&format!("/proc/{pid}")), err));
            }
        }
    }
    Ok(())
}

/// Where a container's cgroup lives, as recorded in its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "layout", rename_all = "lowercase")]
pub enum Placement {
    V1 {
        /// One directory per mounted hierarchy.
        dirs: Vec<V1Dir>,
        /// The container's directory in the cgroup2 hierarchy of a hybrid host.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unified: Option<PathBuf>,
        /// Directories that creating the cgroup made, parents first.
        created: Vec<PathBuf>,
        /// The systemd unit the cgroup belongs to, under the systemd driver.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        systemd: Option<systemd::SystemdUnit>,
    },
    V2 {
        dir: PathBuf,
        created: Vec<PathBuf>,
        /// The systemd unit the cgroup belongs to, under the systemd driver
        /// (absent in the state of a cgroupfs container).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        systemd: Option<systemd::SystemdUnit>,
    },
}

/// The container's directory in one v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Dir {
    pub controllers: Vec<String>,
    pub dir: PathBuf,
}

impl V1Dir {
    /// The hierarchy's directory name under a container's /sys/fs/cgroup
    /// ("cpu,cpuacct", "systemd" for "name=systemd"), as runc names it.
    pub fn mount_name(&self) -> String {
        self.controllers
            .iter()
            .map(|c| c.strip_prefix("name=").unwrap_or(c))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Placement {
    /// Whether the cgroup is still there: a systemd unit's goes with its
    /// last process.
    pub fn exists(&self) -> bool {
        match self {
            Placement::V2 { dir, .. } => dir.exists(),
            Placement::V1 { dirs, .. } => dirs.iter().any(|d| d.dir.exists()),
        }
    }

    /// The cgroup's directories, one per hierarchy, or those of its
    /// sub-cgroup `sub` (see [`SubCgroup`]); a controller that none of the
    /// container's hierarchies has is refused.
    pub fn dirs_for(&self, sub: Option<&SubCgroup>) -> Result<Vec<PathBuf>> {
        let dirs: Vec<(&[String], &PathBuf)> = match self {
            Placement::V2 { dir, .. } => vec![(&[], dir)],
            Placement::V1 { dirs, unified, .. } => dirs
                .iter()
                .map(|d| (d.controllers.as_slice(), &d.dir))
                .chain(unified.iter().map(|u| (&[][..], u)))
                .collect(),
        };
        let Some(sub) = sub else {
            return Ok(dirs.into_iter().map(|(_, d)| d.clone()).collect());
        };
        let known: Vec<&[String]> = dirs
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| !c.is_empty())
            .collect();
        sub.check_controllers(&known)?;
        dirs.into_iter()
            .map(|(controllers, dir)| sub.dir_in(controllers, dir))
            .collect()
    }

    /// The directory of a v1 controller, or the v2 directory.
    pub fn dir_of(&self, controller: &str) -> Option<&PathBuf> {
        match self {
            Placement::V2 { dir, .. } => Some(dir),
            Placement::V1 { dirs, .. } => dirs
                .iter()
                .find(|d| d.controllers.iter().any(|c| c == controller))
                .map(|d| &d.dir),
        }
    }
}

/// Whether the cgroup is frozen (for a container's `paused` status).
pub fn is_frozen(placement: &Placement) -> bool {
    match placement {
        Placement::V2 { dir, .. } => {
            fsutil::read(dir, "cgroup.freeze").is_ok_and(|s| s.trim() == "1")
        }
        Placement::V1 { .. } => placement.dir_of("freezer").is_some_and(|dir| {
            fsutil::read(dir, "freezer.state").is_ok_and(|s| s.trim() != "THAWED")
        }),
    }
}

/// Creates the cgroup directories for `path` on `host` (but writes no limits).
pub fn create(host: &Host, path: &CgroupsPath) -> Result<Box<dyn Manager>> {
    match host {
        Host::Unified { mount_point } => Ok(Box::new(v2::Cgroup::create(mount_point, path)?)),
        Host::Legacy {
            hierarchies,
            unified,
        } => Ok(Box::new(v1::Cgroup::create(
            hierarchies,
            unified.as_deref(),
            path,
        )?)),
    }
}

/// Where [`create`] puts the cgroup for `path` on `host` (its directories,
/// none of them made): a caller records it before creating, so that a
/// create killed midway leaves a cgroup that can still be found and
/// removed. No parent directories are listed as created.
pub fn planned(host: &Host, path: &CgroupsPath) -> Result<Placement> {
    let own = match path {
        CgroupsPath::Relative(_) => Some(OwnCgroups::read()?),
        _ => None,
    };
    Ok(match host {
        Host::Unified { mount_point } => Placement::V2 {
            dir: mount_point
                .join(path.below_mount(Path::new("/"), own.as_ref().and_then(|o| o.unified()))),
            created: Vec::new(),
            systemd: None,
        },
        Host::Legacy {
            hierarchies,
            unified,
        } => Placement::V1 {
            dirs: hierarchies
                .iter()
                .map(|h| V1Dir {
                    controllers: h.controllers.clone(),
                    dir: h.mount_point.join(
                        path.below_mount(&h.root, own.as_ref().and_then(|o| o.v1(&h.controllers))),
                    ),
                })
                .collect(),
            unified: unified.as_ref().map(|mount_point| {
                mount_point
                    .join(path.below_mount(Path::new("/"), own.as_ref().and_then(|o| o.unified())))
            }),
            created: Vec::new(),
            systemd: None,
        },
    })
}

/// Prepares the systemd driver's cgroup: a transient unit that starts when
/// the init joins it (`join`).
pub fn create_systemd(host: &Host, opts: &systemd::Options) -> Result<Box<dyn Manager>> {
    match host {
        Host::Unified { mount_point } => Ok(Box::new(systemd::Cgroup::create(mount_point, opts)?)),
        Host::Legacy {
            hierarchies,
            unified,
        } => Ok(Box::new(systemd::Cgroup::create_v1(
            hierarchies,
            unified.as_deref(),
            opts,
        )?)),
    }
}

/// Opens the cgroup an earlier `create` or `create_systemd` made.
pub fn open(placement: Placement) -> Box<dyn Manager> {
    match placement {
        Placement::V2 {
            systemd: Some(ref unit),
            ..
        }
        | Placement::V1 {
            systemd: Some(ref unit),
            ..
        } => {
            let unit = unit.clone();
            Box::new(systemd::Cgroup::open(placement, unit))
        }
        Placement::V2 { .. } => Box::new(v2::Cgroup::open(placement)),
        Placement::V1 { .. } => Box::new(v1::Cgroup::open(placement)),
    }
}
