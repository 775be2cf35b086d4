//! `checkpoint`: CRIU dumps a running container's processes into an image
//! directory, as runc does it: the rootfs and the container's cgroup are
//! given to CRIU, every mount whose source is outside the container (bind
//! mounts, v1 cgroup binds, masked paths, device nodes) is named an
//! external mount so the image refers to it instead of holding it, and the
//! init's stdio is written to descriptors.json so that `restore` can hand
//! the new pipes in their place.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use berth_cgroups::Placement;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::delete;
use crate::criu::rpc::{self, cg_mode, req_type, ExtMountMap, Features};
use crate::criu::{self, Swrk};
use crate::rootfs::resolve::RootDir;
use crate::state::{Status, Store};
use crate::{Context, Error, Result};

/// The file in the image directory that lists the init's stdio.
pub(super) const DESCRIPTORS: &str = "descriptors.json";

/// How CRIU treats the container's cgroups (`--manage-cgroups-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupsMode {
    Soft,
    Full,
    Strict,
    Ignore,
}

impl std::str::FromStr for CgroupsMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "soft" => Ok(CgroupsMode::Soft),
            "full" => Ok(CgroupsMode::Full),
            "strict" => Ok(CgroupsMode::Strict),
            "ignore" => Ok(CgroupsMode::Ignore),
            _ => Err(format!("{s:?}: not one of soft, full, strict, ignore")),
        }
    }
}

/// The options `checkpoint` and `restore` share.
#[derive(Debug, Clone, Default)]
pub struct CriuOptions {
    pub image_path: PathBuf,
    /// Where CRIU writes its log (the image directory if not given).
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<CgroupsMode>,
    /// Namespaces made empty on restore rather than restored: as with runc,
    /// the network namespace always is, and "network" is the only name.
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
}

impl CriuOptions {
    /// The request options both verbs set; `images` and `work` are fds
    /// CRIU inherits.
    pub(super) fn rpc(&self, images: i32, work: Option<i32>, log_file: &str) -> Result<rpc::Opts> {
        let mut empty_ns = libc::CLONE_NEWNET as u32;
        for name in &self.empty_ns {
            match name.as_str() {
                "network" => empty_ns |= libc::CLONE_NEWNET as u32,
                other => {
                    return Err(Error::Message(format!(
                        "--empty-ns {other:?}: only \"network\" is supported"
                    )))
                }
            }
        }
        Ok(rpc::Opts {
            images_dir_fd: images,
            work_dir_fd: work,
            log_level: Some(4),
            log_file: Some(log_file.into()),
            manage_cgroups: Some(true),
            manage_cgroups_mode: Some(match self.manage_cgroups_mode {
                None => cg_mode::DEFAULT,
                Some(CgroupsMode::Soft) => cg_mode::SOFT,
                Some(CgroupsMode::Full) => cg_mode::FULL,
                Some(CgroupsMode::Strict) => cg_mode::STRICT,
                Some(CgroupsMode::Ignore) => cg_mode::IGNORE,
            }),
            notify_scripts: Some(true),
            shell_job: Some(self.shell_job),
            tcp_established: Some(self.tcp_established),
            ext_unix_sk: Some(self.ext_unix_sk),
            file_locks: Some(self.file_locks),
            empty_ns: Some(empty_ns),
            orphan_pts_master: Some(true),
            auto_dedup: Some(self.auto_dedup),
            lazy_pages: Some(self.lazy_pages),
            ..Default::default()
        })
    }

    /// Checks CRIU's version and the features these options need.
    pub(super) fn check_criu(&self, mem_track: bool) -> Result<()> {
        criu::check_version(criu::MIN_VERSION)?;
        if mem_track || self.lazy_pages {
            criu::check_features(&Features {
                mem_track: mem_track.then_some(true),
                lazy_pages: self.lazy_pages.then_some(true),
                pidfd_store: None,
            })?;
        }
        Ok(())
    }

