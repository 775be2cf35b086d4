//! tmpcopyup (runc's extension, which podman uses for every tmpfs): the
//! new tmpfs starts with a copy of what the directory held. The tmpfs is
//! made detached (fsopen/fsconfig/fsmount), filled through descriptors
//! without following any symlink of the image, and moved into place: no
//! temporary directory anywhere.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys;
use crate::{Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// A tmpfs named `source` with the filesystem options `data` and the
/// superblock flags of `flags` (read-only aside: the copy needs to write),
/// detached, holding a copy of what `point` holds. The caller gives it its
/// per-mount flags and attaches it.
pub fn tmpfs_with_copy(
    point: BorrowedFd,
    source: &str,
    data: &[String],
    flags: u64,
) -> Result<OwnedFd> {
    let tmpfs = sys::new_filesystem("tmpfs", source, data, flags & !libc::MS_RDONLY)?;
    let source = rustix::fs::openat(
        point,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open the directory to copy")?;
    copy_tree(source.as_fd(), tmpfs.as_fd()).ctx(|| "tmpcopyup")?;
    Ok(tmpfs)
}

fn open_dir(parent: BorrowedFd, name: &std::ffi::CStr) -> Result<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {name:?}"))
}

/// Copies the entries of `from` into `to`, keeping modes and owners, making
/// symlinks as symlinks, never following one.
fn copy_tree(from: BorrowedFd, to: BorrowedFd) -> Result<()> {
    let dir = rustix::fs::Dir::read_from(from).ctx(|| "read a directory")?;
    for entry in dir {
        let entry = entry.ctx(|| "read a directory")?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let st = rustix::fs::statat(from, name, AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("stat {name:?}"))?;
        let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rustix::fs::mkdirat(to, name, mode).ctx(|| format!("mkdir {name:?}"))?;
                let (src, dst) = (open_dir(from, name)?, open_dir(to, name)?);
                copy_tree(src.as_fd(), dst.as_fd())?;
                // mkdirat applied the umask; the original mode is wanted.
                rustix::fs::fchmod(&dst, mode).ctx(|| format!("chmod {name:?}"))?;
            }
            FileType::RegularFile => {
                let src = rustix::fs::openat(
                    from,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ctx(|| format!("open {name:?}"))?;
                let dst = rustix::fs::openat(
                    to,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                    mode,
                )
                .ctx(|| format!("create {name:?}"))?;
                std::io::copy(
                    &mut std::fs::File::from(src),
                    &mut std::fs::File::from(dst.try_clone().ctx(|| "dup")?),
                )
                .ctx(|| format!("copy {name:?}"))?;
                rustix::fs::fchmod(&dst, mode).ctx(|| format!("chmod {name:?}"))?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(from, name, Vec::new())
                    .ctx(|| format!("readlink {name:?}"))?;
                rustix::fs::symlinkat(target.as_c_str(), to, name)
                    .ctx(|| format!("symlink {name:?}"))?;
            }
            other => {
                rustix::fs::mknodat(to, name, other, mode, st.st_rdev)
                    .ctx(|| format!("mknod {name:?}"))?;
            }
        }
        rustix::fs::chownat(
            to,
            name,
            Some(rustix::fs::Uid::from_raw(st.st_uid)),
            Some(rustix::fs::Gid::from_raw(st.st_gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown {name:?}"))?;
    }
    Ok(())
}
