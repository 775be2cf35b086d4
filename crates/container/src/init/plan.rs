//! Which namespaces the container gets, and who makes them.
//!
//! New namespaces are created by clone3's flags in one step whenever
//! possible. Namespaces joined by path are joined by berth itself around the
//! clone (and left again right after), so that the init is born in them and
//! the new ones it creates are owned by the right user namespace. The one
//! exception is joining an existing user namespace: berth must keep its own
//! privileges, so the init joins it and then unshares the rest, forking once
//! more if that includes a pid namespace (which only a child can enter).

use std::path::PathBuf;

use oci_spec::runtime::{Linux, LinuxNamespaceType};

use crate::sys::namespace::clone_flag;
use crate::sys::userns::IdMapper;
use crate::{Context, Error, Result};

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
    /// Whether the container is in a user namespace (new or joined).
    pub in_userns: bool,
    /// Whether the container has a cgroup namespace of its own.
    pub has_cgroupns: bool,
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

    /// A spec error for namespace paths that do not open (checked before any
    /// resource is made).
    pub fn check_paths(&self) -> Result<()> {
        for j in self.join_in_parent.iter().chain(self.join_user.iter()) {
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
        assert!(plan.own_mount_ns && plan.has_cgroupns && !plan.fork_into_pid_ns);
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
