//! The spec's `mounts`, each made inside the rootfs: destinations are
//! resolved in the root by the kernel ([`super::resolve::RootDir`]: no
//! symlink can lead out of it), created when missing, and mounted on
//! through their descriptors.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Mount;

use super::cgroupfs;
use super::options::{self, MountOptions};
use super::target::{self, in_root, mount_point_dir, mount_point_file, MountContext};
use super::BindSource;
use crate::sys;
use crate::{Context, Error, Result};

/// Mounts every entry of `mounts`, in order; returns the mounts made, by
/// index (a descriptor of each, to change it later without a path).
pub fn mount_all(ctx: &MountContext, mounts: &[Mount]) -> Result<Vec<OwnedFd>> {
    mounts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let ready = ctx.cfg.bind_sources.get(i).and_then(Option::as_ref);
            mount_one(ctx, m, ready)
                .ctx(|| format!("mounts[{i}].destination {:?}", m.destination()))
        })
        .collect()
}

fn mount_one(ctx: &MountContext, m: &Mount, ready: Option<&BindSource>) -> Result<OwnedFd> {
    let dest = in_root(m.destination());
    if dest == Path::new("proc") || dest == Path::new("sys") {
        refuse_symlink(ctx, &dest)?;
    }
    let opts = options::parse(m.options().as_deref().unwrap_or_default());
    super::proc_guard::check(ctx.root, m, &dest, &opts)?;
    if opts.is_bind(m) {
        return bind(ctx, m, &dest, &opts, ready);
    }
    match m.typ().as_deref().unwrap_or("") {
        "cgroup" | "cgroup2" => cgroupfs::mount(ctx, &dest, &opts),
        "" => Err(Error::Message("the mount has no type".into())),
        fstype => filesystem(ctx, m, fstype, &dest, &opts),
    }
}

fn filesystem(
    ctx: &MountContext,
    m: &Mount,
    fstype: &str,
    dest: &Path,
    opts: &MountOptions,
) -> Result<OwnedFd> {
    if matches!(fstype, "proc" | "sysfs") {
        refuse_symlink(ctx, dest)?;
    }
    // A tmpfs over a directory the image has takes that directory's mode,
    // unless the options name one; over a directory made for it, tmpfs's
    // own 1777 (as runc, its issue 3952).
    let image_dir_mode = (fstype == "tmpfs")
        .then(|| ctx.root.resolve(dest).ok())
        .flatten()
        .and_then(|dir| rustix::fs::fstat(&dir).ok())
        .filter(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        })
        .map(|st| st.st_mode & 0o7777);
    let point = mount_point_dir(ctx.root, dest)?;
    if matches!(fstype, "proc" | "sysfs") {
        // A proc or sysfs on anything but a directory could land anywhere
        // in the container (CVE-2019-19921).
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
    if let Some(mode) = image_dir_mode {
        // First: a mode= of the options, later, overrides it.
        data.insert(0, format!("mode={mode:04o}"));
    }
    if let Some(label) = ctx
        .mount_label
        .filter(|_| matches!(fstype, "tmpfs" | "devpts" | "mqueue" | "shm"))
    {
        data.push(crate::lsm::mount_context(label));
    }
    let tree = if fstype == "tmpfs" && opts.copy_up {
        super::copyup::tmpfs_with_copy(point.as_fd(), &source, &data, opts.flags)?
    } else {
        match sys::new_filesystem(fstype, &source, &data, opts.flags) {
            // sysfs cannot be mounted in a user namespace that does not own
            // the network namespace; bind the host's instead, as runc does.
            Err(e) if fstype == "sysfs" && ctx.cfg.in_userns && e.errno() == Some(libc::EPERM) => {
                let host = sys::open_path(Path::new("/sys"))?;
                sys::clone_of(host.as_fd(), true)?
            }
            other => other?,
        }
    };
    target::attach(tree.as_fd(), point.as_fd(), opts)?;
    Ok(tree)
}

/// A mount at /proc or /sys, or of a proc or sysfs anywhere, must not
/// follow a symlink of the image: it would put the kernel's files where the
/// image points (CVE-2019-19921). Named with its target, in runc's words
/// (which tools and runc's tests look for).
fn refuse_symlink(ctx: &MountContext, dest: &Path) -> Result<()> {
    let Ok(found) = ctx.root.resolve_nofollow(dest) else {
        return Ok(());
    };
    let st = rustix::fs::fstat(&found).ctx(|| "stat the mount point")?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Symlink {
        return Ok(());
    }
    let target = rustix::fs::readlinkat(&found, "", Vec::new())
        .map(|t| t.to_string_lossy().into_owned())
        .unwrap_or_default();
    Err(Error::Message(format!(
        "/{} is a symlink (to {target:?}) in the rootfs; it must be mounted on ordinary directory, not through a symlink",
        dest.display()
    )))
}

fn bind(
    ctx: &MountContext,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    ready: Option<&BindSource>,
) -> Result<OwnedFd> {
    let source = m
        .source()
        .as_deref()
        .ok_or_else(|| Error::Message("a bind mount needs a source".into()))?;
    let source = if source.is_absolute() {
        source.to_path_buf()
    } else {
        ctx.cfg.bundle.join(source)
    };
    let tree = match ready {
        Some(BindSource::Idmapped(tree) | BindSource::Cloned(tree)) => {
            tree.try_clone().ctx(|| "dup the mount source")?
        }
        Some(BindSource::IdmapInRoot {
            userns,
            recursive,
            idmap_recursive,
        }) => sys::idmapped_tree(&source, *recursive, *idmap_recursive, userns.as_fd())
            .ctx(|| "uidMappings")?,
        None => {
            let opened = sys::open_path(&source).ctx(|| "mount source")?;
            sys::clone_of(opened.as_fd(), opts.recursive).ctx(|| "mount source")?
        }
    };
    let st = rustix::fs::fstat(&tree).ctx(|| format!("stat {}", source.display()))?;
    let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
    let point = if is_dir {
        mount_point_dir(ctx.root, dest)?
    } else {
        mount_point_file(ctx.root, dest)?
    };
    target::attach_bind(tree.as_fd(), point.as_fd(), opts, ctx.cfg.in_userns)?;
    Ok(tree)
}