    /// The work directory (made if missing), open for CRIU.
    pub(super) fn open_work_dir(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        let Some(path) = &self.work_path else {
            return Ok(None);
        };
        make_dir(path, "--work-path")?;
        criu::open_dir(path, "--work-path").map(Some)
    }

    /// Where CRIU's log `file` is.
    pub(super) fn log(&self, file: &str) -> PathBuf {
        self.work_path
            .as_ref()
            .unwrap_or(&self.image_path)
            .join(file)
    }
}

#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    pub criu: CriuOptions,
    pub leave_running: bool,
    /// Dump the memory only, leaving the container running, for a later
    /// dump with --parent-path.
    pub pre_dump: bool,
    /// A previous (pre-)dump, relative to the image directory.
    pub parent_path: Option<PathBuf>,
    /// With lazy pages: where CRIU's page server listens, "ADDRESS:PORT".
    pub page_server: Option<String>,
    /// With lazy pages: an fd of berth's that CRIU writes to once its page
    /// server is ready.
    pub status_fd: Option<i32>,
}

pub fn checkpoint(store: &Store, id: &str, opts: &CheckpointOptions) -> Result<()> {
    let dir = store.lock(id)?;
    let container = dir.container()?;
    let status = container.status();
    let state = match (status, container.state) {
        (Status::Running | Status::Paused, Some(state)) => state,
        _ => {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                message: "only a running or paused container can be checkpointed".into(),
            })
        }
    };
    let parent = check_parent_path(opts)?;
    opts.criu.check_criu(opts.pre_dump || parent.is_some())?;
    make_dir(&opts.criu.image_path, "--image-path")?;
    let images = criu::open_dir(&opts.criu.image_path, "--image-path")?;
    let work = opts.criu.open_work_dir()?;
    const LOG: &str = "dump.log";
    let mut req_opts = opts.criu.rpc(
        images.as_fd().as_raw_fd(),
        work.as_ref().map(|w| w.as_fd().as_raw_fd()),
        LOG,
    )?;
    req_opts.pid = Some(state.pid);
    req_opts.root = Some(state.rootfs.to_string_lossy().into_owned());
    req_opts.leave_running = Some(opts.leave_running);
    req_opts.external = external_namespaces(&state.config)?;
    // CRIU freezes the tree through the cgroup freezer rather than ptrace.
    if let Some(dir) = state.cgroup.as_ref().and_then(|p| p.dir_of("freezer")) {
        req_opts.freeze_cgroup = Some(dir.to_string_lossy().into_owned());
    }
    if let Some(parent) = &parent {
        req_opts.parent_img = Some(parent.to_string_lossy().into_owned());
        req_opts.track_mem = Some(true);
    }
    lazy_pages_options(opts, &mut req_opts)?;
    if opts.pre_dump {
        req_opts.track_mem = Some(true);
    } else {
        req_opts.ext_mnt = dump_mounts(
            &state.config,
            &state.rootfs,
            state.cgroup.as_ref(),
            state.pid,
        )?;
        let external_files = write_descriptors(&opts.criu.image_path, state.pid)?;
        req_opts.external.extend(external_files);
    }
    let req = rpc::Request {
        r#type: if opts.pre_dump {
            req_type::PRE_DUMP
        } else {
            req_type::DUMP
        },
        opts: Some(req_opts),
        ..Default::default()
    };
    let mut keep = vec![images.as_fd()];
    keep.extend(work.as_ref().map(|w| w.as_fd()));
    if let Some(fd) = opts.status_fd {
        // SAFETY: checked open by lazy_pages_options, and not closed
        // while berth runs.
        keep.push(unsafe { BorrowedFd::borrow_raw(fd) });
    }
    let mut swrk = Swrk::start(&keep)?;
    swrk.call(&req, &mut |_, _| Ok(()))
        .and_then(|_| {
            // After a pre-dump criu waits for the next pre-dump or the
            // dump, and fails if the socket closes: its answer is the
            // result, and dropping it ends it (as runc kills it).
            if opts.pre_dump {
                Ok(())
            } else {
                swrk.finish()
            }
        })
        .map_err(|e| Error::Message(format!("{e}\n{}", criu::log_errors(&opts.criu.log(LOG)))))?;
    drop(dir);
    if !opts.leave_running && !opts.pre_dump {
        // The processes are gone: remove the rest as runc does.
        delete(store, id, true)?;
    }
    Ok(())
}

