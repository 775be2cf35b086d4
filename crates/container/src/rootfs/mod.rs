//! The container's root filesystem: propagation, the spec's mounts, /dev,
//! masked and read-only paths, then the switch of root.

mod cgroupfs;
mod copyup;
pub mod devices;
mod masked;
mod mounts;
mod options;
mod pivot;
pub(crate) mod resolve;
mod sys;

use std::os::fd::AsFd;
use std::path::Path;

use berth_cgroups::Placement;
use oci_spec::runtime::Spec;

use crate::{Context, Error, Result};

pub use options::{known_options, parse as parse_mount_options, propagation_flag, MountOptions};
pub use pivot::Entry;

/// What the rootfs setup needs from the spec and the namespace plan.
pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    /// Whether the container has a mount namespace of its own; without one
    /// nothing of the host's propagation may be touched.
    pub new_mount_ns: bool,
    pub in_userns: bool,
    pub cgroupns: bool,
    pub cgroup: Option<&'a Placement>,
    pub entry: Entry,
    /// For each spec mount, its idmapped tree (a detached mount berth made
    /// before the clone), if it is idmapped.
    pub idmaps: &'a [Option<std::os::fd::OwnedFd>],
}

/// Builds the root filesystem and enters it. `before_entry` runs once the
/// mounts are in place and before the root switch: the create-time hooks.
pub fn prepare(cfg: &RootfsConfig, before_entry: impl FnOnce() -> Result<()>) -> Result<()> {
    let linux = cfg.spec.linux().clone().unwrap_or_default();
    let propagation = linux
        .rootfs_propagation()
        .as_deref()
        .and_then(propagation_flag);
    if cfg.new_mount_ns {
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
    let ctx = mounts::MountContext {
        root: &root,
        bundle: cfg.bundle,
        in_userns: cfg.in_userns,
        cgroupns: cfg.cgroupns,
        cgroup: cfg.cgroup,
        idmaps: cfg.idmaps,
        mount_label: linux
            .mount_label()
            .as_deref()
            .filter(|l| !l.is_empty() && crate::process::lsm::selinux_enabled()),
    };
    let spec_mounts = cfg.spec.mounts().clone().unwrap_or_default();
    mounts::mount_all(&ctx, &spec_mounts)?;
    let dev_is_bound = spec_mounts.iter().any(|m| {
        mounts::in_root(m.destination()) == Path::new("dev")
            && mounts::is_bind(
                m,
                &options::parse(m.options().as_deref().unwrap_or_default()),
            )
    });
    if !dev_is_bound {
        devices::populate(
            &root,
            linux.devices().as_deref().unwrap_or_default(),
            cfg.in_userns,
        )?;
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
    if !cfg.new_mount_ns {
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
pub fn make_root_readonly(spec: &Spec) -> Result<()> {
    if spec
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

/// The idmapped trees of the spec's mounts, by index: made by berth as host
/// root before the clone, attached by the init.
pub fn idmapped_trees(spec: &Spec, bundle: &Path) -> Result<Vec<Option<std::os::fd::OwnedFd>>> {
    spec.mounts()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| {
            let (Some(uid), Some(gid)) = (m.uid_mappings(), m.gid_mappings()) else {
                return Ok(None);
            };
            if uid.is_empty() {
                return Ok(None);
            }
            let source = m.source().as_deref().unwrap_or(Path::new(""));
            let source = if source.is_absolute() {
                source.to_path_buf()
            } else {
                bundle.join(source)
            };
            let opts = options::parse(m.options().as_deref().unwrap_or_default());
            let recursive = opts.recursive || m.options().iter().flatten().any(|o| o == "ridmap");
            let userns = crate::init::namespaces::userns_with_maps(uid, gid)?;
            sys::idmapped_tree(&source, recursive, userns.as_fd())
                .map(Some)
                .ctx(|| format!("mounts[{i}].uidMappings"))
        })
        .collect()
}
