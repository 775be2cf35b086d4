//! Which namespaces the container gets, and who makes them.
//!
//! New namespaces are created by clone3's flags in one step whenever
//! possible. Namespaces joined by path are joined by berth itself around the
//! clone (and left again right after), so that the init is born in them and
//! the new ones it creates are owned by the right user namespace. The one
//! exception is joining an existing user namespace: berth must keep its own
//! privileges, so the init joins it and then unshares the rest, forking once
//! more if that includes a pid namespace (which only a child can enter).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};
use rustix::fs::{Mode, OFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::{Context, Error, Result};

pub(crate) fn clone_flag(typ: LinuxNamespaceType) -> u64 {
    (match typ {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }) as u64
}

fn link_type(typ: LinuxNamespaceType) -> LinkNameSpaceType {
    match typ {
        LinuxNamespaceType::Mount => LinkNameSpaceType::Mount,
        LinuxNamespaceType::Cgroup => LinkNameSpaceType::ControlGroup,
        LinuxNamespaceType::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
        LinuxNamespaceType::Ipc => LinkNameSpaceType::InterProcessCommunication,
        LinuxNamespaceType::User => LinkNameSpaceType::User,
        LinuxNamespaceType::Pid => LinkNameSpaceType::ProcessID,
        LinuxNamespaceType::Network => LinkNameSpaceType::Network,
        LinuxNamespaceType::Time => LinkNameSpaceType::Time,
    }
}

/// The name of a namespace under /proc/<pid>/ns.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// A namespace to join: its type, its path and its index in the spec.
#[derive(Debug, Clone)]
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
    pub index: usize,
}

#[derive(Debug, Clone, Default)]
pub struct NamespacePlan {
    /// CLONE_NEW* flags for clone3.
    pub clone_flags: u64,
    /// CLONE_NEW* flags the init unshares itself.
    pub unshare_flags: u64,
    /// Joined by berth around the clone.
    pub join_in_parent: Vec<Join>,
    /// An existing user namespace the init joins.
    pub join_user: Option<Join>,
    /// berth writes the init's id maps.
    pub new_user: bool,
    /// berth unshares a time namespace (with the spec's offsets) for its
    /// children before the clone.
    pub new_time: bool,
    /// The init unshares a pid namespace and must fork to enter it.
    pub fork_into_pid_ns: bool,
    /// Whether the container has a mount namespace (new or joined) of its
    /// own, and so may change mount propagation.
    pub own_mount_ns: bool,
    pub in_userns: bool,
    pub has_cgroupns: bool,
    pub has_pidns: bool,
    /// Who writes the id maps of a new user namespace.
    pub id_mapper: IdMapper,
}

impl NamespacePlan {
    /// Plans the namespaces of `linux`. `clone_into_cgroup` says whether the
    /// clone places the init in its cgroup (v2); otherwise berth moves it
    /// there after the clone, and a new cgroup namespace must wait for that.
    pub fn new(linux: &Linux, clone_into_cgroup: bool) -> NamespacePlan {
        let mut plan = NamespacePlan::default();
        let mut new = 0u64;
        for (index, ns) in linux.namespaces().iter().flatten().enumerate() {
            let typ = ns.typ();
            match typ {
                LinuxNamespaceType::Mount => plan.own_mount_ns = true,
                LinuxNamespaceType::User => plan.in_userns = true,
                LinuxNamespaceType::Cgroup => plan.has_cgroupns = true,
                LinuxNamespaceType::Pid => plan.has_pidns = true,
                _ => {}
            }
            match ns.path() {
                Some(path) => {
                    let join = Join {
                        typ,
                        path: path.clone(),
                        index,
                    };
                    if typ == LinuxNamespaceType::User {
                        plan.join_user = Some(join);
                    } else {
                        plan.join_in_parent.push(join);
                    }
                }
                None => new |= clone_flag(typ),
            }
        }
        // Time namespaces are made by berth for its children: offsets can
        // only be written before any process is inside.
        if new & clone_flag(LinuxNamespaceType::Time) != 0 {
            plan.new_time = true;
            new &= !clone_flag(LinuxNamespaceType::Time);
        }
        plan.new_user = new & clone_flag(LinuxNamespaceType::User) != 0;
        if plan.new_user {
            plan.id_mapper = IdMapper::choose(
                linux.uid_mappings().as_deref().unwrap_or_default(),
                linux.gid_mappings().as_deref().unwrap_or_default(),
            );
        }
        if plan.join_user.is_some() {
            plan.unshare_flags = new;
            plan.fork_into_pid_ns = new & clone_flag(LinuxNamespaceType::Pid) != 0;
        } else {
            plan.clone_flags = new;
            let cgroupns = clone_flag(LinuxNamespaceType::Cgroup);
            if !clone_into_cgroup && new & cgroupns != 0 {
                plan.clone_flags &= !cgroupns;
                plan.unshare_flags |= cgroupns;
            }
        }
        // Joining a mount namespace changes what every later path means:
        // join it last.
        plan.join_in_parent
            .sort_by_key(|j| j.typ == LinuxNamespaceType::Mount);
        plan
    }
}

