//! Linux security modules: AppArmor profiles.

use std::io::Write;

use crate::{Context, Result};

/// Whether AppArmor is enabled on this host.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim_start().starts_with('Y'))
        .unwrap_or(false)
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
