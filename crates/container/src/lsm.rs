//! Linux security modules: AppArmor profiles and SELinux labels.

use std::io::Write;

use crate::{Context, Result};

/// Whether AppArmor is enabled on this host.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim_start().starts_with('Y'))
        .unwrap_or(false)
}

/// Whether SELinux is enabled on this host (selinuxfs is mounted).
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Asks SELinux to run the next execve with `label`.
pub fn set_selinux_exec_label(procfs: &pathrs::procfs::ProcfsHandle, label: &str) -> Result<()> {
    let mut file = procfs
        .open(
            pathrs::procfs::ProcfsBase::ProcSelf,
            "attr/exec",
            pathrs::flags::OpenFlags::O_WRONLY,
        )
        .ctx(|| format!("process.selinuxLabel {label:?}: open /proc/self/attr/exec"))?;
    file.write_all(label.as_bytes())
        .ctx(|| format!("process.selinuxLabel {label:?}"))
}

/// The mount option that labels a filesystem with `label`.
pub fn mount_context(label: &str) -> String {
    format!("context=\"{label}\"")
}

/// Asks AppArmor to confine the next execve with `profile`.
pub fn set_apparmor_exec_profile(
    procfs: &pathrs::procfs::ProcfsHandle,
    profile: &str,
) -> Result<()> {
    let attr = "attr/apparmor/exec";
    let mut file = procfs
        .open(
            pathrs::procfs::ProcfsBase::ProcSelf,
            attr,
            pathrs::flags::OpenFlags::O_WRONLY,
        )
        .or_else(|_| {
            procfs.open(
                pathrs::procfs::ProcfsBase::ProcSelf,
                "attr/exec",
                pathrs::flags::OpenFlags::O_WRONLY,
            )
        })
        .ctx(|| format!("process.apparmorProfile {profile:?}: open /proc/self/{attr}"))?;
    file.write_all(format!("exec {profile}").as_bytes())
        .ctx(|| format!("process.apparmorProfile {profile:?}"))
}
