//! The spec's `mounts`, each made inside the rootfs: destinations are
//! resolved in the root by the kernel ([`RootDir`]: no symlink can lead out
//! of it), created when missing, and mounted on through their descriptors.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;

use super::cgroupfs;
use super::options::{self, MountOptions};
use super::resolve::RootDir;
use super::sys;
use crate::{Context, Error, Result};

/// What mounting needs to know beyond the mount itself.
pub struct MountContext<'a> {
    pub root: &'a RootDir,
    pub bundle: &'a Path,
    pub in_userns: bool,
    pub cgroupns: bool,
    pub cgroup: Option<&'a berth_cgroups::Placement>,
    pub idmaps: &'a [Option<OwnedFd>],
    /// linux.mountLabel, when SELinux is enabled (without it the label
    /// means nothing and is dropped, as crun does).
    pub mount_label: Option<&'a str>,
}

/// The destination relative to the container's root ("/proc" → "proc").
pub fn in_root(destination: &Path) -> PathBuf {
    destination
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

pub fn is_bind(m: &Mount, opts: &MountOptions) -> bool {
    m.typ().as_deref() == Some("bind") || opts.bind
}

/// Mounts every entry of `mounts`, in order.
pub fn mount_all(ctx: &MountContext, mounts: &[Mount]) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        let idmap = ctx.idmaps.get(i).and_then(Option::as_ref);
        mount_one(ctx, m, idmap)
            .ctx(|| format!("mounts[{i}].destination {:?}", m.destination()))?;
    }
    Ok(())
}

fn mount_one(ctx: &MountContext, m: &Mount, idmap: Option<&OwnedFd>) -> Result<()> {
    let dest = in_root(m.destination());
    let opts = options::parse(m.options().as_deref().unwrap_or_default());
    super::proc_guard::check(ctx.root, m, &dest, &opts)?;
    if is_bind(m, &opts) {
        return bind(ctx, m, &dest, &opts, idmap);
    }
    match m.typ().as_deref().unwrap_or("") {
        "cgroup" | "cgroup2" => cgroupfs::mount(ctx, &dest, &opts),
        "" => Err(Error::Message("the mount has no type".into())),
        fstype => filesystem(ctx, m, fstype, &dest, &opts),
    }
}

/// Creates a directory mount point and returns its handle.
pub fn mount_point_dir(root: &RootDir, dest: &Path) -> Result<OwnedFd> {
    root.mkdir_all(dest, 0o755).ctx(|| "create the mount point")
}

/// Creates a file mount point (for binding a file) and returns its handle.
pub fn mount_point_file(root: &RootDir, dest: &Path) -> Result<OwnedFd> {
    root.create_file(dest, 0o644)
        .ctx(|| "create the mount point")
}

/// Re-resolves `dest` after something was mounted on it: the handle of the
/// mount point itself still refers to what lies underneath.
pub fn mounted(root: &RootDir, dest: &Path) -> Result<OwnedFd> {
    root.resolve(dest).ctx(|| "resolve the new mount")
}

fn filesystem(
    ctx: &MountContext,
    m: &Mount,
    fstype: &str,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    let point = mount_point_dir(ctx.root, dest)?;
    if matches!(fstype, "proc" | "sysfs") {
        // A proc or sysfs on a symlink could land anywhere in the container
        // (CVE-2019-19921): only a real directory will do.
        let link = ctx
            .root
            .resolve_nofollow(dest)
            .ctx(|| "resolve the mount point")?;
        let st = rustix::fs::fstat(&link).ctx(|| "stat the mount point")?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
            return Err(Error::Message(format!(
                "{fstype} may only be mounted on a directory, and {} is not one",
                m.destination().display()
            )));
        }
    }
    let source = m
        .source()
        .as_deref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| fstype.to_string());
    let mut data = opts.data.clone();
    if let Some(label) = ctx
        .mount_label
        .filter(|_| matches!(fstype, "tmpfs" | "devpts" | "mqueue" | "shm"))
    {
        data.push(crate::process::lsm::mount_context(label));
    }
    if fstype == "tmpfs" && opts.copy_up {
        let opts = MountOptions {
            data,
            ..opts.clone()
        };
        super::copyup::tmpfs_with_copy(point.as_fd(), &source, &opts)?;
        return finish(ctx.root, dest, &opts);
    }
    let data = data.join(",");
    match sys::mount(&source, point.as_fd(), fstype, opts.flags, &data) {
        // sysfs cannot be mounted in a user namespace that does not own the
        // network namespace; bind the host's instead, as runc does.
        Err(e) if fstype == "sysfs" && ctx.in_userns && e.errno() == Some(libc::EPERM) => {
            let host = sys::open_path(Path::new("/sys"))?;
            sys::bind(host.as_fd(), point.as_fd(), true)?;
            let new = mounted(ctx.root, dest)?;
            sys::remount_bind(new.as_fd(), opts.flags | locked_flags(ctx, new.as_fd())?)?;
        }
        other => other?,
    }
    finish(ctx.root, dest, opts)
}

fn bind(
    ctx: &MountContext,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    idmap: Option<&OwnedFd>,
) -> Result<()> {
    let source = m
        .source()
        .as_deref()
        .ok_or_else(|| Error::Message("a bind mount needs a source".into()))?;
    let source = if source.is_absolute() {
        source.to_path_buf()
    } else {
        ctx.bundle.join(source)
    };
    let source_fd: OwnedFd = sys::open_path(&source).ctx(|| "mount source")?;
    let st = rustix::fs::fstat(&source_fd).ctx(|| format!("stat {}", source.display()))?;
    let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
    let point = if is_dir {
        mount_point_dir(ctx.root, dest)?
    } else {
        mount_point_file(ctx.root, dest)?
    };
    if let Some(tree) = idmap {
        sys::attach(tree.as_fd(), point.as_fd())?;
    } else {
        sys::bind(source_fd.as_fd(), point.as_fd(), opts.recursive)?;
    }
    let flags_to_apply = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
    if flags_to_apply != 0 || opts.cleared != 0 {
        let new = mounted(ctx.root, dest)?;
        let flags = flags_to_apply | (locked_flags(ctx, new.as_fd())? & !opts.cleared);
        sys::remount_bind(new.as_fd(), flags)?;
    }
    finish(ctx.root, dest, opts)
}

/// In a user namespace the flags of a mount inherited from the host are
/// locked: a remount must repeat them or it fails with EPERM.
fn locked_flags(ctx: &MountContext, fd: std::os::fd::BorrowedFd) -> Result<u64> {
    if !ctx.in_userns {
        return Ok(0);
    }
    let locked = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    Ok(sys::mount_flags(fd)? & locked)
}

/// Propagation and recursive attributes, which apply to a mount once it is
/// in place.
pub fn finish(root: &RootDir, dest: &Path, opts: &MountOptions) -> Result<()> {
    if opts.propagation.is_empty() && opts.recursive_set == 0 && opts.recursive_clear == 0 {
        return Ok(());
    }
    let new = mounted(root, dest)?;
    for flags in &opts.propagation {
        sys::set_propagation(&sys::fd_path(&new), *flags)?;
    }
    if opts.recursive_set != 0 || opts.recursive_clear != 0 {
        sys::set_attributes_recursively(new.as_fd(), opts.recursive_set, opts.recursive_clear)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_made_relative_to_the_root() {
        assert_eq!(in_root(Path::new("/proc/sys")), PathBuf::from("proc/sys"));
        assert_eq!(in_root(Path::new("data")), PathBuf::from("data"));
        assert_eq!(in_root(Path::new("/")), PathBuf::new());
    }
}
