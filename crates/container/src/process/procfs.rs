//! Files under /proc that set up the process (oom_score_adj, the LSM exec
//! labels) and the container (linux.sysctl): written through a procfs
//! handle that pathrs has checked is a real procfs, with no symlink
//! followed, so the container cannot redirect the writes (CVE-2019-16884
//! and kin).

use std::io::Write;
use std::path::Path;

use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle, ProcfsHandleBuilder};

use crate::{lsm, Context, Result};

/// A verified handle on procfs.
pub fn open() -> Result<ProcfsHandle> {
    ProcfsHandleBuilder::new()
        .unmasked()
        .build()
        .ctx(|| "open procfs")
}

/// Writes `value` to the /proc file `path` below `base`; errors name
/// `field`.
pub fn write(
    procfs: &ProcfsHandle,
    base: ProcfsBase,
    path: &Path,
    value: &str,
    field: &str,
) -> Result<()> {
    let mut file = procfs
        .open(base, path, OpenFlags::O_WRONLY)
        .ctx(|| format!("{field}: open /proc/{}", path.display()))?;
    file.write_all(value.as_bytes())
        .ctx(|| format!("{field}: write {value:?}"))
}

/// process.oomScoreAdj, process.apparmorProfile and process.selinuxLabel.
pub fn set_process_attributes(process: &oci_spec::runtime::Process) -> Result<()> {
    let oom = process.oom_score_adj();
    let apparmor = process.apparmor_profile().clone().filter(|p| !p.is_empty());
    let selinux = process.selinux_label().clone().filter(|l| !l.is_empty());
    if oom.is_none() && apparmor.is_none() && selinux.is_none() {
        return Ok(());
    }
    let procfs = open()?;
    if let Some(adj) = oom {
        write(
            &procfs,
            ProcfsBase::ProcSelf,
            Path::new("oom_score_adj"),
            &adj.to_string(),
            "process.oomScoreAdj",
        )?;
    }
    if let Some(profile) = apparmor {
        lsm::set_apparmor_exec_profile(&procfs, &profile)?;
    }
    if let Some(label) = selinux {
        lsm::set_selinux_exec_label(&procfs, &label)?;
    }
    Ok(())
}
