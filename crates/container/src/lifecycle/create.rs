//! `create`: from a bundle to an init blocked before the user's program,
//! in four steps: [`plan`] reads and checks everything and makes nothing;
//! [`prepare`] makes what the init needs (state dir, cgroup, exec fifo,
//! console, idmapped mounts), undone if a later step fails; [`spawn`]
//! clones the init and takes it through setup; [`record`] writes the state
//! and lets the init wait for `start`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_cgroups::{CgroupsPath, Host, Manager, Placement};
use oci_spec::runtime::{Hooks, Linux, LinuxResources};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::foreground::ConsoleSocket;
use crate::init::child::Requests;
use crate::init::{self, CgroupSetup, InitConfig, NamespacePlan, Spawned};
use crate::intelrdt::{RdtGroup, Resctrl};
use crate::process::{caps, seccomp};
use crate::rootfs::{devices, BindSource, Entry, RootfsConfig};
use crate::spec::Bundle;
use crate::state::{ContainerDir, OciState, ProcStat, State, Status, Store};
use crate::{hooks, id, Context, Error, Result};

#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    /// Where CDI device specs are read from.
    pub cdi_spec_dirs: crate::cdi::SpecDirs,
    pub console_socket: Option<PathBuf>,
    /// berth stays in the foreground as the console (`run` without
    /// --detach): a terminal's pty master comes back in [`Created`].
    pub foreground: bool,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Socket-activation fds (LISTEN_FDS) at 3.., handed on before the
    /// --preserve-fds ones; the process is told of them as systemd does.
    pub listen_fds: u32,
    /// A unix socket to send the init's pidfd to.
    pub pidfd_socket: Option<PathBuf>,
    /// runc's --rootless: `Some(true)` ignores a cgroup berth may not make
    /// (when the spec sets no limits), `Some(false)` makes cgroups even
    /// when berth is not root; `None` decides by berth's uid.
    pub rootless_cgroups: Option<bool>,
    /// The systemd cgroup driver (`--systemd-cgroup`): the cgroup is a
    /// transient unit that systemd makes, on the user's systemd when berth
    /// runs unprivileged.
    pub systemd_cgroup: bool,
}

/// A created container: its init waits on the exec fifo.
pub struct Created {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// The pty master, when berth is the console.
    pub console: Option<OwnedFd>,
    /// The state dir, still locked, and what it records: `run` starts the
    /// container with them, without reading them back.
    pub(super) dir: ContainerDir,
    pub(super) state: State,
}

pub fn create(store: &Store, id: &str, opts: &CreateOptions) -> Result<Created> {
    let plan = plan(id, opts)?;
    let mut prepared = prepare(store, id, &plan, opts)?;
    let (spawned, state) = spawn(id, &plan, &prepared, opts)?;
    record(&mut prepared, spawned, state, opts)
}

/// What `create` will do, read from the bundle and the host: nothing is
/// made yet.
pub(super) struct Plan {
    pub(super) bundle: Bundle,
    pub(super) linux: Linux,
    pub(super) terminal: bool,
    seccomp: Option<seccomp::Filter>,
    /// The host's cgroup layout, when berth manages cgroups.
    pub(super) host: Option<Host>,
    /// A cgroup berth is not allowed to make is no error (see
    /// [`CreateOptions::rootless_cgroups`]).
    rootless_cgroups: bool,
    /// Whether berth runs in a user namespace (not the initial one).
    berth_in_userns: bool,
    /// Where the cgroup goes, as the chosen driver reads linux.cgroupsPath.
    pub(super) driver: CgroupDriver,
    /// The limits and device rules to write.
    pub(super) resources: LinuxResources,
    namespaces: NamespacePlan,
    /// linux.intelRdt: the resctrl found and the container's groups in it.
    intel_rdt: Option<(Resctrl, RdtGroup)>,
}

impl Plan {
    /// The state of container `id` made from this plan, before its init
    /// (pid 0) is known.
    pub(super) fn state(
        &self,
        id: &str,
        cgroup: Option<Placement>,
        intel_rdt: Option<RdtGroup>,
    ) -> State {
        let spec = &self.bundle.spec;
        State {
            oci_version: spec.version().clone(),
            id: id.to_string(),
            pid: 0,
            pid_start_time: 0,
            bundle: self.bundle.path.clone(),
            rootfs: self.bundle.rootfs.clone(),
            created: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            cgroup,
            intel_rdt,
            config: spec.clone(),
        }
    }

