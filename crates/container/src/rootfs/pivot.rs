//! Making the rootfs the container's root.

use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountPropagationFlags, UnmountFlags};

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
            rustix::mount::mount_move(".", "/").ctx(|| "move the rootfs onto /")?;
            rustix::process::chroot(".").ctx(|| "chroot")?;
        }
        Entry::Chroot => {
            rustix::process::chroot(".").ctx(|| "chroot")?;
        }
    }
    rustix::process::chdir("/").ctx(|| "chdir to /")
}