/// --page-server and --status-fd, which only lazy pages use: CRIU then
/// serves the memory from its page server rather than write it.
fn lazy_pages_options(opts: &CheckpointOptions, req: &mut rpc::Opts) -> Result<()> {
    if !opts.criu.lazy_pages {
        if opts.page_server.is_some() || opts.status_fd.is_some() {
            return Err(Error::Message(
                "--page-server and --status-fd go with --lazy-pages".into(),
            ));
        }
        return Ok(());
    }
    if let Some(server) = &opts.page_server {
        let bad = || Error::Message(format!("--page-server {server:?}: want ADDRESS:PORT"));
        let (address, port) = server.rsplit_once(':').ok_or_else(bad)?;
        let port: i32 = port.parse().map_err(|_| bad())?;
        req.ps = Some(rpc::PageServerInfo {
            address: Some(address.to_string()),
            port: Some(port),
        });
    }
    if let Some(fd) = opts.status_fd {
        // SAFETY: F_GETFD only asks whether fd is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::Message(format!("--status-fd {fd}: not an open fd")));
        }
        req.status_fd = Some(fd);
    }
    Ok(())
}

pub(super) fn make_dir(path: &Path, flag: &str) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(e).ctx(|| format!("{flag} {}", path.display()))
        }
        _ => Ok(()),
    }
}
/// --parent-path must name a directory relative to the image directory,
/// as CRIU reads it from there.
fn check_parent_path(opts: &CheckpointOptions) -> Result<Option<PathBuf>> {
    let Some(parent) = &opts.parent_path else {
        return Ok(None);
    };
    if parent.is_absolute() {
        return Err(Error::Message(format!(
            "--parent-path {}: must be relative to --image-path",
            parent.display()
        )));
    }
    // Resolved as CRIU will, from the image directory, which may not exist
    // yet: its ".." are taken lexically.
    let real = lexical_join(&opts.criu.image_path, parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::os(
                format!("--parent-path {}", real.display()),
                libc::ENOTDIR,
            ))
        }
        Err(e) => return Err(e).ctx(|| format!("--parent-path {}", real.display())),
    }
    if !real.join("inventory.img").exists() {
        return Err(Error::Message(format!(
            "--parent-path {}: not a CRIU image (no inventory.img)",
            real.display()
        )));
    }
    Ok(Some(parent.clone()))
}

/// `base` joined with `rel`, each ".." of `rel` removing a component.
fn lexical_join(base: &Path, rel: &Path) -> PathBuf {
    let mut joined = base.to_path_buf();
    for part in rel.components() {
        match part {
            std::path::Component::ParentDir => {
                joined.pop();
            }
            std::path::Component::CurDir => {}
            other => joined.push(other),
        }
    }
    joined
}

/// A network or pid namespace the container joined by path is left out of
/// the image and named external; restore hands it back by fd.
fn external_namespaces(spec: &Spec) -> Result<Vec<String>> {
    let mut external = Vec::new();
    for (typ, path) in joined_namespaces(spec) {
        let Some(key) = external_ns_key(typ) else {
            continue;
        };
        let stat = rustix::fs::stat(&path)
            .ctx(|| format!("linux.namespaces {typ}: {}", path.display()))?;
        external.push(format!("{}[{}]:{key}", ns_name(typ), stat.st_ino));
    }
    Ok(external)
}