    /// Makes the container's cgroup (the outer error: noting it failed).
    /// It is noted in `dir` first, so that a create or restore killed
    /// while or after making it leaves a cgroup `delete` can find; a
    /// systemd unit, before it starts with the init in it.
    pub(super) fn make_cgroup(
        &self,
        host: &Host,
        id: &str,
        dir: &ContainerDir,
    ) -> Result<berth_cgroups::Result<Box<dyn Manager>>> {
        Ok(match &self.driver {
            CgroupDriver::Cgroupfs(path) => {
                let planned = berth_cgroups::planned(host, path).ctx(|| "cgroups")?;
                dir.write_cgroup_plan(&planned)?;
                berth_cgroups::create(host, path)
            }
            CgroupDriver::Systemd { user } => {
                let cgroup = berth_cgroups::create_systemd(host, &self.systemd_options(id, *user)?);
                if let Ok(cgroup) = &cgroup {
                    dir.write_cgroup_plan(cgroup.placement())?;
                }
                cgroup
            }
        })
    }

    /// What the systemd driver needs to make the container's unit.
    fn systemd_options<'a>(
        &'a self,
        id: &'a str,
        user: bool,
    ) -> Result<berth_cgroups::systemd::Options<'a>> {
        Ok(berth_cgroups::systemd::Options {
            cgroups_path: self
                .linux
                .cgroups_path()
                .as_deref()
                .map(cgroups_path_text)
                .transpose()?,
            id,
            user,
            annotations: self.bundle.spec.annotations().as_ref(),
        })
    }
}

pub(super) fn plan(id: &str, opts: &CreateOptions) -> Result<Plan> {
    id::validate(id)?;
    let mut bundle = Bundle::load(&opts.bundle, &opts.cdi_spec_dirs)?;
    if let Some(process) = bundle.spec.process_mut() {
        caps::drop_unavailable_from(process);
    }
    if opts.listen_fds > 0 {
        if let Some(process) = bundle.spec.process_mut() {
            let mut env = process.env().clone().unwrap_or_default();
            env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
            env.push(format!("LISTEN_FDS={}", opts.listen_fds));
            env.push("LISTEN_PID=1".into());
            process.set_env(Some(env));
        }
    }
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal() == Some(true));
    if terminal && opts.console_socket.is_none() && !opts.foreground {
        return Err(Error::spec(
            "process.terminal",
            "a terminal needs --console-socket to hand the pty to (or `berth run` in the foreground)",
        ));
    }
    let seccomp = linux.seccomp().as_ref().map(seccomp::build).transpose()?;
    check_rootless(&linux)?;
    // berth itself in a user namespace: rootless podman runs it as uid 0
    // of its own.
    let berth_in_userns = crate::sys::userns::running_in_one();
    let rootless_cgroups = opts
        .rootless_cgroups
        .unwrap_or(!rustix::process::geteuid().is_root() || berth_in_userns);
    let driver = if opts.systemd_cgroup {
        // An unprivileged berth, or uid 0 of a user namespace (rootless
        // podman's) unless told it is not rootless: the user's own
        // systemd, over the user bus, as runc decides.
        let user = !rustix::process::geteuid().is_root()
            || (berth_in_userns && opts.rootless_cgroups != Some(false));
        let path = linux
            .cgroups_path()
            .as_deref()
            .map(cgroups_path_text)
            .transpose()?;
        berth_cgroups::systemd::UnitPath::parse(path, id, user).ctx(|| "cgroups")?;
        CgroupDriver::Systemd { user }
    } else {
        CgroupDriver::Cgroupfs(
            CgroupsPath::from_spec(linux.cgroups_path().as_deref(), id).ctx(|| "cgroups")?,
        )
    };
    // An unprivileged berth has a cgroup only through its user's systemd.
    let host = if opts.systemd_cgroup || manages_cgroups(&linux, opts.rootless_cgroups) {
        Some(Host::detect().ctx(|| "cgroups")?)
    } else {
        None
    };
    // A systemd unit is started with the init in it: the clone cannot
    // place the init in a cgroup that does not exist yet.
    let clone_into_cgroup = matches!(host, Some(Host::Unified { .. })) && !opts.systemd_cgroup;
    let namespaces = NamespacePlan::new(&linux, clone_into_cgroup);
    namespaces.check_paths()?;
    let has_net_devices = linux.net_devices().as_ref().is_some_and(|d| !d.is_empty());
    if has_net_devices && namespaces.unshare_flags & libc::CLONE_NEWNET as u64 != 0 {
        return Err(Error::spec(
            "linux.netDevices",
            "berth cannot move network devices into a network namespace made inside a user namespace joined by path",
        ));
    }
    let intel_rdt = match linux.intel_rdt() {
        Some(rdt) => {
            let resctrl = Resctrl::find()?;
            let group = RdtGroup::plan(&resctrl, rdt, id)?;
            Some((resctrl, group))
        }
        None => None,
    };
    Ok(Plan {
        intel_rdt,
        resources: effective_resources(&linux, rootless_cgroups),
        bundle,
        linux,
        terminal,
        seccomp,
        host,
        rootless_cgroups,
        berth_in_userns,
        driver,
        namespaces,
    })
}

