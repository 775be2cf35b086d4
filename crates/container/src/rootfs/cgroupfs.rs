//! Mounts of type `cgroup`: the container's view of its cgroups. On cgroup
//! v2 this is the cgroup2 filesystem (scoped by the cgroup namespace) or a
//! bind of the container's cgroup; on v1 a tmpfs holding one mount per
//! hierarchy, as runc builds it.

use std::os::fd::AsFd;
use std::path::Path;

use berth_cgroups::Placement;

use super::options::MountOptions;
use super::target::{self, MountContext};
use crate::sys;
use crate::{Context, Result};

pub fn mount(ctx: &MountContext, dest: &Path, opts: &MountOptions) -> Result<()> {
    match ctx.cfg.cgroup {
        Some(Placement::V2 { dir, .. }) => one_v2(ctx, dest, opts, dir)?,
        Some(Placement::V1 { dirs, unified, .. }) => {
            let point = target::mount_point_dir(ctx.root, dest)?;
            let tmpfs_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            sys::mount("tmpfs", point.as_fd(), "tmpfs", tmpfs_flags, "mode=755")?;
            for d in dirs {
                let name = d
                    .controllers
                    .iter()
                    .map(|c| c.strip_prefix("name=").unwrap_or(c))
                    .collect::<Vec<_>>()
                    .join(",");
                let sub = dest.join(&name);
                let point = target::mount_point_dir(ctx.root, &sub)?;
                if ctx.cfg.has_cgroupns {
                    let data = d.controllers.join(",");
                    sys::mount("cgroup", point.as_fd(), "cgroup", opts.flags, &data)
                        .ctx(|| format!("cgroup {name}"))?;
                } else {
                    bind_dir(ctx, &sub, &d.dir, opts.flags)?;
                }
                if d.controllers.len() > 1 {
                    for c in &d.controllers {
                        let link = dest.join(c);
                        // A combined hierarchy ("cpu,cpuacct") is reachable
                        // under each controller's name too.
                        let _ = ctx.root.symlink(&link, &name);
                    }
                }
            }
            if let Some(unified) = unified {
                one_v2(ctx, &dest.join("unified"), opts, unified)?;
            }
            if opts.flags & libc::MS_RDONLY != 0 {
                let tmpfs = target::mounted(ctx.root, dest)?;
                let flags = tmpfs_flags | libc::MS_RDONLY | libc::MS_REMOUNT;
                rustix::mount::mount_remount(
                    sys::fd_path(&tmpfs),
                    rustix::mount::MountFlags::from_bits_retain(flags as _),
                    "mode=755",
                )
                .ctx(|| "remount the cgroup tmpfs read-only")?;
            }
        }
        // Without a cgroup of its own the container sees the host's.
        None => bind_dir(
            ctx,
            dest,
            Path::new(berth_cgroups::CGROUP_MOUNT),
            opts.flags,
        )?,
    }
    target::finish(ctx.root, dest, opts)
}

fn one_v2(ctx: &MountContext, dest: &Path, opts: &MountOptions, dir: &Path) -> Result<()> {
    let point = target::mount_point_dir(ctx.root, dest)?;
    if ctx.cfg.has_cgroupns {
        match sys::mount("cgroup2", point.as_fd(), "cgroup2", opts.flags, "") {
            Ok(()) => return Ok(()),
            // Not allowed here (a user namespace that does not own the
            // cgroup namespace): fall back to the bind below.
            Err(e) if matches!(e.errno(), Some(libc::EPERM) | Some(libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
    }
    bind_dir(ctx, dest, dir, opts.flags)
}

fn bind_dir(ctx: &MountContext, dest: &Path, source: &Path, flags: u64) -> Result<()> {
    let point = target::mount_point_dir(ctx.root, dest)?;
    let source_fd = sys::open_path(source)?;
    sys::bind(source_fd.as_fd(), point.as_fd(), true)?;
    let flags = flags & !(libc::MS_BIND | libc::MS_REC);
    if flags != 0 {
        let new = target::mounted(ctx.root, dest)?;
        sys::remount_bind(new.as_fd(), flags)?;
    }
    Ok(())
}
