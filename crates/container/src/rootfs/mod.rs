//! The container's root filesystem: propagation, the spec's mounts, /dev,
//! masked and read-only paths, then the switch of root.

mod cgroupfs;
mod copyup;
pub mod devices;
mod masked;
mod mounts;
mod options;
mod pivot;
mod proc_guard;
pub(crate) mod resolve;
mod target;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use berth_cgroups::Placement;
use oci_spec::runtime::Spec;

use crate::{sys, Context, Error, Result};

pub use options::{known_options, parse as parse_mount_options, propagation_flag, MountOptions};
pub use pivot::Entry;

/// What the rootfs setup needs from the spec and the namespace plan.
pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// Whether the container has a mount namespace of its own; without one
    /// nothing of the host's propagation may be touched.
    pub own_mount_ns: bool,
    /// Whether the container runs in a user namespace (its own or
    /// berth's): devices are then bound from the host, not made.
    pub in_userns: bool,
    pub has_cgroupns: bool,
    /// The container's cgroup, which a mount of type cgroup shows.
    pub cgroup: Option<&'a Placement>,
    pub entry: Entry,
    /// For each spec mount, its source as berth made it ready before the
    /// clone, if it did ([`bind_sources`]).
    pub bind_sources: &'a [Option<BindSource>],
}

/// Builds the root filesystem and enters it. `before_entry` runs once the
/// mounts are in place and before the root switch: the create-time hooks.
pub fn prepare(cfg: &RootfsConfig, before_entry: impl FnOnce() -> Result<()>) -> Result<()> {
    let linux = cfg.spec.linux().clone().unwrap_or_default();
    let propagation = linux
        .rootfs_propagation()
        .as_deref()
        .and_then(propagation_flag);
    if cfg.own_mount_ns {
        // Nothing done in here may reach the host: everything is a slave
        // (or private, when asked) until the root has been switched.
        let initial = match propagation {
            Some(p) if p & libc::MS_PRIVATE != 0 => libc::MS_PRIVATE | libc::MS_REC,
            _ => libc::MS_SLAVE | libc::MS_REC,
        };
        sys::set_propagation("/", initial).ctx(|| "make / a slave of the host")?;
        // pivot_root needs the new root to be a mount point.
        let rootfs = sys::open_path(cfg.rootfs)?;
        sys::bind(rootfs.as_fd(), rootfs.as_fd(), true)
            .ctx(|| format!("root.path {:?}", cfg.rootfs))?;
    }
    let root = resolve::RootDir::open(cfg.rootfs).ctx(|| format!("root.path {:?}", cfg.rootfs))?;
    let ctx = target::MountContext {
        cfg,
        root: &root,
        mount_label: linux
            .mount_label()
            .as_deref()
            .filter(|l| !l.is_empty() && crate::lsm::selinux_enabled()),
    };
    let mut spec_mounts = cfg.spec.mounts().clone().unwrap_or_default();
    // A read-only /dev is mounted writable, filled, then made read-only.
    let readonly_dev = spec_mounts
        .iter_mut()
        .find(|m| target::in_root(m.destination()) == Path::new("dev"))
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .is_some_and(|m| {
            let opts = m.options().clone().unwrap_or_default();
            let readonly = options::parse(&opts).flags & libc::MS_RDONLY != 0;
            if readonly {
                m.set_options(Some(opts.into_iter().filter(|o| o != "ro").collect()));
            }
            readonly
        });
    let made = mounts::mount_all(&ctx, &spec_mounts)?;
    let dev_is_bound = spec_mounts.iter().any(|m| {
        target::in_root(m.destination()) == Path::new("dev")
            && options::parse(m.options().as_deref().unwrap_or_default()).is_bind(m)
    });
    if !dev_is_bound {
        devices::populate(
            &root,
            linux.devices().as_deref().unwrap_or_default(),
            cfg.in_userns,
        )?;
    }
    if readonly_dev {
        // The pty is bound over /dev/console later, when /dev no longer
        // takes new files: its mount point is made now.
        let terminal = cfg
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if terminal {
            root.create_file(Path::new("dev/console"), 0o600)
                .ctx(|| "create /dev/console")?;
        }
        // The /dev tmpfs made writable above, by its descriptor.
        let dev = spec_mounts
            .iter()
            .position(|m| target::in_root(m.destination()) == Path::new("dev"))
            .map(|i| &made[i]);
        if let Some(dev) = dev {
            sys::set_attributes(dev.as_fd(), options::MOUNT_ATTR_RDONLY, 0, false)
                .ctx(|| "make /dev read-only")?;
        }
    }
    make_cwd(&root, cfg.spec)?;
    let dev_null = masked::open_dev_null()?;
    masked::mask(
        &root,
        linux.masked_paths().as_deref().unwrap_or_default(),
        dev_null.as_fd(),
    )?;
    masked::make_readonly(&root, linux.readonly_paths().as_deref().unwrap_or_default())?;
    drop(root);
    before_entry()?;
    pivot::enter(cfg.rootfs, cfg.entry)?;
    if !cfg.own_mount_ns {
        return Ok(());
    }
    // Now that the host is out of reach, give / the propagation asked for.
    if let Some(p) = propagation.filter(|p| p & (libc::MS_SHARED | libc::MS_UNBINDABLE) != 0) {
        sys::set_propagation("/", p).ctx(|| "linux.rootfsPropagation")?;
    }
    Ok(())
}