impl Plan {
    /// A rootless container goes without a cgroup berth may not make, as
    /// long as the spec sets no limits that would then be lost (runc's
    /// meaning of --rootless).
    fn ignores_cgroup_error(&self, e: &berth_cgroups::Error) -> bool {
        let denied = matches!(
            e.raw_os_error(),
            Some(libc::EACCES | libc::EPERM | libc::EROFS)
        );
        let limits = self
            .linux
            .resources()
            .as_ref()
            .is_some_and(berth_cgroups::resources::has_limits);
        self.rootless_cgroups && denied && !limits
    }
}

pub(super) enum CgroupDriver {
    Cgroupfs(CgroupsPath),
    /// A transient unit; `user`: the user's own systemd (rootless).
    Systemd {
        user: bool,
    },
}

/// What `create` made before the init: removed again on drop unless the
/// container was recorded.
struct Prepared {
    /// The state dir, locked; taken by [`record`].
    dir: Option<ContainerDir>,
    /// The cgroup, empty; taken by [`record`].
    cgroup: Option<Box<dyn Manager>>,
    /// The resctrl groups, empty; taken by [`record`].
    intel_rdt: Option<RdtGroup>,
    exec_fifo: OwnedFd,
    /// A connected --console-socket.
    console: Option<OwnedFd>,
    /// berth's own console, when it is the container's console.
    own_console: Option<ConsoleSocket>,
    /// Bind sources made ready for the init, by mount index.
    bind_sources: Vec<Option<BindSource>>,
    /// A connected --pidfd-socket.
    pidfd_socket: Option<OwnedFd>,
    /// The rootfs of a container without a mount namespace of its own,
    /// whose mounts land on the host's.
    host_rootfs: Option<PathBuf>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(group) = self.intel_rdt.take() {
            if let Err(e) = group.remove() {
                tracing::warn!("remove the resctrl group of the failed container: {e}");
            }
        }
        if let Some(rootfs) = &self.host_rootfs {
            if let Err(e) = crate::rootfs::detach_host_mounts(rootfs) {
                tracing::warn!("detach the mounts of the failed container: {e}");
            }
        }
        if let Some(cgroup) = self.cgroup.take() {
            if let Err(e) = cgroup.destroy() {
                tracing::warn!("remove the cgroup of the failed container: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.remove() {
                tracing::warn!("remove the state of the failed container: {e}");
            }
        }
    }
}

impl Prepared {
    fn dir(&self) -> &ContainerDir {
        self.dir
            .as_ref()
            .expect("the state dir is held until recorded")
    }

    /// The console the init sends the pty master to.
    fn console_for_init(&self) -> Option<BorrowedFd<'_>> {
        self.console
            .as_ref()
            .or(self.own_console.as_ref().map(|c| &c.theirs))
            .map(|c| c.as_fd())
    }
}