fn open_ns(path: &std::path::Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
}

/// berth's own namespaces, left for the clone's sake and rejoined after it.
pub struct ParentNamespaces {
    own: Vec<(OwnedFd, LinkNameSpaceType)>,
    cwd: Option<OwnedFd>,
}

impl ParentNamespaces {
    /// Joins the plan's namespaces and, for a new time namespace, unshares
    /// it with the spec's offsets, so that the next child is born in them.
    pub fn enter(plan: &NamespacePlan, linux: &Linux) -> Result<ParentNamespaces> {
        let mut saved = ParentNamespaces {
            own: Vec::new(),
            cwd: None,
        };
        if plan.join_in_parent.is_empty() && !plan.new_time {
            return Ok(saved);
        }
        let targets = plan
            .join_in_parent
            .iter()
            .map(|j| {
                open_ns(&j.path).ctx(|| format!("linux.namespaces[{}].path {:?}", j.index, j.path))
            })
            .collect::<Result<Vec<_>>>()?;
        for (j, target) in plan.join_in_parent.iter().zip(targets) {
            let own = open_ns(&PathBuf::from(format!(
                "/proc/self/ns/{}",
                proc_name(j.typ)
            )))
            .ctx(|| format!("open /proc/self/ns/{}", proc_name(j.typ)))?;
            if j.typ == LinuxNamespaceType::Mount {
                saved.cwd = Some(
                    rustix::fs::open(
                        ".",
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .ctx(|| "open the working directory")?,
                );
            }
            let result =
                rustix::thread::move_into_link_name_space(target.as_fd(), Some(link_type(j.typ)))
                    .ctx(|| format!("linux.namespaces[{}].path {:?}: setns", j.index, j.path));
            saved.own.push((own, link_type(j.typ)));
            if let Err(e) = result {
                saved.leave()?;
                return Err(e);
            }
        }
        if plan.new_time {
            let own = open_ns(std::path::Path::new("/proc/self/ns/time"))
                .ctx(|| "open /proc/self/ns/time")?;
            saved.own.push((own, LinkNameSpaceType::Time));
            let result = unshare_time(linux);
            if let Err(e) = result {
                saved.leave()?;
                return Err(e);
            }
        }
        Ok(saved)
    }

    /// Returns berth to its own namespaces.
    pub fn leave(self) -> Result<()> {
        for (fd, typ) in self.own.iter().rev() {
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(*typ))
                .ctx(|| format!("return to berth's own {typ:?} namespace"))?;
        }
        if let Some(cwd) = &self.cwd {
            rustix::process::fchdir(cwd).ctx(|| "return to the working directory")?;
        }
        Ok(())
    }
}

/// Unshares a time namespace for berth's children and writes the offsets.
fn unshare_time(linux: &Linux) -> Result<()> {
    // SAFETY: berth is single-threaded; a time namespace only affects its
    // future children.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWTIME) }
        .ctx(|| "unshare the time namespace")?;
    let offsets: HashMap<_, _> = linux.time_offsets().clone().unwrap_or_default();
    if offsets.is_empty() {
        return Ok(());
    }
    let text: String = offsets
        .iter()
        .map(|(clock, o)| {
            format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect();
    std::fs::write("/proc/self/timens_offsets", text)
        .ctx(|| "linux.timeOffsets: write /proc/self/timens_offsets")
}

/// The init's part: join an existing user namespace, unshare what the
/// clone could not create, and fork into a new pid namespace if needed.
/// Returns the pid of the new init in the parent side of such a fork.
pub fn enter_in_init(plan: &NamespacePlan) -> Result<Option<i32>> {
    if let Some(j) = &plan.join_user {
        let fd =
            open_ns(&j.path).ctx(|| format!("linux.namespaces[{}].path {:?}", j.index, j.path))?;
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::User))
            .ctx(|| format!("linux.namespaces[{}].path {:?}: setns", j.index, j.path))?;
    }
    if plan.unshare_flags != 0 {
        let flags = UnshareFlags::from_bits_retain(plan.unshare_flags as u32);
        // SAFETY: the init is single-threaded and does not rely on its fs
        // information being shared.
        unsafe { rustix::thread::unshare_unsafe(flags) }.ctx(|| "unshare")?;
    }
    if plan.fork_into_pid_ns {
        // SAFETY: the init is single-threaded.
        match unsafe { super::clone::clone3(0, None)? } {
            super::clone::Cloned::Child => return Ok(None),
            super::clone::Cloned::Parent { pid, .. } => return Ok(Some(pid)),
        }
    }
    Ok(None)
}

/// How the init's id maps get written.
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

    /// Writes the init's uid_map and gid_map.
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

