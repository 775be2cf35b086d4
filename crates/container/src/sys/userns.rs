//! User namespaces: writing a process's id maps (itself, or through the
//! setuid helpers newuidmap/newgidmap), and making a namespace with given
//! maps for an idmapped mount.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::LinuxIdMapping;

use super::{clone3, Cloned};
use crate::{Context, Error, Result};

/// Whether berth runs in a user namespace other than the initial one
/// (rootless podman's, for one), where even uid 0 may be refused cgroups
/// and /run.
pub fn running_in_one() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        let fields: Vec<&str> = map.split_whitespace().collect();
        fields != ["0", "0", "4294967295"]
    })
}

/// How a new user namespace's id maps get written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdMapper {
    /// berth is root: it writes any map itself.
    #[default]
    Root,
    /// An unprivileged berth mapping only its own uid and gid: it may
    /// write those itself once setgroups is denied, so the container can
    /// never drop a group to gain access.
    OwnIds,
    /// An unprivileged berth with several ranges: the setuid helpers
    /// newuidmap and newgidmap check them against /etc/subuid and
    /// /etc/subgid.
    Helpers,
}

impl IdMapper {
    pub fn choose(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> IdMapper {
        let euid = rustix::process::geteuid();
        if euid.is_root() {
            return IdMapper::Root;
        }
        let egid = rustix::process::getegid().as_raw();
        let own = |maps: &[LinuxIdMapping], id: u32| {
            maps.len() == 1 && maps[0].host_id() == id && maps[0].size() == 1
        };
        if own(uid, euid.as_raw()) && own(gid, egid) {
            IdMapper::OwnIds
        } else {
            IdMapper::Helpers
        }
    }

    /// Whether the container may call setgroups(2).
    pub fn setgroups_allowed(self) -> bool {
        self != IdMapper::OwnIds
    }

    /// Writes the uid_map and gid_map of process `pid`.
    pub fn write(self, pid: i32, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<()> {
        let lines = |maps: &[LinuxIdMapping]| -> String {
            maps.iter()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect()
        };
        match self {
            IdMapper::Root | IdMapper::OwnIds => {
                if self == IdMapper::OwnIds {
                    std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                        .ctx(|| "deny setgroups in the user namespace")?;
                }
                std::fs::write(format!("/proc/{pid}/uid_map"), lines(uid))
                    .ctx(|| "linux.uidMappings: write uid_map")?;
                std::fs::write(format!("/proc/{pid}/gid_map"), lines(gid))
                    .ctx(|| "linux.gidMappings: write gid_map")
            }
            IdMapper::Helpers => {
                helper("newuidmap", "linux.uidMappings", pid, uid)?;
                helper("newgidmap", "linux.gidMappings", pid, gid)
            }
        }
    }
}

/// Runs newuidmap or newgidmap (Debian's uidmap package).
fn helper(program: &str, field: &str, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = std::process::Command::new(program);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| {
        Error::spec(
            field,
            format!("berth is not root, so several id ranges need {program} (Debian's uidmap package): {e}"),
        )
    })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(Error::spec(field, format!("{program}: {}", why.trim())));
    }
    Ok(())
}

/// A user namespace with the given maps, for an idmapped mount: a child is
/// parked in a new user namespace just long enough for berth to write its
/// maps and open the namespace; dropping the child kills and reaps it.
pub fn with_maps(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    // SAFETY: berth is single-threaded; the child only pauses.
    let child = match unsafe { clone3(libc::CLONE_NEWUSER as u64, None)? } {
        Cloned::InChild => loop {
            // SAFETY: pause(2) waits for the SIGKILL of the drop below.
            unsafe { libc::pause() };
        },
        Cloned::InParent(child) => child,
    };
    IdMapper::choose(uid, gid)
        .write(child.pid(), uid, gid)
        .and_then(|()| {
            super::namespace::open(&PathBuf::from(format!("/proc/{}/ns/user", child.pid())))
                .ctx(|| "open the mount's user namespace")
        })
}