/// process.cwd, made (mode 0755, by root) when the image lacks it, as runc
/// makes it: a Kubernetes workingDir need not exist in the image. Made
/// through the root's descriptor, so no symlink of the image can place it
/// outside; after the spec's mounts, which it may lie in, and before the
/// masked paths and the read-only root. A cwd with `..` is left to the
/// chdir to judge.
fn make_cwd(root: &resolve::RootDir, spec: &Spec) -> Result<()> {
    let Some(process) = spec.process() else {
        return Ok(());
    };
    let cwd = process.cwd();
    if cwd
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Ok(());
    }
    root.mkdir_all(cwd, 0o755)
        .map(drop)
        .ctx(|| format!("process.cwd {cwd:?}"))
}

/// root.readonly: remounts the container's `/` read-only, keeping its other
/// flags. Runs after everything that writes to the root (the console) and
/// before the process loses the capability to. Works on the path "/": the
/// container's /proc may not be a procfs.
pub fn make_root_readonly(spec: &Spec, own_mount_ns: bool) -> Result<()> {
    // Without a mount namespace of its own the container's / is the host's,
    // which is not berth's to make read-only (runc leaves it too).
    if !own_mount_ns
        || spec
            .root()
            .as_ref()
            .is_none_or(|r| r.readonly() != Some(true))
    {
        return Ok(());
    }
    let slash = sys::open_path(Path::new("/"))?;
    let flags = sys::mount_flags(slash.as_fd())? | libc::MS_RDONLY | libc::MS_BIND;
    rustix::mount::mount_remount(
        "/",
        rustix::mount::MountFlags::from_bits_retain(flags as _),
        "",
    )
    .ctx(|| "root.readonly: remount / read-only")
}

/// Mounts that a container without a mount namespace of its own left on
/// the host under its rootfs, deepest first, so `delete` can detach them.
pub fn host_mounts_under(rootfs: &Path) -> Vec<std::path::PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<_> = berth_cgroups::mountinfo::parse(&text)
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(rootfs) && p != rootfs)
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Detaches the mounts of [`host_mounts_under`].
pub fn detach_host_mounts(rootfs: &Path) -> Result<()> {
    for point in host_mounts_under(rootfs) {
        match rustix::mount::unmount(&point, rustix::mount::UnmountFlags::DETACH) {
            Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
            Err(e) => {
                return Err(Error::os(
                    format!("detach {}", point.display()),
                    e.raw_os_error(),
                ))
            }
        }
    }
    Ok(())
}

/// A bind mount's source, made ready by berth as host root before the
/// clone, for the init to attach: it may not be able to reach or idmap the
/// source itself from inside its user namespace.
pub enum BindSource {
    /// An idmapped copy of the source (mounts' uidMappings/gidMappings).
    Idmapped(OwnedFd),
    /// A copy of the source, for a container in a user namespace: the
    /// source may sit below a directory only host root can enter.
    Cloned(OwnedFd),
    /// The user namespace to idmap a source inside the rootfs with: that
    /// source is what the container's earlier mounts make it, so the init
    /// copies it when its turn comes (see [`sys::idmapped_tree`]).
    IdmapInRoot {
        userns: OwnedFd,
        recursive: bool,
        idmap_recursive: bool,
    },
}

/// The bind sources of the spec's mounts, by mount index: idmapped ones
/// always (those inside `rootfs` left to the init when `init_can_idmap`,
/// as it is outside any user namespace), the others when `clone_all` (a
/// container in a user namespace, made by host root).
pub fn bind_sources(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    clone_all: bool,
    init_can_idmap: bool,
) -> Result<Vec<Option<BindSource>>> {
    spec.mounts()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| {
            let opts = options::parse(m.options().as_deref().unwrap_or_default());
            let idmap = match (m.uid_mappings(), m.gid_mappings()) {
                (Some(uid), Some(gid)) if !uid.is_empty() => Some((uid, gid)),
                _ => None,
            };
            if !opts.is_bind(m) || (idmap.is_none() && !clone_all) {
                return Ok(None);
            }
            let source = m.source().as_deref().unwrap_or(Path::new(""));
            let source = if source.is_absolute() {
                source.to_path_buf()
            } else {
                bundle.join(source)
            };
            let Some((uid, gid)) = idmap else {
                return sys::clone_tree(&source, opts.recursive)
                    .map(|tree| Some(BindSource::Cloned(tree)))
                    .ctx(|| format!("mounts[{i}].source"));
            };
            // "idmap" maps the top mount of an rbind, "ridmap" every one.
            let idmap_recursive = m.options().iter().flatten().any(|o| o == "ridmap");
            let userns = sys::userns::with_maps(uid, gid)?;
            if init_can_idmap && source.starts_with(rootfs) {
                return Ok(Some(BindSource::IdmapInRoot {
                    userns,
                    recursive: opts.recursive,
                    idmap_recursive,
                }));
            }
            sys::idmapped_tree(&source, opts.recursive, idmap_recursive, userns.as_fd())
                .map(|tree| Some(BindSource::Idmapped(tree)))
                .ctx(|| format!("mounts[{i}].uidMappings"))
        })
        .collect()
}
