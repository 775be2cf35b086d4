//! `restore`: a container made again from a checkpoint, as runc does it.
//! The bundle is planned as `create` plans it; then berth claims the id,
//! makes the cgroup and puts `criu swrk` in it (CRIU places the restored
//! tasks under it), binds the rootfs where CRIU can use it as the root,
//! and asks CRIU to restore the tree as berth's child. CRIU's
//! notifications drive the rest: the prestart and createRuntime hooks once
//! the namespaces exist, the state once the tree is restored, and the pty
//! master for --console-socket. On any failure what was made is removed
//! again: the restored tree, the cgroup, the state.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_cgroups::Manager;
use oci_spec::runtime::LinuxNamespaceType;

use super::checkpoint::{self, CriuOptions, DESCRIPTORS};
use super::create::{self, connect_console, write_pid_file, CreateOptions};
use super::delete;
use super::foreground::Foreground;
use crate::criu::rpc::{self, req_type, CgroupRoot, ExtMountMap, InheritFd, JoinNamespace};
use crate::criu::{self, Swrk};
use crate::rootfs::resolve::RootDir;
use crate::state::{ContainerDir, OciState, ProcStat, Status, Store};
use crate::{hooks, id, Context, Error, Result};

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub criu: CriuOptions,
    pub bundle: PathBuf,
    pub cdi_spec_dirs: crate::cdi::SpecDirs,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    /// Return once restored rather than wait for the container to exit.
    pub detach: bool,
    /// Do not make berth a subreaper while it waits in the foreground.
    pub no_subreaper: bool,
    /// The systemd cgroup driver: the container's unit starts with criu in
    /// it, and the restored tree stays there.
    pub systemd_cgroup: bool,
}

