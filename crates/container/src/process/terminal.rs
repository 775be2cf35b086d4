//! process.terminal: the pty is made inside the container, from its own
//! devpts instance; the master goes to the engine over --console-socket and
//! the slave becomes the process's controlling terminal, stdio and
//! /dev/console.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};
use rustix::pty::OpenptFlags;

use crate::rootfs::resolve::RootDir;
use crate::{Context, Result};

/// Opens a pty in the container (which must be the root by now) and sends its
/// master over `console`; returns the slave.
pub fn create(
    console: BorrowedFd,
    size: Option<oci_spec::runtime::Box>,
    bind_dev_console: bool,
) -> Result<OwnedFd> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .ctx(|| "process.terminal: open /dev/ptmx")?;
    rustix::pty::unlockpt(&master).ctx(|| "process.terminal: unlockpt")?;
    let name = rustix::pty::ptsname(&master, Vec::new()).ctx(|| "process.terminal: ptsname")?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("process.terminal: open {name:?}"))?;
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
        bind_console(&name)?;
    }
    crate::sys::send_fd(console, master.as_fd(), name.as_bytes())
        .ctx(|| "--console-socket: send the pty master")?;
    Ok(slave)
}

/// Binds the pty slave over /dev/console, as runc does. Whatever the image
/// left at /dev/console (a symlink could aim the bind anywhere,
/// CVE-2025-52565) is replaced by a plain file first, and the bind goes
/// through file descriptors, never through paths.
fn bind_console(slave: &std::ffi::CStr) -> Result<()> {
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
        rustix::fs::CWD,
        slave,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .ctx(|| format!("open_tree {slave:?}"))?;
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
