//! Cgroup management for berth.
//!
//! One interface, [`Manager`], with a v1 backend (also used on hybrid hosts,
//! where the v1 controllers sit beside a cgroup2 hierarchy) and a v2 backend;
//! [`create`] picks one from the [`Host`] layout found at run time. A created
//! cgroup is described by a serialisable [`Placement`], which the runtime keeps
//! in the container's state so that later commands ([`open`]) reach the same
//! directories whatever cgroup the caller itself is in.

mod convert;
mod devices_bpf;
mod error;
mod fsutil;
mod host;
pub mod mountinfo;
mod path;
pub mod stats;
mod v1;
mod v2;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use host::{Hierarchy, Host, OwnCgroups, CGROUP_MOUNT};
pub use path::CgroupsPath;

/// What every backend offers the runtime.
pub trait Manager {
    /// Where this cgroup lives, for the container's state.
    fn placement(&self) -> &Placement;
    /// Writes every limit of `resources` to the cgroup's files.
    fn apply(&self, resources: &LinuxResources) -> Result<()>;
    /// Moves a process (and on v1 every hierarchy of it) into the cgroup.
    fn add_process(&self, pid: i32) -> Result<()>;
    /// The pids of the processes in the cgroup.
    fn procs(&self) -> Result<Vec<i32>>;
    /// Removes the cgroup, and the parents that creating it made.
    fn destroy(&self) -> Result<()>;
    /// A directory fd for clone3's CLONE_INTO_CGROUP (cgroup v2 only).
    fn clone_into_fd(&self) -> Option<OwnedFd>;
    /// Stops every process of the cgroup (v1 freezer, v2 cgroup.freeze) and
    /// waits until they are stopped.
    fn freeze(&self) -> Result<()>;
    /// Lets the processes of a frozen cgroup run again.
    fn thaw(&self) -> Result<()>;
    /// Resource usage, for `events`.
    fn stats(&self) -> Result<stats::Stats>;
    /// How many processes the OOM killer has killed in the cgroup so far.
    fn oom_kills(&self) -> u64;
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
    },
    V2 {
        dir: PathBuf,
        created: Vec<PathBuf>,
    },
}

/// The container's directory in one v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Dir {
    pub controllers: Vec<String>,
    pub dir: PathBuf,
}

impl Placement {
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

/// Opens the cgroup an earlier `create` made.
pub fn open(placement: Placement) -> Box<dyn Manager> {
    match placement {
        Placement::V2 { .. } => Box::new(v2::Cgroup::open(placement)),
        Placement::V1 { .. } => Box::new(v1::Cgroup::open(placement)),
    }
}