/// The namespaces the spec joins by path.
pub(super) fn joined_namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, PathBuf)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.path().clone().map(|p| (n.typ(), p)))
        .collect()
}

/// The key CRIU knows an external namespace by (runc's names, so images
/// move between the runtimes).
pub(super) fn external_ns_key(typ: LinuxNamespaceType) -> Option<&'static str> {
    match typ {
        LinuxNamespaceType::Network => Some("extRootNetNS"),
        LinuxNamespaceType::Pid => Some("extRootPidNS"),
        _ => None,
    }
}

pub(super) fn ns_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

/// A mount of the container whose source lies outside it: its mount point
/// in the container, and its source on the host.
pub(super) struct ExternalMount {
    pub destination: String,
    pub source: PathBuf,
}

/// The container's mounts that CRIU must not dump but name: bind mounts,
/// the binds that make up a v1 cgroup mount without a cgroup namespace (or
/// a v2 one without), and the device nodes (bind mounted in a user
/// namespace; an entry no mount matches is ignored by CRIU).
pub(super) fn external_mounts(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    cgroup: Option<&Placement>,
) -> Vec<ExternalMount> {
    let linux = spec.linux().clone().unwrap_or_default();
    let has_cgroupns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Cgroup);
    let root = RootDir::open(rootfs).ok();
    let in_root = |dest: &Path| resolve_destination(root.as_ref(), rootfs, dest);
    let mut external = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let opts = crate::rootfs::parse_mount_options(m.options().as_deref().unwrap_or_default());
        let dest = m.destination();
        if opts.is_bind(m) {
            let source = m.source().clone().unwrap_or_default();
            external.push(ExternalMount {
                destination: in_root(dest),
                source: bundle.join(source),
            });
        } else if m.typ().as_deref() == Some("cgroup") {
            match cgroup {
                None => external.push(ExternalMount {
                    destination: in_root(dest),
                    source: berth_cgroups::CGROUP_MOUNT.into(),
                }),
                Some(Placement::V2 { dir, .. }) if !has_cgroupns => external.push(ExternalMount {
                    destination: in_root(dest),
                    source: dir.clone(),
                }),
                Some(Placement::V1 { dirs, unified, .. }) if !has_cgroupns => {
                    for d in dirs {
                        let name = d.mount_name();
                        external.push(ExternalMount {
                            destination: in_root(&dest.join(name)),
                            source: d.dir.clone(),
                        });
                    }
                    if let Some(unified) = unified {
                        external.push(ExternalMount {
                            destination: in_root(&dest.join("unified")),
                            source: unified.clone(),
                        });
                    }
                }
                // Real cgroup mounts, which CRIU dumps itself.
                Some(_) => {}
            }
        }
    }
    let device_paths = linux
        .devices()
        .iter()
        .flatten()
        .map(|d| d.path().clone())
        .chain(
            crate::rootfs::devices::DEFAULT_NODES
                .iter()
                .map(|(name, _, _)| Path::new("/dev").join(name)),
        );
    for path in device_paths {
        external.push(ExternalMount {
            destination: in_root(&path),
            source: path,
        });
    }
    external
}

/// The mount point of `dest` as the kernel sees it: a symlink in the image
/// is followed inside the rootfs (the mount landed on its target). A path
/// that does not resolve stays as written.
fn resolve_destination(root: Option<&RootDir>, rootfs: &Path, dest: &Path) -> String {
    let written = || dest.to_string_lossy().into_owned();
    let Some(root) = root else {
        return written();
    };
    let rel = dest.strip_prefix("/").unwrap_or(dest);
    let Ok(fd) = root.resolve(rel) else {
        return written();
    };
    let Ok(real) = std::fs::read_link(crate::sys::fd_path(&fd)) else {
        return written();
    };
    let rootfs = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
    match real.strip_prefix(&rootfs) {
        Ok(inside) => Path::new("/").join(inside).to_string_lossy().into_owned(),
        Err(_) => written(),
    }
}

