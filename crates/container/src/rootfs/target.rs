//! Where a mount goes: mount points made inside the root (resolved by the
//! kernel, [`RootDir`]: no symlink can lead out of it), and the mount,
//! made detached, given its attributes and attached there. Nothing is
//! looked up by path again once the mount point is open: a symlink swapped
//! in meanwhile (a shared volume) cannot move the flags onto another mount.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::options::{bind_attributes, mount_attributes, MountOptions};
use super::resolve::RootDir;
use super::RootfsConfig;
use crate::{sys, Context, Error, Result};

/// What mounting needs to know beyond the mount itself.
pub struct MountContext<'a> {
    pub cfg: &'a RootfsConfig<'a>,
    pub root: &'a RootDir,
    /// linux.mountLabel, when SELinux is enabled (without it the label
    /// means nothing and is dropped, as crun does).
    pub mount_label: Option<&'a str>,
}

/// The destination relative to the container's root ("/proc" → "proc").
pub fn in_root(destination: &Path) -> PathBuf {
    destination
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

/// Creates a directory mount point and returns its handle.
pub fn mount_point_dir(root: &RootDir, dest: &Path) -> Result<OwnedFd> {
    root.mkdir_all(dest, 0o755).ctx(|| "create the mount point")
}

/// Creates a file mount point (for binding a file) and returns its handle.
pub fn mount_point_file(root: &RootDir, dest: &Path) -> Result<OwnedFd> {
    root.create_file(dest, 0o644)
        .ctx(|| "create the mount point")
}

/// Gives the detached mount `tree` the per-mount flags of `opts` (its top
/// mount, as a bind remount would), attaches it onto `point`, then sets the
/// recursive flags and the propagation: every step on the mount's own
/// descriptor.
pub fn attach(tree: BorrowedFd, point: BorrowedFd, opts: &MountOptions) -> Result<()> {
    let (set, clear) = mount_attributes(opts.flags, opts.cleared);
    attach_with(tree, point, opts, set, clear)
}

/// [`attach`] for a bind of a mount: its per-mount flags as runc's bind
/// remount leaves them ([`bind_attributes`]). `locked`: the container is in
/// a user namespace, where the source's own flags count (only then are
/// they read).
pub fn attach_bind(
    tree: BorrowedFd,
    point: BorrowedFd,
    opts: &MountOptions,
    locked: bool,
) -> Result<()> {
    let names_flags = opts.flags | opts.cleared != 0;
    let source = (locked && names_flags)
        .then(|| sys::mount_flags(tree))
        .transpose()?;
    let (set, clear) = bind_attributes(opts, source).map_err(|option| {
        Error::Message(format!(
            "mount option {option:?}: operation not permitted: the source's flag is locked in a user namespace"
        ))
    })?;
    attach_with(tree, point, opts, set, clear)
}

/// Sets the per-mount attributes `set` and `clear` on `tree`, attaches it
/// onto `point`, then [`finish`]es it.
fn attach_with(
    tree: BorrowedFd,
    point: BorrowedFd,
    opts: &MountOptions,
    set: u64,
    clear: u64,
) -> Result<()> {
    sys::set_attributes(tree, set, clear, false).ctx(|| "mount flags")?;
    sys::attach(tree, point)?;
    finish(tree, opts)
}

/// The recursive attributes and the propagation of `opts`, set on the
/// mount `mount` is (attached, and holding its submounts).
pub fn finish(mount: BorrowedFd, opts: &MountOptions) -> Result<()> {
    sys::set_attributes(mount, opts.recursive_set, opts.recursive_clear, true)
        .ctx(|| "recursive mount flags")?;
    for flags in &opts.propagation {
        sys::set_propagation_of(mount, *flags)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_made_relative_to_the_root() {
        assert_eq!(in_root(Path::new("/proc/sys")), PathBuf::from("proc/sys"));
        assert_eq!(in_root(Path::new("data")), PathBuf::from("data"));
        assert_eq!(in_root(Path::new("/")), PathBuf::new());
    }
}