fn prepare(store: &Store, id: &str, plan: &Plan, opts: &CreateOptions) -> Result<Prepared> {
    let console = opts
        .console_socket
        .as_deref()
        .filter(|_| plan.terminal)
        .map(connect_console)
        .transpose()?;
    let own_console = (plan.terminal && console.is_none())
        .then(ConsoleSocket::pair)
        .transpose()?;
    let pidfd_socket = opts
        .pidfd_socket
        .as_deref()
        .map(connect_pidfd_socket)
        .transpose()?;
    // Bind sources are made ready while berth is still host root; the init
    // inherits them and only attaches them. (An unprivileged berth can
    // reach no more than its container can.)
    let bind_sources = crate::rootfs::bind_sources(
        &plan.bundle.spec,
        &plan.bundle.path,
        &plan.bundle.rootfs,
        plan.namespaces.in_userns && rustix::process::geteuid().is_root(),
        !plan.namespaces.in_userns && !plan.berth_in_userns,
    )?;
    let dir = store.create(id)?;
    let exec_fifo = match dir.make_exec_fifo().and_then(|()| dir.open_exec_fifo()) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = dir.remove();
            return Err(e);
        }
    };
    // From here on, a failure drops what is made.
    let mut prepared = Prepared {
        dir: Some(dir),
        cgroup: None,
        intel_rdt: None,
        exec_fifo,
        console,
        own_console,
        bind_sources,
        pidfd_socket,
        host_rootfs: (!plan.namespaces.own_mount_ns).then(|| plan.bundle.rootfs.clone()),
    };
    if let Some(host) = &plan.host {
        match plan.make_cgroup(host, id, prepared.dir())? {
            Ok(cgroup) => {
                if let Err(e) = check_cgroup_unused(cgroup.as_ref()) {
                    // The cgroup is someone else's: only what this create
                    // made goes.
                    remove_made(cgroup.placement());
                    return Err(e);
                }
                prepared.cgroup = Some(cgroup);
            }
            Err(e) if plan.ignores_cgroup_error(&e) => tracing::warn!(
                "rootless: the container gets no cgroup of its own ({e}); \
                 its processes stay in berth's"
            ),
            Err(e) => return Err(e).ctx(|| "cgroups"),
        }
    }
    if let (Some((resctrl, group)), Some(rdt)) = (&plan.intel_rdt, plan.linux.intel_rdt()) {
        group.make(resctrl, &crate::intelrdt::schemata(rdt))?;
        prepared.intel_rdt = Some(group.clone());
    }
    Ok(prepared)
}

/// Removes the cgroup directories that creating it made, deepest first.
fn remove_made(placement: &Placement) {
    let (Placement::V1 { created, .. } | Placement::V2 { created, .. }) = placement;
    for dir in created.iter().rev() {
        if let Err(e) = std::fs::remove_dir(dir) {
            tracing::warn!("remove {}: {e}", dir.display());
        }
    }
}

/// Refuses a cgroup that holds processes already or is frozen (the init
/// would freeze in it, and create hang), as runc does. One that does not
/// exist yet is unused: under the systemd driver the unit's cgroup appears
/// only when systemd starts the unit with the init in it.
fn check_cgroup_unused(cgroup: &dyn Manager) -> Result<()> {
    if !cgroup.placement().exists() {
        return Ok(());
    }
    let pids = cgroup
        .procs()
        .ctx(|| "cgroups: list the processes of the container's cgroup")?;
    if !pids.is_empty() {
        return Err(Error::spec(
            "linux.cgroupsPath",
            format!(
                "container's cgroup is not empty: {} process(es) found",
                pids.len()
            ),
        ));
    }
    if berth_cgroups::is_frozen(cgroup.placement()) {
        return Err(Error::spec(
            "linux.cgroupsPath",
            "container's cgroup unexpectedly frozen (thaw it, or name another cgroup)",
        ));
    }
    Ok(())
}