/// The external mounts of a dump: each named by its mount point, and each
/// masked path bound to /dev/null named "/dev/null".
fn dump_mounts(
    spec: &Spec,
    rootfs: &Path,
    cgroup: Option<&Placement>,
    pid: i32,
) -> Result<Vec<ExtMountMap>> {
    let mut maps: Vec<ExtMountMap> = external_mounts(spec, Path::new("/"), rootfs, cgroup)
        .into_iter()
        .map(|m| ExtMountMap {
            key: m.destination.clone(),
            val: m.destination,
        })
        .collect();
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    for path in masked {
        let seen = Path::new(&format!("/proc/{pid}/root")).join(path.trim_start_matches('/'));
        match std::fs::metadata(&seen) {
            // A directory is masked by a tmpfs, which CRIU dumps.
            Ok(m) if m.is_dir() => {}
            Ok(_) => maps.push(ExtMountMap {
                key: path,
                val: "/dev/null".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("linux.maskedPaths {path:?}")),
        }
    }
    Ok(maps)
}

/// Records what the init's stdio is, which restore replaces with its own
/// fds: a pipe as "pipe:[inode]"; a file on a mount outside the container
/// (a log file, the host's /dev/null) as "file[mnt_id:inode]", which is
/// also returned, to be named external (CRIU cannot dump a file it cannot
/// reach from the container's mounts); anything else as its path.
fn write_descriptors(images: &Path, pid: i32) -> Result<Vec<String>> {
    let container_mounts = mount_ids(pid)?;
    let mut external = Vec::new();
    let mut descriptors = Vec::new();
    for fd in 0..3 {
        let link = format!("/proc/{pid}/fd/{fd}");
        let Ok(target) = std::fs::read_link(&link) else {
            descriptors.push("/dev/null".to_string());
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        let outside = fd_mount_id(pid, fd)?.filter(|id| !container_mounts.contains(id));
        match outside {
            Some(mnt_id) if target.starts_with('/') => {
                let ino = rustix::fs::stat(link.as_str())
                    .ctx(|| format!("stat {link}"))?
                    .st_ino;
                let key = format!("file[{mnt_id:x}:{ino:x}]");
                external.push(key.clone());
                descriptors.push(key);
            }
            _ => descriptors.push(target),
        }
    }
    let path = images.join(DESCRIPTORS);
    let json = serde_json::to_vec(&descriptors).expect("strings serialise");
    crate::atomic_file::write(&path, &json).ctx(|| format!("write {}", path.display()))?;
    Ok(external)
}

/// The ids of the mounts in `pid`'s mount namespace.
fn mount_ids(pid: i32) -> Result<Vec<u64>> {
    let path = format!("/proc/{pid}/mountinfo");
    let text = std::fs::read_to_string(&path).ctx(|| format!("read {path}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect())
}

/// The mount an open file of `pid` lies on (fdinfo's mnt_id).
fn fd_mount_id(pid: i32, fd: i32) -> Result<Option<u64>> {
    let path = format!("/proc/{pid}/fdinfo/{fd}");
    let text = std::fs::read_to_string(&path).ctx(|| format!("read {path}"))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_path_is_resolved_from_the_image_directory_lexically() {
        let images = Path::new("/var/cr/full");
        assert_eq!(
            lexical_join(images, Path::new("../pre")),
            Path::new("/var/cr/pre")
        );
        assert_eq!(
            lexical_join(images, Path::new("./a/../b")),
            Path::new("/var/cr/full/b")
        );
    }

    #[test]
    fn manage_cgroups_mode_takes_runc_s_names() {
        assert_eq!("strict".parse(), Ok(CgroupsMode::Strict));
        assert!("props"
            .parse::<CgroupsMode>()
            .unwrap_err()
            .contains("not one of"));
    }
}
