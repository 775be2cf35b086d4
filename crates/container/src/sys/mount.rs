//! Thin wrappers for the mount system calls, always aimed at file
//! descriptors (through their /proc/self/fd magic links), never at path
//! strings a symlink could redirect.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags};

use crate::{Context, Error, Result};

/// The magic-link path of an fd, to hand to mount(2).
pub fn fd_path(fd: impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

/// mount(2) onto `target`.
pub fn mount(source: &str, target: BorrowedFd, fstype: &str, flags: u64, data: &str) -> Result<()> {
    let data = std::ffi::CString::new(data)
        .map_err(|_| Error::Message("mount data holds a NUL byte".into()))?;
    rustix::mount::mount(
        source,
        fd_path(target),
        fstype,
        MountFlags::from_bits_retain(flags as _),
        Some(data.as_c_str()),
    )
    .ctx(|| {
        if fstype.is_empty() {
            format!("mount {source:?}")
        } else {
            format!("mount {fstype} {source:?}")
        }
    })
}

/// A bind mount of `source` (an fd of the host) onto `target`.
pub fn bind(source: BorrowedFd, target: BorrowedFd, recursive: bool) -> Result<()> {
    let flags = libc::MS_BIND | if recursive { libc::MS_REC } else { 0 };
    rustix::mount::mount(
        fd_path(source),
        fd_path(target),
        "",
        MountFlags::from_bits_retain(flags as _),
        None,
    )
    .ctx(|| "bind mount")
}

/// A detached copy of the host path `source` (open_tree) with the id
/// mapping of `userns` (mount_setattr, MOUNT_ATTR_IDMAP): an idmapped
/// mount, made by berth as host root (the init, in a user namespace, may
/// not idmap a host filesystem) and attached by the init ([`attach`]).
pub fn idmapped_tree(
    source: &std::path::Path,
    recursive: bool,
    userns: BorrowedFd,
) -> Result<OwnedFd> {
    let tree = clone_tree(source, recursive)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let at = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: attr is a valid mount_attr of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "idmap the mount (mount_setattr)");
    }
    Ok(tree)
}

/// A detached copy of the host path `source` (open_tree), with its
/// submounts when `recursive`, to attach later ([`attach`]).
pub fn clone_tree(source: &std::path::Path, recursive: bool) -> Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rustix::mount::open_tree(rustix::fs::CWD, source, flags)
        .ctx(|| format!("open_tree {}", source.display()))
}

/// Attaches a detached mount (from open_tree) onto `target`.
pub fn attach(tree: BorrowedFd, target: BorrowedFd) -> Result<()> {
    use rustix::mount::MoveMountFlags;
    rustix::mount::move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .ctx(|| "move the mount into place")
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Changes the per-mount flags of the mount at `target` (MS_REMOUNT, with
/// MS_BIND so that only this mount, not its filesystem, changes).
pub fn remount_bind(target: BorrowedFd, flags: u64) -> Result<()> {
    let flags = flags | libc::MS_BIND;
    rustix::mount::mount_remount(
        fd_path(target),
        MountFlags::from_bits_retain(flags as _),
        "",
    )
    .ctx(|| "remount")
}

/// Sets a propagation mode (MS_SHARED etc., maybe with MS_REC).
pub fn set_propagation(target: &str, flags: u64) -> Result<()> {
    rustix::mount::mount_change(target, MountPropagationFlags::from_bits_retain(flags as _))
        .ctx(|| format!("set propagation {flags:#x}"))
}

/// The kernel's struct mount_attr (include/uapi/linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on the whole tree under `target`.
pub fn set_attributes_recursively(target: BorrowedFd, set: u64, clear: u64) -> Result<()> {
    mount_setattr(target, set, clear, true).ctx(|| "mount_setattr")
}

/// mount_setattr(2) on the mount `target` is (and with `recursive` every
/// mount below it); rustix has no wrapper.
pub fn mount_setattr(
    target: BorrowedFd,
    set: u64,
    clear: u64,
    recursive: bool,
) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: attr is a valid mount_attr of the size passed; the path is a
    // NUL-terminated empty string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The per-mount flags (MS_*) of the mount `fd` is on, from statvfs.
pub fn mount_flags(fd: BorrowedFd) -> Result<u64> {
    let st = rustix::fs::fstatvfs(fd).ctx(|| "statvfs")?;
    let f = st.f_flag;
    let mut flags = 0;
    let pairs = [
        (rustix::fs::StatVfsMountFlags::RDONLY, libc::MS_RDONLY),
        (rustix::fs::StatVfsMountFlags::NOSUID, libc::MS_NOSUID),
        (rustix::fs::StatVfsMountFlags::NODEV, libc::MS_NODEV),
        (rustix::fs::StatVfsMountFlags::NOEXEC, libc::MS_NOEXEC),
        (rustix::fs::StatVfsMountFlags::NOATIME, libc::MS_NOATIME),
        (
            rustix::fs::StatVfsMountFlags::NODIRATIME,
            libc::MS_NODIRATIME,
        ),
        (rustix::fs::StatVfsMountFlags::RELATIME, libc::MS_RELATIME),
    ];
    for (st_flag, ms_flag) in pairs {
        if f.contains(st_flag) {
            flags |= ms_flag;
        }
    }
    Ok(flags)
}

/// Opens a host path as an O_PATH descriptor.
pub fn open_path(path: &std::path::Path) -> Result<std::os::fd::OwnedFd> {
    rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", path.display()))
}
