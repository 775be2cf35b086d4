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

/// A detached copy of the host path `source` (open_tree, with its
/// submounts when `recursive`) with the id mapping of `userns`
/// (mount_setattr, MOUNT_ATTR_IDMAP; on the submounts too when
/// `idmap_recursive`, as runc's ridmap): an idmapped mount, made by berth
/// as host root (the init, in a user namespace, may not idmap a host
/// filesystem) and attached by the init ([`attach`]).
pub fn idmapped_tree(
    source: &std::path::Path,
    recursive: bool,
    idmap_recursive: bool,
    userns: BorrowedFd,
) -> Result<OwnedFd> {
    let tree = clone_tree(source, recursive)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr_with(tree.as_fd(), idmap_recursive, &attr)
        .ctx(|| "idmap the mount (mount_setattr)")?;
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

/// A detached copy (open_tree) of the mount at the place `fd` names, with
/// its submounts when `recursive`: berth sets its attributes and attaches
/// it ([`attach`]), so no path is looked up again between making a mount
/// and giving it its flags.
pub fn clone_of(fd: BorrowedFd, recursive: bool) -> Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rustix::mount::open_tree(fd, "", flags).ctx(|| "open_tree")
}

/// Superblock flags (MS_*) and the fsconfig(2) flag names that set them on
/// a new filesystem, as mount(2) would. MS_SILENT (quieter kernel messages)
/// and MS_I_VERSION (managed by the filesystem itself) have no name there.
const SUPERBLOCK_FLAGS: &[(u64, &str)] = &[
    (libc::MS_RDONLY, "ro"),
    (libc::MS_SYNCHRONOUS, "sync"),
    (libc::MS_DIRSYNC, "dirsync"),
    (libc::MS_MANDLOCK, "mand"),
    (libc::MS_LAZYTIME, "lazytime"),
];

/// A new filesystem of `fstype`, detached (fsopen, fsconfig, fsmount), with
/// the superblock flags among `flags` and the filesystem options `data`
/// (`key=value` or a bare flag, as mount(2) splits them). Its per-mount
/// attributes are the caller's to set before it is attached.
pub fn new_filesystem(fstype: &str, source: &str, data: &[String], flags: u64) -> Result<OwnedFd> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    // "fuse.sshfs": the type and its subtype, as mount(2) reads them.
    let (name, subtype) = match fstype.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (fstype, None),
    };
    let fs = rustix::mount::fsopen(name, FsOpenFlags::FSOPEN_CLOEXEC)
        .ctx(|| format!("mount {fstype} {source:?}: fsopen"))?;
    let configure = || -> std::result::Result<(), (String, rustix::io::Errno)> {
        let set_string = |key: &str, value: &str| {
            rustix::mount::fsconfig_set_string(&fs, key, value).map_err(|e| (key.to_string(), e))
        };
        let set_flag = |key: &str| {
            rustix::mount::fsconfig_set_flag(&fs, key).map_err(|e| (key.to_string(), e))
        };
        set_string("source", source)?;
        if let Some(sub) = subtype {
            set_string("subtype", sub)?;
        }
        for option in data {
            match option.split_once('=') {
                Some((key, value)) => set_string(key, value)?,
                None => set_flag(option)?,
            }
        }
        for (flag, name) in SUPERBLOCK_FLAGS {
            if flags & flag != 0 {
                set_flag(name)?;
            }
        }
        rustix::mount::fsconfig_create(&fs).map_err(|e| ("create".to_string(), e))
    };
    if let Err((step, errno)) = configure() {
        let said = kernel_log(fs.as_fd());
        let step = if step == "create" {
            "create the filesystem".to_string()
        } else {
            format!("option {step:?}")
        };
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(" ({said})")
        };
        return Err(Error::os(
            format!("mount {fstype} {source:?}: {step}{said}"),
            errno.raw_os_error(),
        ));
    }
    rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .ctx(|| format!("mount {fstype} {source:?}: fsmount"))
}

/// What the filesystem said about a failed fsconfig: the messages read
/// from its fsopen descriptor, joined.
fn kernel_log(fs: BorrowedFd) -> String {
    let mut said = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n @ 1..) = rustix::io::read(fs, &mut buf) {
        said.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
    }
    said.join("; ")
}

/// Attaches a detached mount (from open_tree or fsmount) onto `target`.
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

/// Sets a propagation mode by path (MS_SHARED etc., maybe with MS_REC).
pub fn set_propagation(target: &str, flags: u64) -> Result<()> {
    rustix::mount::mount_change(target, MountPropagationFlags::from_bits_retain(flags as _))
        .ctx(|| format!("set propagation {flags:#x}"))
}

/// Sets a propagation mode (MS_SHARED etc., MS_REC for the whole tree) on
/// the mount `mount` is: the mount berth made, not what a path names now.
pub fn set_propagation_of(mount: BorrowedFd, flags: u64) -> Result<()> {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: flags & !libc::MS_REC,
        userns_fd: 0,
    };
    mount_setattr_with(mount, flags & libc::MS_REC != 0, &attr)
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

/// mount_setattr(2) on the mount `target` is (and with `recursive` every
/// mount below it): sets `set` and clears `clear`.
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
    mount_setattr_with(target, recursive, &attr)
}

/// mount_setattr(2) with a whole mount_attr (id map, propagation); rustix
/// has no wrapper.
fn mount_setattr_with(
    target: BorrowedFd,
    recursive: bool,
    attr: &MountAttr,
) -> std::io::Result<()> {
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: attr is a valid mount_attr of the size passed; the path is a
    // NUL-terminated empty string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets and clears MOUNT_ATTR_* attributes of the mount `target` is (of
/// its submounts too when `recursive`); nothing to do when both are 0.
pub fn set_attributes(target: BorrowedFd, set: u64, clear: u64, recursive: bool) -> Result<()> {
    if set == 0 && clear == 0 {
        return Ok(());
    }
    mount_setattr(target, set, clear, recursive)
        .ctx(|| format!("mount_setattr (set {set:#x}, clear {clear:#x})"))
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
