//! Entering the planned namespaces: berth joins those given by path around
//! the clone (and a new time namespace, which only children enter); the
//! init joins an existing user namespace and unshares what the clone could
//! not create.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxNamespaceType};
use rustix::fs::{Mode, OFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use super::plan::NamespacePlan;
use super::timens;
use crate::sys::{clone3, namespace, Cloned};
use crate::{Context, Result};

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
                namespace::open(&j.path)
                    .ctx(|| format!("linux.namespaces[{}].path {:?}", j.index, j.path))
            })
            .collect::<Result<Vec<_>>>()?;
        for (j, target) in plan.join_in_parent.iter().zip(targets) {
            let name = namespace::proc_name(j.typ);
            let own = namespace::open(Path::new(&format!("/proc/self/ns/{name}")))
                .ctx(|| format!("open /proc/self/ns/{name}"))?;
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
            let result = rustix::thread::move_into_link_name_space(
                target.as_fd(),
                Some(namespace::link_type(j.typ)),
            )
            .ctx(|| format!("linux.namespaces[{}].path {:?}: setns", j.index, j.path));
            saved.own.push((own, namespace::link_type(j.typ)));
            if let Err(e) = result {
                saved.leave()?;
                return Err(e);
            }
        }
        if plan.new_time {
            let own = namespace::open(Path::new("/proc/self/ns/time"))
                .ctx(|| "open /proc/self/ns/time")?;
            saved.own.push((own, LinkNameSpaceType::Time));
            let result = timens::unshare(linux);
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

/// The init's part: join an existing user namespace, unshare what the
/// clone could not create, and fork into a new pid namespace if needed.
/// Returns the pid of the new init in the parent side of such a fork.
pub fn enter_in_init(plan: &NamespacePlan) -> Result<Option<i32>> {
    if let Some(j) = &plan.join_user {
        let fd = namespace::open(&j.path)
            .ctx(|| format!("linux.namespaces[{}].path {:?}", j.index, j.path))?;
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
        match unsafe { clone3(0, None)? } {
            Cloned::InChild => return Ok(None),
            // The intermediate process leaves at once: berth (its
            // subreaper) adopts the new init.
            Cloned::InParent(child) => return Ok(Some(child.release().0)),
        }
    }
    Ok(None)
}