/// Clones the init and takes it through setup; returns it ready, with the
/// state to record.
fn spawn(
    id: &str,
    plan: &Plan,
    prepared: &Prepared,
    opts: &CreateOptions,
) -> Result<(Spawned, State)> {
    let spec = &plan.bundle.spec;
    let cgroup = prepared.cgroup.as_deref();
    let placement = cgroup.map(|c| c.placement().clone());
    let cfg = InitConfig {
        bundle: &plan.bundle,
        plan: &plan.namespaces,
        rootfs: RootfsConfig {
            spec,
            rootfs: &plan.bundle.rootfs,
            bundle: &plan.bundle.path,
            own_mount_ns: plan.namespaces.own_mount_ns,
            // No device node can be made in berth's own namespace either.
            in_userns: plan.namespaces.in_userns || plan.berth_in_userns,
            has_cgroupns: plan.namespaces.has_cgroupns,
            cgroup: placement.as_ref(),
            entry: match (plan.namespaces.own_mount_ns, opts.no_pivot) {
                (false, _) => Entry::Chroot,
                (true, true) => Entry::MoveAndChroot,
                (true, false) => Entry::Pivot,
            },
            bind_sources: &prepared.bind_sources,
        },
        keyring: (!opts.no_new_keyring).then_some(id),
        preserve_fds: opts.listen_fds + opts.preserve_fds,
        console: prepared.console_for_init(),
        exec_fifo: prepared.exec_fifo.as_fd(),
        seccomp: plan.seccomp.as_ref(),
        intel_rdt: prepared.intel_rdt.as_ref(),
    };
    let state = plan.state(id, placement.clone(), prepared.intel_rdt.clone());
    let mut requests = CreateRequests {
        state: &state,
        hooks: spec.hooks().clone().unwrap_or_default(),
        linux: &plan.linux,
    };
    let spawned = init::spawn(
        &cfg,
        &plan.linux,
        cgroup.map(|manager| CgroupSetup {
            manager,
            resources: &plan.resources,
        }),
        &mut requests,
    )?;
    Ok((spawned, state))
}

/// What berth does on the init's requests during `create`.
struct CreateRequests<'a> {
    state: &'a State,
    hooks: Hooks,
    linux: &'a Linux,
}

impl CreateRequests<'_> {
    fn state_for(&self, pid: i32, status: Status) -> OciState {
        let mut state = OciState::for_hooks(self.state, status);
        state.pid = pid;
        state
    }
}

impl Requests for CreateRequests<'_> {
    fn create_hooks(&mut self, pid: i32) -> Result<OciState> {
        let state = self.state_for(pid, Status::Created);
        let list = |hooks: &Option<Vec<_>>| hooks.clone().unwrap_or_default();
        hooks::run_all("prestart", &list(self.hooks.prestart()), &state)?;
        hooks::run_all("createRuntime", &list(self.hooks.create_runtime()), &state)?;
        Ok(state)
    }

    fn seccomp_listener(&mut self, pid: i32, listener: BorrowedFd) -> Result<()> {
        let profile = self
            .linux
            .seccomp()
            .as_ref()
            .expect("a listener comes from a filter");
        seccomp::hand_listener(
            profile,
            listener,
            pid,
            &self.state_for(pid, Status::Creating),
        )
    }
}

/// Records the container (state, pid file) and lets the init wait for
/// `start`; on failure the init is killed and what `prepare` made removed.
fn record(
    prepared: &mut Prepared,
    spawned: Spawned,
    mut state: State,
    opts: &CreateOptions,
) -> Result<Created> {
    let pid = spawned.init.pid();
    state.pid = pid;
    state.pid_start_time = ProcStat::read(pid)
        .ok_or_else(|| Error::Message("the container's init vanished".into()))?
        .start_time;
    prepared.dir().write_state(&state)?;
    if let Some(path) = &opts.pid_file {
        write_pid_file(path, pid)?;
    }
    if let Some(socket) = &prepared.pidfd_socket {
        send_pidfd(socket, spawned.init.pidfd(), "standard")?;
    }
    spawned.commit(OciState::for_hooks(&state, Status::Created))?;
    // The init sent the pty master before it reported ready.
    let console = prepared
        .own_console
        .as_ref()
        .map(ConsoleSocket::receive)
        .transpose()?;
    // Recorded: keep the init, the cgroup, the state dir and the mounts.
    let (pid, pidfd) = spawned.release();
    prepared.cgroup = None;
    prepared.intel_rdt = None;
    prepared.host_rootfs = None;
    let dir = prepared
        .dir
        .take()
        .expect("the state dir is held until recorded");
    Ok(Created {
        pid,
        pidfd,
        console,
        dir,
        state,
    })
}