/// Restores the container `id`; detached, returns 0 once it runs, else
/// its exit status once it has exited (and is deleted).
pub fn restore(store: &Store, id: &str, opts: &RestoreOptions) -> Result<i32> {
    id::validate(id)?;
    let plan = create::plan(
        id,
        &CreateOptions {
            bundle: opts.bundle.clone(),
            cdi_spec_dirs: opts.cdi_spec_dirs.clone(),
            console_socket: opts.console_socket.clone(),
            systemd_cgroup: opts.systemd_cgroup,
            ..Default::default()
        },
    )?;
    if plan.linux.intel_rdt().is_some() {
        return Err(Error::spec(
            "linux.intelRdt",
            "restore does not support it yet",
        ));
    }
    let descriptors = read_image_dir(&opts.criu.image_path)?;
    opts.criu.check_criu(false)?;
    let namespaces = NamespaceFds::open(&plan.bundle.spec)?;
    let foreground = if opts.detach {
        None
    } else {
        if !opts.no_subreaper {
            rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
                .ctx(|| "become a subreaper")?;
        }
        Some(Foreground::block_signals()?)
    };
    let console = opts
        .console_socket
        .as_deref()
        .filter(|_| plan.terminal)
        .map(connect_console)
        .transpose()?;
    let images = criu::open_dir(&opts.criu.image_path, "--image-path")?;
    let work = opts.criu.open_work_dir()?;

    // From here on, what is made is removed again on failure.
    let mut made = Made {
        dir: Some(store.create(id)?),
        cgroup: None,
        criu_root: None,
        restored: None,
    };
    if let Some(host) = &plan.host {
        let cgroup = plan.make_cgroup(host, id, made.dir())?;
        made.cgroup = Some(cgroup.ctx(|| "cgroups")?);
    }
    let placement = made.cgroup.as_ref().map(|c| c.placement().clone());
    let criu_root = made.dir().path().join("criu-root");
    made.criu_root = Some(bind_root(&plan.bundle.rootfs, &criu_root)?);
    prepare_mount_points(&plan.bundle.spec, &plan.bundle.path, &criu_root)?;

    const LOG: &str = "restore.log";
    let mut req_opts = opts.criu.rpc(
        images.as_raw_fd(),
        work.as_ref().map(|w| w.as_raw_fd()),
        LOG,
    )?;
    req_opts.root = Some(criu_root.to_string_lossy().into_owned());
    req_opts.rst_sibling = Some(true);
    req_opts.evasive_devices = Some(true);
    req_opts.ext_mnt = restore_mounts(&plan, placement.as_ref());
    let (stdio, stdio_opened) = stdio_inherits(&descriptors)?;
    req_opts.inherit_fd = stdio;
    req_opts.inherit_fd.extend(namespaces.inherits());
    req_opts.join_ns = namespaces.joins;

    let mut keep: Vec<BorrowedFd> = vec![images.as_fd()];
    keep.extend(work.as_ref().map(|w| w.as_fd()));
    keep.extend(namespaces.external.iter().map(|(_, fd)| fd.as_fd()));
    keep.extend(stdio_opened.iter().map(|fd| fd.as_fd()));
    let mut swrk = Swrk::start(&keep)?;
    if let Some(cgroup) = &made.cgroup {
        cgroup
            .join(swrk.pid(), None)
            .ctx(|| "put criu in the container's cgroup")?;
        cgroup.apply(&plan.resources).ctx(|| "cgroups")?;
        req_opts.cg_root = cgroup_roots(swrk.pid())?;
    }

    let spec = &plan.bundle.spec;
    let mut state = plan.state(id, placement, None);
    let hooks = spec.hooks().clone().unwrap_or_default();
    let req = rpc::Request {
        r#type: req_type::RESTORE,
        opts: Some(req_opts),
        ..Default::default()
    };
    let outcome = swrk.call(&req, &mut |notify, fd| {
        let pid = notify.pid.unwrap_or(0);
        match notify.script.as_deref().unwrap_or_default() {
            "setup-namespaces" => {
                let mut hook_state = OciState::for_hooks(&state, Status::Creating);
                hook_state.pid = pid;
                let list = |h: &Option<Vec<_>>| h.clone().unwrap_or_default();
                hooks::run_all("prestart", &list(hooks.prestart()), &hook_state)?;
                hooks::run_all("createRuntime", &list(hooks.create_runtime()), &hook_state)
            }
            "post-restore" => {
                made.restored = Some(
                    rustix::process::pidfd_open(
                        rustix::process::Pid::from_raw(pid)
                            .ok_or_else(|| Error::Message(format!("criu restored pid {pid}")))?,
                        rustix::process::PidfdFlags::empty(),
                    )
                    .ctx(|| format!("pidfd_open {pid}"))?,
                );
                state.pid = pid;
                state.pid_start_time = ProcStat::read(pid)
                    .ok_or_else(|| Error::Message("the restored init vanished".into()))?
                    .start_time;
                made.dir().write_state(&state)?;
                match &opts.pid_file {
                    Some(path) => write_pid_file(path, pid),
                    None => Ok(()),
                }
            }
            "orphan-pts-master" => match (fd, &console) {
                (Some(master), Some(socket)) => {
                    crate::sys::send_fd(socket.as_fd(), master.as_fd(), b"/dev/ptmx")
                        .ctx(|| "send the pty master to --console-socket")
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    });
    let outcome = outcome.and_then(|_| swrk.finish());
    if let Err(e) = outcome {
        return Err(Error::Message(format!(
            "restore {} from {}: {e}\n{}",
            id,
            opts.criu.image_path.display(),
            criu::log_errors(&opts.criu.log(LOG))
        )));
    }
    let Some(pidfd) = made.restored.take() else {
        return Err(Error::Message(
            "criu reported the restore done but never its pid (no post-restore notification)"
                .into(),
        ));
    };
    // Restored: keep the tree, the cgroup and the state dir (its lock is
    // let go once the bind CRIU used is gone).
    made.cgroup = None;
    let dir = made.dir.take();
    drop(made);
    drop(dir);
    let Some(foreground) = foreground else {
        return Ok(0);
    };
    let code = foreground.wait(state.pid, pidfd.as_fd(), None);
    if let Err(e) = delete(store, id, true) {
        tracing::warn!("delete {id}: {e}");
    }
    code
}

/// What `restore` made, removed on drop unless taken.
struct Made {
    dir: Option<ContainerDir>,
    cgroup: Option<Box<dyn Manager>>,
    /// The rootfs bound for CRIU: always unmounted.
    criu_root: Option<PathBuf>,
    /// The restored init, killed on failure.
    restored: Option<OwnedFd>,
}

impl Made {
    fn dir(&self) -> &ContainerDir {
        self.dir
            .as_ref()
            .expect("the state dir is held until restored")
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(pidfd) = self.restored.take() {
            let _ = crate::sys::pidfd_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = rustix::event::poll(
                &mut [rustix::event::PollFd::new(
                    &pidfd,
                    rustix::event::PollFlags::IN,
                )],
                None,
            );
        }
        if let Some(root) = self.criu_root.take() {
            if let Err(e) = rustix::mount::unmount(&root, rustix::mount::UnmountFlags::DETACH) {
                tracing::warn!("unmount {}: {e}", root.display());
            }
            let _ = std::fs::remove_dir(&root);
        }
        if let Some(cgroup) = self.cgroup.take() {
            // The restored tasks may still be dying.
            let _ = cgroup.kill_all(std::time::Duration::from_secs(5));
            if let Err(e) = cgroup.destroy() {
                tracing::warn!("remove the cgroup of the failed restore: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.remove() {
                tracing::warn!("remove the state of the failed restore: {e}");
            }
        }
    }
}

/// Checks that `path` holds a checkpoint and reads its descriptors.json.
fn read_image_dir(path: &Path) -> Result<Vec<String>> {
    let flag = || format!("--image-path {}", path.display());
    let meta = std::fs::metadata(path).ctx(flag)?;
    if !meta.is_dir() {
        return Err(Error::os(flag(), libc::ENOTDIR));
    }
    if !path.join("inventory.img").exists() {
        return Err(Error::Message(format!(
            "{}: not a checkpoint (no inventory.img)",
            flag()
        )));
    }
    let file = path.join(DESCRIPTORS);
    let bytes = std::fs::read(&file).ctx(|| format!("{}: {}", flag(), file.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Message(format!("{}: {e}", file.display())))
}

/// Each of the init's stdio that was a pipe or an external file is
/// replaced by berth's own fd of that number (criu inherits berth's
/// stdio). CRIU seeks an external file to where it was, which a pipe or
/// a terminal refuses: such an fd of berth's is given as /dev/null
/// instead, returned to be kept open for CRIU.
fn stdio_inherits(descriptors: &[String]) -> Result<(Vec<InheritFd>, Vec<OwnedFd>)> {
    let mut inherits = Vec::new();
    let mut opened = Vec::new();
    for (fd, key) in descriptors.iter().enumerate().take(3) {
        let fd = fd as i32;
        if key.starts_with("pipe:") {
            inherits.push(InheritFd {
                key: key.clone(),
                fd,
            });
        } else if key.starts_with("file[") {
            // SAFETY: 0, 1 and 2 stay open for as long as berth runs.
            let ours = unsafe { BorrowedFd::borrow_raw(fd) };
            let seekable = rustix::fs::seek(ours, rustix::fs::SeekFrom::Current(0)).is_ok();
            let fd = if seekable {
                fd
            } else {
                tracing::warn!(
                    "the restored init's fd {fd} was a file; berth's is not seekable, so it gets /dev/null"
                );
                let null = rustix::fs::open(
                    "/dev/null",
                    rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .ctx(|| "open /dev/null")?;
                let raw = null.as_raw_fd();
                opened.push(null);
                raw
            };
            inherits.push(InheritFd {
                key: key.clone(),
                fd,
            });
        }
    }
    Ok((inherits, opened))
}

/// The namespaces the spec joins by path: network and pid ones are handed
/// to CRIU by fd (they were external at the dump), the others joined.
struct NamespaceFds {
    external: Vec<(&'static str, OwnedFd)>,
    joins: Vec<JoinNamespace>,
}

impl NamespaceFds {
    fn open(spec: &oci_spec::runtime::Spec) -> Result<NamespaceFds> {
        let mut fds = NamespaceFds {
            external: Vec::new(),
            joins: Vec::new(),
        };
        for (typ, path) in checkpoint::joined_namespaces(spec) {
            let field = || format!("linux.namespaces {typ}: {}", path.display());
            if let Some(key) = checkpoint::external_ns_key(typ) {
                let fd = rustix::fs::open(
                    &path,
                    rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .ctx(field)?;
                fds.external.push((key, fd));
            } else if typ == LinuxNamespaceType::Cgroup {
                return Err(Error::spec(
                    field(),
                    "CRIU cannot restore into a cgroup namespace given by path",
                ));
            } else {
                fds.joins.push(JoinNamespace {
                    ns: checkpoint::ns_name(typ).into(),
                    ns_file: path.to_string_lossy().into_owned(),
                });
            }
        }
        Ok(fds)
    }

    fn inherits(&self) -> Vec<InheritFd> {
        self.external
            .iter()
            .map(|(key, fd)| InheritFd {
                key: (*key).into(),
                fd: fd.as_raw_fd(),
            })
            .collect()
    }
}

/// Binds the rootfs at `at` (CRIU wants its root to be a mount point whose
/// parent is not overmounted), a slave so that nothing berth mounts under
/// it reaches the rootfs while CRIU can still give the restored root the
/// peer group the dumped one was a slave of (it cannot copy that from a
/// private mount).
fn bind_root(rootfs: &Path, at: &Path) -> Result<PathBuf> {
    std::fs::create_dir(at).ctx(|| format!("create {}", at.display()))?;
    let source = crate::sys::open_path(rootfs)?;
    let target = crate::sys::open_path(at)?;
    if let Err(e) = crate::sys::bind(source.as_fd(), target.as_fd(), true) {
        let _ = std::fs::remove_dir(at);
        return Err(e.within(format!("bind the rootfs at {}", at.display())));
    }
    crate::sys::set_propagation(&at.to_string_lossy(), libc::MS_SLAVE | libc::MS_REC)?;
    Ok(at.to_path_buf())
}

/// Makes the mount points CRIU mounts on, as `create` made them (a
/// rootfs fresh from an image lacks them), and binds each bind source on
/// its point so that mount points inside it can be made too. Mounts on a
/// tmpfs are left out: CRIU restores a tmpfs with its content.
fn prepare_mount_points(spec: &oci_spec::runtime::Spec, bundle: &Path, root: &Path) -> Result<()> {
    let mounts = spec.mounts().clone().unwrap_or_default();
    let on_tmpfs = |dest: &Path| {
        mounts.iter().any(|m| {
            m.typ().as_deref() == Some("tmpfs")
                && dest.starts_with(m.destination())
                && dest != m.destination()
        })
    };
    let dir = RootDir::open(root).ctx(|| format!("open {}", root.display()))?;
    for (i, m) in mounts.iter().enumerate() {
        let dest = m.destination();
        if m.typ().as_deref() == Some("cgroup") || on_tmpfs(dest) {
            continue;
        }
        let field = || format!("mounts[{i}].destination {:?}", dest);
        let rel = dest.strip_prefix("/").unwrap_or(dest);
        let opts = crate::rootfs::parse_mount_options(m.options().as_deref().unwrap_or_default());
        if !opts.is_bind(m) {
            dir.mkdir_all(rel, 0o755).ctx(field)?;
            continue;
        }
        let source = bundle.join(m.source().clone().unwrap_or_default());
        let point = if source.is_dir() {
            dir.mkdir_all(rel, 0o755).ctx(field)?
        } else {
            if let Some(parent) = rel.parent() {
                dir.mkdir_all(parent, 0o755).ctx(field)?;
            }
            match dir.resolve(rel) {
                Ok(fd) => fd,
                Err(_) => dir.create_file(rel, 0o644).ctx(field)?,
            }
        };
        let source_fd =
            crate::sys::open_path(&source).map_err(|e| e.within(format!("mounts[{i}].source")))?;
        crate::sys::bind(source_fd.as_fd(), point.as_fd(), true).map_err(|e| e.within(field()))?;
    }
    Ok(())
}

/// The external mounts of a restore: each mount point named at the dump
/// mapped to its source now, and "/dev/null" for the masked paths.
fn restore_mounts(
    plan: &create::Plan,
    cgroup: Option<&berth_cgroups::Placement>,
) -> Vec<ExtMountMap> {
    let spec = &plan.bundle.spec;
    let mut maps: Vec<ExtMountMap> =
        checkpoint::external_mounts(spec, &plan.bundle.path, &plan.bundle.rootfs, cgroup)
            .into_iter()
            .map(|m| ExtMountMap {
                key: m.destination,
                val: m.source.to_string_lossy().into_owned(),
            })
            .collect();
    let masks = plan
        .linux
        .masked_paths()
        .as_ref()
        .is_some_and(|p| !p.is_empty());
    if masks {
        maps.push(ExtMountMap {
            key: "/dev/null".into(),
            val: "/dev/null".into(),
        });
    }
    maps
}

/// Where `criu swrk` (now in the container's cgroup) sits in each
/// hierarchy: CRIU puts the restored tasks there.
fn cgroup_roots(criu_pid: i32) -> Result<Vec<CgroupRoot>> {
    let path = format!("/proc/{criu_pid}/cgroup");
    let text = std::fs::read_to_string(&path).ctx(|| format!("read {path}"))?;
    let v1 = text.lines().any(|l| !l.starts_with("0::"));
    let mut roots = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(dir)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            // The cgroup2 line: the only one on a v2 host; on a hybrid one
            // CRIU places the v1 controllers named below.
            if !v1 {
                roots.push(CgroupRoot {
                    ctrl: None,
                    path: dir.into(),
                });
            }
            continue;
        }
        for c in controllers.split(',') {
            roots.push(CgroupRoot {
                ctrl: Some(c.into()),
                path: dir.into(),
            });
        }
    }
    Ok(roots)
}