/// A user namespace with the given maps, for an idmapped mount: a helper
/// process is parked in a new user namespace just long enough for berth to
/// write its maps and open the namespace.
pub fn userns_with_maps(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    // SAFETY: berth is single-threaded; the child only pauses.
    let cloned = unsafe { super::clone::clone3(libc::CLONE_NEWUSER as u64, None)? };
    let (pid, pidfd) = match cloned {
        super::clone::Cloned::Child => loop {
            // SAFETY: pause(2) waits for the SIGKILL below.
            unsafe { libc::pause() };
        },
        super::clone::Cloned::Parent { pid, pidfd } => (pid, pidfd),
    };
    let result = IdMapper::choose(uid, gid)
        .write(pid, uid, gid)
        .and_then(|()| {
            open_ns(&PathBuf::from(format!("/proc/{pid}/ns/user")))
                .ctx(|| "open the mount's user namespace")
        });
    let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
    let _ = rustix::process::waitpid(
        rustix::process::Pid::from_raw(pid),
        rustix::process::WaitOptions::empty(),
    );
    result
}

/// In a new user namespace, becomes its root (when root is mapped) so that
/// what the init creates is owned by the container's root.
pub fn become_root() -> Result<()> {
    let root_gid = rustix::process::Gid::ROOT;
    let root_uid = rustix::process::Uid::ROOT;
    match rustix::thread::set_thread_res_gid(root_gid, root_gid, root_gid) {
        Ok(()) | Err(rustix::io::Errno::INVAL) => {}
        Err(e) => return Err(e).ctx(|| "setresgid(0) in the user namespace"),
    }
    match rustix::thread::set_thread_res_uid(root_uid, root_uid, root_uid) {
        Ok(()) | Err(rustix::io::Errno::INVAL) => Ok(()),
        Err(e) => Err(e).ctx(|| "setresuid(0) in the user namespace"),
    }
}

/// A spec error for namespace paths that do not open (checked before any
/// resource is made).
pub fn check_paths(plan: &NamespacePlan) -> Result<()> {
    for j in plan.join_in_parent.iter().chain(plan.join_user.iter()) {
        let st = std::fs::metadata(&j.path)
            .ctx(|| format!("linux.namespaces[{}].path {:?}", j.index, j.path))?;
        if st.is_dir() {
            return Err(Error::spec(
                format!("linux.namespaces[{}].path", j.index),
                format!("{:?} is not a namespace file", j.path),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(json: &str) -> Linux {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn new_namespaces_are_made_by_the_clone() {
        let l = linux(
            r#"{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"network"},{"type":"cgroup"}]}"#,
        );
        let plan = NamespacePlan::new(&l, true);
        let want =
            (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWCGROUP)
                as u64;
        assert_eq!(plan.clone_flags, want);
        assert_eq!(plan.unshare_flags, 0);
        assert!(plan.own_mount_ns && plan.has_pidns && plan.has_cgroupns && !plan.fork_into_pid_ns);
    }

    #[test]
    fn a_cgroup_namespace_waits_for_the_cgroup_on_v1() {
        let l = linux(r#"{"namespaces":[{"type":"cgroup"},{"type":"uts"}]}"#);
        let plan = NamespacePlan::new(&l, false);
        assert_eq!(plan.clone_flags, libc::CLONE_NEWUTS as u64);
        assert_eq!(plan.unshare_flags, libc::CLONE_NEWCGROUP as u64);
    }

    #[test]
    fn joined_namespaces_are_joined_by_the_parent_mount_last() {
        let l = linux(
            r#"{"namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"},{"type":"network","path":"/proc/1/ns/net"},{"type":"pid"}]}"#,
        );
        let plan = NamespacePlan::new(&l, true);
        let order: Vec<_> = plan.join_in_parent.iter().map(|j| j.typ).collect();
        assert_eq!(
            order,
            [LinuxNamespaceType::Network, LinuxNamespaceType::Mount]
        );
        assert_eq!(plan.clone_flags, libc::CLONE_NEWPID as u64);
    }

    #[test]
    fn joining_a_user_namespace_moves_the_rest_into_the_init() {
        let l = linux(
            r#"{"namespaces":[{"type":"user","path":"/proc/1/ns/user"},{"type":"pid"},{"type":"mount"}]}"#,
        );
        let plan = NamespacePlan::new(&l, true);
        assert_eq!(plan.clone_flags, 0);
        assert_eq!(
            plan.unshare_flags,
            (libc::CLONE_NEWPID | libc::CLONE_NEWNS) as u64
        );
        assert!(plan.fork_into_pid_ns && plan.in_userns && !plan.new_user);
    }

    #[test]
    fn time_namespaces_are_made_by_the_parent() {
        let l = linux(r#"{"namespaces":[{"type":"time"},{"type":"user"}]}"#);
        let plan = NamespacePlan::new(&l, true);
        assert!(plan.new_time && plan.new_user);
        assert_eq!(plan.clone_flags, libc::CLONE_NEWUSER as u64);
    }
}
