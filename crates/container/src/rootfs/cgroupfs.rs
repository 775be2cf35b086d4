//! Mounts of type `cgroup`: the container's view of its cgroups. On cgroup
//! v2 this is the cgroup2 filesystem (scoped by the cgroup namespace) or a
//! bind of the container's cgroup; on v1 a tmpfs holding one mount per
//! hierarchy, as runc builds it. Every mount is made detached, given its
//! flags and attached; the hierarchies' mount points are made in the tmpfs
//! through its descriptor, never found again by path.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use berth_cgroups::Placement;
use rustix::fs::{Mode, OFlags};

use super::options::{MountOptions, MOUNT_ATTR_RDONLY};
use super::target::{self, MountContext};
use crate::sys;
use crate::{Context, Result};

/// Mounts the container's cgroups at `dest`; returns the mount made there.
pub fn mount(ctx: &MountContext, dest: &Path, opts: &MountOptions) -> Result<OwnedFd> {
    let point = target::mount_point_dir(ctx.root, dest)?;
    // The flags of one mount, without the recursive ones and propagation,
    // which apply once to the whole tree.
    let top = MountOptions {
        flags: opts.flags,
        cleared: opts.cleared,
        ..MountOptions::default()
    };
    let made = match ctx.cfg.cgroup {
        Some(Placement::V2 { dir, .. }) => one_v2(ctx, point.as_fd(), &top, dir)?,
        Some(Placement::V1 { dirs, unified, .. }) => {
            let tmpfs = sys::new_filesystem("tmpfs", "tmpfs", &["mode=755".into()], 0)?;
            let tmpfs_opts = MountOptions {
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                ..MountOptions::default()
            };
            target::attach(tmpfs.as_fd(), point.as_fd(), &tmpfs_opts)?;
            for d in dirs {
                let name = d.mount_name();
                let sub = subdir(tmpfs.as_fd(), &name)?;
                let tree = if ctx.cfg.has_cgroupns {
                    sys::new_filesystem("cgroup", "cgroup", &d.controllers, opts.flags)
                        .ctx(|| format!("cgroup {name}"))?
                } else {
                    sys::clone_tree(&d.dir, true)?
                };
                target::attach(tree.as_fd(), sub.as_fd(), &top)?;
                if d.controllers.len() > 1 {
                    for c in &d.controllers {
                        // A combined hierarchy ("cpu,cpuacct") is reachable
                        // under each controller's name too.
                        let _ = rustix::fs::symlinkat(name.as_str(), &tmpfs, c.as_str());
                    }
                }
            }
            if let Some(unified) = unified {
                let sub = subdir(tmpfs.as_fd(), "unified")?;
                one_v2(ctx, sub.as_fd(), &top, unified)?;
            }
            if opts.flags & libc::MS_RDONLY != 0 {
                sys::set_attributes(tmpfs.as_fd(), MOUNT_ATTR_RDONLY, 0, false)
                    .ctx(|| "make the cgroup tmpfs read-only")?;
            }
            tmpfs
        }
        // Without a cgroup of its own the container sees the host's.
        None => bind_dir(point.as_fd(), Path::new(berth_cgroups::CGROUP_MOUNT), &top)?,
    };
    target::finish(made.as_fd(), opts)?;
    Ok(made)
}

/// The directory `name` made in the (berth's own, fresh) tmpfs `dir`.
fn subdir(dir: BorrowedFd, name: &str) -> Result<OwnedFd> {
    let name = OsStr::new(name);
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755))
        .ctx(|| format!("create the mount point {name:?}"))?;
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open the mount point {name:?}"))
}

fn one_v2(
    ctx: &MountContext,
    point: BorrowedFd,
    opts: &MountOptions,
    dir: &Path,
) -> Result<OwnedFd> {
    if ctx.cfg.has_cgroupns {
        match sys::new_filesystem("cgroup2", "cgroup2", &[], opts.flags) {
            Ok(tree) => {
                target::attach(tree.as_fd(), point, opts)?;
                return Ok(tree);
            }
            // Not allowed here (a user namespace that does not own the
            // cgroup namespace): fall back to the bind below.
            Err(e) if matches!(e.errno(), Some(libc::EPERM) | Some(libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
    }
    bind_dir(point, dir, opts)
}

fn bind_dir(point: BorrowedFd, source: &Path, opts: &MountOptions) -> Result<OwnedFd> {
    let tree = sys::clone_tree(source, true)?;
    target::attach(tree.as_fd(), point, opts)?;
    Ok(tree)
}
