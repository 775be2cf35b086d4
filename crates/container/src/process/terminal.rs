//! process.terminal: the pty is made inside the container, from its own
//! devpts instance; the master goes to the engine over --console-socket and
//! the slave becomes the process's controlling terminal, stdio and
//! /dev/console.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use crate::rootfs::resolve::RootDir;
use crate::{Context, Error, Result};

/// Opens a pty in the container (which must be the root by now) and sends its
/// master over `console`; returns the slave.
pub fn create(
    console: BorrowedFd,
    size: Option<oci_spec::runtime::Box>,
    bind_dev_console: bool,
) -> Result<OwnedFd> {
    let master = open_multiplexer()?;
    rustix::pty::unlockpt(&master).ctx(|| "process.terminal: unlockpt")?;
    let name = rustix::pty::ptsname(&master, Vec::new()).ctx(|| "process.terminal: ptsname")?;
    let slave = open_peer(&master, &name)?;
    if let Some(size) = size {
        let winsize = rustix::termios::Winsize {
            ws_row: size.height() as u16,
            ws_col: size.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&master, winsize).ctx(|| "process.consoleSize")?;
    }
    if bind_dev_console {
        bind_console(&slave, &name)?;
    }
    crate::sys::send_fd(console, master.as_fd(), name.as_bytes())
        .ctx(|| "--console-socket: send the pty master")?;
    Ok(slave)
}

/// /dev/ptmx, which must be the kernel's pty multiplexer (character device
/// 5:2) and not a file or FIFO the image left in its place.
fn open_multiplexer() -> Result<OwnedFd> {
    let master = rustix::fs::open(
        "/dev/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "process.terminal: open /dev/ptmx")?;
    let st = rustix::fs::fstat(&master).ctx(|| "process.terminal: stat /dev/ptmx")?;
    let is_char =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice;
    if !is_char || st.st_rdev != rustix::fs::makedev(5, 2) {
        return Err(Error::Message(
            "process.terminal: /dev/ptmx is not the pty multiplexer (character device 5:2)".into(),
        ));
    }
    Ok(master)
}

/// The slave of `master`, opened through the master (TIOCGPTPEER), never by
/// its path, which the container's /dev/pts could make any file; it must be
/// on a devpts.
fn open_peer(master: &OwnedFd, name: &std::ffi::CStr) -> Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| format!("process.terminal: open the pty slave {name:?}"));
    }
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(fd) };
    let fs = rustix::fs::fstatfs(&slave).ctx(|| format!("process.terminal: statfs {name:?}"))?;
    if fs.f_type as i64 != DEVPTS_SUPER_MAGIC {
        return Err(Error::Message(format!(
            "process.terminal: the pty slave {name:?} is not on a devpts"
        )));
    }
    Ok(slave)
}

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

/// Binds the pty slave over /dev/console, as runc does. Whatever the image
/// left at /dev/console (a symlink could aim the bind anywhere,
/// CVE-2025-52565) is replaced by a plain file first, and the bind goes
/// through file descriptors, never through paths. A plain file already
/// there (made before a read-only /dev was remounted) is kept.
fn bind_console(slave: &OwnedFd, name: &std::ffi::CStr) -> Result<()> {
    let root = RootDir::open(Path::new("/")).ctx(|| "open /")?;
    let console = Path::new("dev/console");
    if let Ok(existing) = root.resolve_nofollow(console) {
        let st = rustix::fs::fstat(&existing).ctx(|| "stat /dev/console")?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            root.remove_file(console).ctx(|| "remove /dev/console")?;
        }
    }
    root.create_file(console, 0o600)
        .ctx(|| "create /dev/console")?;
    let target = root
        .resolve_nofollow(console)
        .ctx(|| "resolve /dev/console")?;
    // The new mount API works on descriptors alone: the container's /proc
    // may not be a procfs, so no /proc/self/fd path is used.
    let tree = rustix::mount::open_tree(
        slave,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .ctx(|| format!("open_tree {name:?}"))?;
    rustix::mount::move_mount(
        &tree,
        "",
        &target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .ctx(|| "bind the pty over /dev/console")
}

/// Makes `slave` the controlling terminal and the stdio of the process.
pub fn attach(slave: OwnedFd) -> Result<()> {
    rustix::process::ioctl_tiocsctty(&slave)
        .ctx(|| "process.terminal: make the pty the controlling terminal")?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which this process owns.
        let ret = unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&slave), target) };
        if ret < 0 {
            return Err(std::io::Error::last_os_error())
                .ctx(|| format!("process.terminal: dup2 onto fd {target}"));
        }
    }
    Ok(())
}