/// The device rules berth writes: the spec's resources.devices, then the
/// default ones (as runc). A linux.devices node gets no rule of its own:
/// runc allows only what resources.devices allows, and CDI adds its rules
/// there. A rootless container gets none: the device cgroup (on v2 an eBPF
/// program) needs privileges of the initial user namespace, and runc
/// ignores its failure there; without CAP_MKNOD on the host and with the
/// devices' own permissions, the user reaches no more than before.
fn effective_resources(linux: &Linux, rootless_cgroups: bool) -> LinuxResources {
    let mut resources = linux.resources().clone().unwrap_or_default();
    if rootless_cgroups {
        if resources.devices().as_ref().is_some_and(|d| !d.is_empty()) {
            tracing::debug!("rootless: linux.resources.devices left to the devices' permissions");
        }
        resources.set_devices(None);
        return resources;
    }
    let mut rules = resources.devices().clone().unwrap_or_default();
    rules.extend(devices::default_cgroup_rules(
        linux.devices().as_deref().unwrap_or_default(),
    ));
    resources.set_devices(Some(rules));
    resources
}

pub(super) fn connect_console(path: &Path) -> Result<OwnedFd> {
    connect_unix("--console-socket", path)
}

/// Connects to --pidfd-socket before anything is made, so that a bad path
/// fails early.
pub(super) fn connect_pidfd_socket(path: &Path) -> Result<OwnedFd> {
    connect_unix("--pidfd-socket", path)
}

fn connect_unix(flag: &str, path: &Path) -> Result<OwnedFd> {
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .ctx(|| format!("{flag}: socket"))?;
    let addr = SocketAddrUnix::new(path).ctx(|| format!("{flag} {}", path.display()))?;
    rustix::net::connect(&socket, &addr).ctx(|| format!("{flag} {}: connect", path.display()))?;
    Ok(socket)
}

/// Sends a process's pidfd over --pidfd-socket as runc does: one
/// SCM_RIGHTS message whose data names the kind of process ("standard" for
/// an init, "setns" for an exec'd one).
pub(super) fn send_pidfd(socket: &OwnedFd, pidfd: BorrowedFd, kind: &str) -> Result<()> {
    crate::sys::send_fd(socket.as_fd(), pidfd, kind.as_bytes())
        .ctx(|| "--pidfd-socket: send the pidfd")
}

/// Writes the pid file atomically, as engines read it as soon as `create`
/// returns.
pub(super) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).ctx(|| format!("--pid-file {}", path.display()))?;
    crate::atomic_file::write(&path, pid.to_string().as_bytes())
        .ctx(|| format!("--pid-file {}", path.display()))
}

/// linux.cgroupsPath as the text the systemd driver reads.
fn cgroups_path_text(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| {
        Error::spec(
            "linux.cgroupsPath",
            format!("{path:?} is not UTF-8 (systemd unit names are ASCII)"),
        )
    })
}

/// Whether this berth can manage cgroups: as root, or when told to by
/// `--rootless false`. Otherwise an unprivileged berth (rootless) has no
/// cgroup delegated to it on the hosts it supports, and says so when the
/// spec asks for limits.
fn manages_cgroups(linux: &Linux, rootless: Option<bool>) -> bool {
    if rustix::process::geteuid().is_root() || rootless == Some(false) {
        return true;
    }
    if linux
        .resources()
        .as_ref()
        .is_some_and(berth_cgroups::resources::has_limits)
    {
        tracing::warn!(
            "rootless: berth runs as uid {} and manages no cgroups (none is delegated to it); \
             linux.resources are not applied",
            rustix::process::geteuid().as_raw()
        );
    }
    false
}

/// An unprivileged berth can only make containers in a user namespace.
fn check_rootless(linux: &Linux) -> Result<()> {
    let euid = rustix::process::geteuid();
    let has_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User);
    if euid.is_root() || has_userns {
        return Ok(());
    }
    Err(Error::spec(
        "linux.namespaces",
        format!(
            "berth runs as uid {} (rootless), which needs a user namespace; `berth spec --rootless` writes such a config",
            euid.as_raw()
        ),
    ))
}
