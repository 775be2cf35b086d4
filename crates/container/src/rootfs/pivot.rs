//! Making the rootfs the container's root.

use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::{Context, Result};

/// How the rootfs becomes `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// pivot_root(2), then the old root is detached.
    Pivot,
    /// `--no-pivot`: the rootfs is moved over `/` and chrooted into (for
    /// hosts whose root is on a ramfs, where pivot_root cannot work).
    MoveAndChroot,
    /// No mount namespace of its own: chroot only.
    Chroot,
}

pub fn enter(rootfs: &Path, how: Entry) -> Result<()> {
    let dir = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open the rootfs {}", rootfs.display()))?;
    rustix::process::fchdir(&dir).ctx(|| "chdir to the rootfs")?;
    match how {
        Entry::Pivot => {
            rustix::process::pivot_root(".", ".").ctx(|| "pivot_root")?;
            // The old root now sits on top of the new one. Make it a slave so
            // that detaching it cannot propagate to the host, then drop it.
            rustix::mount::mount_change(
                ".",
                MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
            )
            .ctx(|| "make the old root a slave")?;
            rustix::mount::unmount(".", UnmountFlags::DETACH).ctx(|| "detach the old root")?;
        }
        Entry::MoveAndChroot => {
            hide_host_kernel_filesystems(rootfs)?;
            rustix::mount::mount_move(".", "/").ctx(|| "move the rootfs onto /")?;
            rustix::process::chroot(".").ctx(|| "chroot")?;
        }
        Entry::Chroot => {
            rustix::process::chroot(".").ctx(|| "chroot")?;
        }
    }
    rustix::process::chdir("/").ctx(|| "chdir to /")
}

/// With --no-pivot the host's mounts stay in the container's mount
/// namespace, under the rootfs: a fully visible procfs or sysfs among them
/// would let the container mount a fresh one (the kernel allows that only
/// where one is fully visible). Detach the host's proc and sysfs mounts
/// outside the rootfs, as runc does, or cover them where that is refused.
fn hide_host_kernel_filesystems(rootfs: &Path) -> Result<()> {
    let rootfs = std::fs::canonicalize(rootfs).ctx(|| format!("resolve {}", rootfs.display()))?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read mountinfo")?;
    let mut found: Vec<_> = berth_cgroups::mountinfo::parse(&text)
        .into_iter()
        .filter(|m| matches!(m.fs_type.as_str(), "proc" | "sysfs"))
        .map(|m| m.mount_point)
        .filter(|p| !p.starts_with(&rootfs))
        .collect();
    // Deepest first, so that each is still reachable when its turn comes.
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in found {
        match rustix::mount::unmount(&point, UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::PERM) => {
                rustix::mount::mount("tmpfs", &point, "tmpfs", MountFlags::RDONLY, None)
                    .ctx(|| format!("cover the host's {}", point.display()))?;
            }
            Err(e) => return Err(e).ctx(|| format!("detach the host's {}", point.display())),
        }
    }
    Ok(())
}
