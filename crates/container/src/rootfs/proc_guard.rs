//! No spec mount may stand in for procfs (the CVE-2019-16884 class): a
//! directory or file system of anyone's choosing at /proc, or over a file
//! under it, makes berth and the LSMs read and write what the container
//! controls. At /proc only procfs itself is mounted; under it only the few
//! files that lxcfs and its kind emulate. The check is made on where the
//! destination lands once the image's symlinks are followed inside the root.

use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Mount;

use super::options::MountOptions;
use super::resolve::RootDir;
use super::sys;
use crate::{Context, Error, Result};

/// The files under /proc a mount may cover (relative to /proc).
const EMULATED_FILES: &[&str] = &[
    "cpuinfo",
    "diskstats",
    "meminfo",
    "stat",
    "swaps",
    "uptime",
    "loadavg",
    "slabinfo",
    "net/dev",
    "sys/kernel/ns_last_pid",
];

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Refuses `m` (destination `dest`, relative to the root) when it would
/// cover /proc or anything under it, other than procfs at /proc or an
/// emulated file.
pub fn check(root: &RootDir, m: &Mount, dest: &Path, opts: &MountOptions) -> Result<()> {
    let landing = landing_point(root, dest)?;
    let Ok(under_proc) = landing.strip_prefix("proc") else {
        return Ok(());
    };
    let shown = Path::new("/").join(&landing);
    if under_proc.as_os_str().is_empty() {
        if is_procfs(m, opts)? {
            return Ok(());
        }
        return Err(Error::Message(format!(
            "{shown:?} may only be a procfs (type \"proc\", or a bind of one)"
        )));
    }
    if EMULATED_FILES.iter().any(|f| under_proc == Path::new(f)) {
        return Ok(());
    }
    Err(Error::Message(format!(
        "{shown:?} is inside /proc: nothing may be mounted there but {}",
        EMULATED_FILES
            .iter()
            .map(|f| format!("/proc/{f}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Whether the mount is procfs: a new one, or a bind of one.
fn is_procfs(m: &Mount, opts: &MountOptions) -> Result<bool> {
    if !opts.is_bind(m) {
        return Ok(m.typ().as_deref() == Some("proc"));
    }
    let Some(source) = m.source().as_deref().filter(|s| s.is_absolute()) else {
        return Ok(false);
    };
    let fd = sys::open_path(source)?;
    let st = rustix::fs::fstatfs(&fd).ctx(|| format!("statfs {}", source.display()))?;
    Ok(st.f_type as i64 == PROC_SUPER_MAGIC)
}

/// Where `dest` lands inside the root, as normal components: the deepest
/// part of it that exists, resolved by the kernel inside the root, and the
/// rest as written.
fn landing_point(root: &RootDir, dest: &Path) -> Result<PathBuf> {
    let names: Vec<&std::ffi::OsStr> = dest
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let root_path = real_path(root.as_fd())?;
    for depth in (0..=names.len()).rev() {
        let prefix: PathBuf = names[..depth].iter().collect();
        let Ok(fd) = root.resolve(&prefix) else {
            continue;
        };
        let found = real_path(fd.as_fd())?;
        let inside = found.strip_prefix(&root_path).map_err(|_| {
            Error::Message(format!(
                "{} resolves to {}, outside the root",
                prefix.display(),
                found.display()
            ))
        })?;
        return Ok(inside
            .iter()
            .chain(names[depth..].iter().copied())
            .collect());
    }
    Err(Error::Message("the root itself cannot be resolved".into()))
}

/// The path of `fd` in this mount namespace.
fn real_path(fd: std::os::fd::BorrowedFd) -> Result<PathBuf> {
    let link = sys::fd_path(fd);
    std::fs::read_link(&link).ctx(|| format!("readlink {link}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(json: serde_json::Value) -> Mount {
        serde_json::from_value(json).unwrap()
    }

    fn check_in(root: &Path, m: &Mount) -> Result<()> {
        let opts = super::super::options::parse(m.options().as_deref().unwrap_or_default());
        let dest = super::super::target::in_root(m.destination());
        check(&RootDir::open(root).unwrap(), m, &dest, &opts)
    }

    #[test]
    fn only_procfs_and_emulated_files_go_at_or_under_proc() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("proc/sys")).unwrap();
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::os::unix::fs::symlink("/proc", root.join("p")).unwrap();
        std::os::unix::fs::symlink("../../proc/sys", root.join("data/up")).unwrap();
        let refused = [
            json_mount("/proc", "tmpfs", None),
            json_mount("/proc", "bind", Some("/tmp")),
            json_mount("/proc/sys", "tmpfs", None),
            json_mount("/proc/kcore", "bind", Some("/dev/null")),
            json_mount("/p", "tmpfs", None),
            json_mount("/p/sys/kernel", "tmpfs", None),
            json_mount("/data/up", "tmpfs", None),
            json_mount("/proc/./sys", "tmpfs", None),
        ];
        for m in &refused {
            let err = check_in(root, m)
                .expect_err(&format!("{:?} was allowed", m.destination()))
                .to_string();
            assert!(err.contains("/proc"), "{:?}: {err}", m.destination());
        }
        let allowed = [
            json_mount("/proc", "proc", Some("proc")),
            json_mount("/proc", "bind", Some("/proc")),
            json_mount("/proc/cpuinfo", "bind", Some("/dev/null")),
            json_mount("/p/sys/kernel/ns_last_pid", "bind", Some("/dev/null")),
            json_mount("/procfs", "tmpfs", None),
            json_mount("/data/x", "tmpfs", None),
        ];
        for m in &allowed {
            check_in(root, m).unwrap_or_else(|e| panic!("{:?}: {e}", m.destination()));
        }
    }

    fn json_mount(destination: &str, typ: &str, source: Option<&str>) -> Mount {
        mount(serde_json::json!({
            "destination": destination,
            "type": typ,
            "source": source.unwrap_or(typ),
        }))
    }
}
