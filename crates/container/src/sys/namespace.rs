//! Namespaces: the spec's types as the kernel names them, and joining them.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxNamespaceType;
use rustix::fs::{Mode, OFlags};
use rustix::thread::LinkNameSpaceType;

use crate::{Context, Result};

/// The CLONE_NEW* flag of a namespace type.
pub fn clone_flag(typ: LinuxNamespaceType) -> u64 {
    (match typ {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }) as u64
}

/// The namespace type as rustix's setns takes it.
pub fn link_type(typ: LinuxNamespaceType) -> LinkNameSpaceType {
    match typ {
        LinuxNamespaceType::Mount => LinkNameSpaceType::Mount,
        LinuxNamespaceType::Cgroup => LinkNameSpaceType::ControlGroup,
        LinuxNamespaceType::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
        LinuxNamespaceType::Ipc => LinkNameSpaceType::InterProcessCommunication,
        LinuxNamespaceType::User => LinkNameSpaceType::User,
        LinuxNamespaceType::Pid => LinkNameSpaceType::ProcessID,
        LinuxNamespaceType::Network => LinkNameSpaceType::Network,
        LinuxNamespaceType::Time => LinkNameSpaceType::Time,
    }
}

/// The name of a namespace under /proc/<pid>/ns.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Opens a namespace file (/proc/<pid>/ns/<name>, or one bound elsewhere).
pub fn open(path: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
}

/// setns(2) through a process's pidfd: every namespace in `flags`
/// (CLONE_NEW* bits) of that process at once.
pub fn join_all_of(pidfd: BorrowedFd, flags: u32) -> Result<()> {
    if flags == 0 {
        return Ok(());
    }
    // SAFETY: setns with a valid pidfd and CLONE_NEW* flags.
    if unsafe { libc::setns(pidfd.as_raw_fd(), flags as i32) } < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| format!("join the container's namespaces ({flags:#x})"));
    }
    Ok(())
}

/// In a new user namespace, becomes its root (when root is mapped) so that
/// what the process creates is owned by the container's root.
pub fn become_root() -> Result<()> {
    let root_gid = rustix::process::Gid::ROOT;
    let root_uid = rustix::process::Uid::ROOT;
    match rustix::thread::set_thread_res_gid(root_gid, root_gid, root_gid) {
        Ok(()) | Err(rustix::io::Errno::INVAL) => {}
        Err(e) => return Err(e).ctx(|| "setresgid(0) in the user namespace"),
    }
    match rustix::thread::set_thread_res_uid(root_uid, root_uid, root_uid) {
        Ok(()) | Err(rustix::io::Errno::INVAL) => Ok(()),
        Err(e) => Err(e).ctx(|| "setresuid(0) in the user namespace"),
    }
}
