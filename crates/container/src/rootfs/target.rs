//! Where a mount goes: mount points made inside the root (resolved by the
//! kernel, [`RootDir`]: no symlink can lead out of it), the mount found
//! again once it is in place, and the attributes applied to it then.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::options::MountOptions;
use super::resolve::RootDir;
use super::RootfsConfig;
use crate::{sys, Context, Result};

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

/// Re-resolves `dest` after something was mounted on it: the handle of the
/// mount point itself still refers to what lies underneath.
pub fn mounted(root: &RootDir, dest: &Path) -> Result<OwnedFd> {
    root.resolve(dest).ctx(|| "resolve the new mount")
}

/// Propagation and recursive attributes, which apply to a mount once it is
/// in place.
pub fn finish(root: &RootDir, dest: &Path, opts: &MountOptions) -> Result<()> {
    if opts.propagation.is_empty() && opts.recursive_set == 0 && opts.recursive_clear == 0 {
        return Ok(());
    }
    let new = mounted(root, dest)?;
    for flags in &opts.propagation {
        sys::set_propagation(&sys::fd_path(&new), *flags)?;
    }
    if opts.recursive_set != 0 || opts.recursive_clear != 0 {
        sys::set_attributes_recursively(new.as_fd(), opts.recursive_set, opts.recursive_clear)?;
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
