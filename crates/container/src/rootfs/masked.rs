//! linux.maskedPaths and linux.readonlyPaths.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::options::MOUNT_ATTR_RDONLY;
use super::resolve::RootDir;
use super::target;
use crate::sys;
use crate::{Context, Error, Result};

/// The host's /dev/null, opened once and checked to be the real null device
/// (character device 1:3): a masked path is hidden by binding it, never by
/// trusting a node the image could have planted (CVE-2025-31133).
pub fn open_dev_null() -> Result<OwnedFd> {
    let fd = sys::open_path(Path::new("/dev/null"))?;
    let st = rustix::fs::fstat(&fd).ctx(|| "stat /dev/null")?;
    let is_char =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice;
    if !is_char || rustix::fs::major(st.st_rdev) != 1 || rustix::fs::minor(st.st_rdev) != 3 {
        return Err(Error::Message(
            "/dev/null on the host is not the null device (1:3)".into(),
        ));
    }
    Ok(fd)
}

fn resolve_existing(root: &RootDir, path: &Path) -> Result<Option<OwnedFd>> {
    match root.resolve(path) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e).ctx(|| "resolve"),
    }
}

/// Hides each path: a directory under an empty read-only tmpfs, anything
/// else under /dev/null. Paths that do not exist are skipped.
pub fn mask(root: &RootDir, paths: &[String], dev_null: BorrowedFd) -> Result<()> {
    for (i, p) in paths.iter().enumerate() {
        let rel = target::in_root(Path::new(p));
        let result = (|| {
            let Some(handle) = resolve_existing(root, &rel)? else {
                return Ok(());
            };
            let st = rustix::fs::fstat(&handle).ctx(|| "stat")?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
                sys::mount("tmpfs", handle.as_fd(), "tmpfs", libc::MS_RDONLY, "size=0")
            } else {
                sys::bind(dev_null, handle.as_fd(), false)
            }
        })();
        result.ctx(|| format!("linux.maskedPaths[{i}] {p:?}"))?;
    }
    Ok(())
}

/// Makes each path a read-only bind of itself, keeping its other flags: a
/// detached copy of what is there is made read-only and attached in its
/// place, through the descriptor resolved once.
pub fn make_readonly(root: &RootDir, paths: &[String]) -> Result<()> {
    for (i, p) in paths.iter().enumerate() {
        let rel = target::in_root(Path::new(p));
        let result = (|| {
            let Some(handle) = resolve_existing(root, &rel)? else {
                return Ok(());
            };
            let tree = sys::clone_of(handle.as_fd(), true)?;
            sys::set_attributes(tree.as_fd(), MOUNT_ATTR_RDONLY, 0, false)?;
            sys::attach(tree.as_fd(), handle.as_fd())
        })();
        result.ctx(|| format!("linux.readonlyPaths[{i}] {p:?}"))?;
    }
    Ok(())
}
