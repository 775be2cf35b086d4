//! `create`: from a bundle to an init blocked before the user's program,
//! in four steps: [`plan`] reads and checks everything and makes nothing;
//! [`prepare`] makes what the init needs (state dir, cgroup, exec fifo,
//! console, idmapped mounts), undone if a later step fails; [`spawn`]
//! clones the init and takes it through setup; [`record`] writes the state
//! and lets the init wait for `start`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_cgroups::{CgroupsPath, Host, Manager};
use oci_spec::runtime::{Hooks, Linux, LinuxDeviceCgroup, LinuxResources};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::foreground::ConsoleSocket;
use crate::init::child::Requests;
use crate::init::{self, CgroupSetup, InitConfig, NamespacePlan, Spawned};
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
    pub(super) cgroups_path: CgroupsPath,
    /// The limits and device rules to write.
    pub(super) resources: LinuxResources,
    namespaces: NamespacePlan,
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
    let host = if manages_cgroups(&linux) {
        Some(Host::detect().ctx(|| "cgroups")?)
    } else {
        None
    };
    let cgroups_path =
        CgroupsPath::from_spec(linux.cgroups_path().as_deref(), id).ctx(|| "cgroups")?;
    let namespaces = NamespacePlan::new(&linux, matches!(host, Some(Host::Unified { .. })));
    namespaces.check_paths()?;
    Ok(Plan {
        resources: effective_resources(&linux),
        bundle,
        linux,
        terminal,
        seccomp,
        host,
        cgroups_path,
        namespaces,
    })
}

/// What `create` made before the init: removed again on drop unless the
/// container was recorded.
struct Prepared {
    /// The state dir, locked; taken by [`record`].
    dir: Option<ContainerDir>,
    /// The cgroup, empty; taken by [`record`].
    cgroup: Option<Box<dyn Manager>>,
    exec_fifo: OwnedFd,
    /// A connected --console-socket.
    console: Option<OwnedFd>,
    /// berth's own console, when it is the container's console.
    own_console: Option<ConsoleSocket>,
    /// Bind sources made ready for the init, by mount index.
    bind_sources: Vec<Option<BindSource>>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
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
    // Bind sources are made ready while berth is still host root; the init
    // inherits them and only attaches them. (An unprivileged berth can
    // reach no more than its container can.)
    let bind_sources = crate::rootfs::bind_sources(
        &plan.bundle.spec,
        &plan.bundle.path,
        plan.namespaces.in_userns && rustix::process::geteuid().is_root(),
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
        exec_fifo,
        console,
        own_console,
        bind_sources,
    };
    if let Some(host) = &plan.host {
        prepared.cgroup = Some(berth_cgroups::create(host, &plan.cgroups_path).ctx(|| "cgroups")?);
    }
    Ok(prepared)
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
            in_userns: plan.namespaces.in_userns,
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
    };
    let state = State {
        oci_version: spec.version().clone(),
        id: id.to_string(),
        pid: 0,
        pid_start_time: 0,
        bundle: plan.bundle.path.clone(),
        rootfs: plan.bundle.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup: placement.clone(),
        config: spec.clone(),
    };
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
    spawned.commit(OciState::for_hooks(&state, Status::Created))?;
    // The init sent the pty master before it reported ready.
    let console = prepared
        .own_console
        .as_ref()
        .map(ConsoleSocket::receive)
        .transpose()?;
    // Recorded: keep the init, the cgroup and the state dir.
    let (pid, pidfd) = spawned.release();
    prepared.cgroup = None;
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

/// The device rules berth writes: the spec's, then an allow rule for each
/// linux.devices node and for the default devices (as runc does).
fn effective_resources(linux: &Linux) -> LinuxResources {
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut rules = resources.devices().clone().unwrap_or_default();
    // A rule the spec gives for a device's numbers (CDI's permissions, say)
    // stands; other created devices are allowed in full.
    let spelled_out = |r: &LinuxDeviceCgroup| {
        rules.iter().any(|given| {
            given.typ() == r.typ() && given.major() == r.major() && given.minor() == r.minor()
        })
    };
    let implied: Vec<LinuxDeviceCgroup> = linux
        .devices()
        .iter()
        .flatten()
        .filter_map(devices::cgroup_rule_for)
        .filter(|r| !spelled_out(r))
        .collect();
    rules.extend(implied);
    rules.extend(devices::default_cgroup_rules());
    resources.set_devices(Some(rules));
    resources
}

pub(super) fn connect_console(path: &Path) -> Result<OwnedFd> {
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .ctx(|| "--console-socket: socket")?;
    let addr = SocketAddrUnix::new(path).ctx(|| format!("--console-socket {}", path.display()))?;
    rustix::net::connect(&socket, &addr)
        .ctx(|| format!("--console-socket {}: connect", path.display()))?;
    Ok(socket)
}

/// Writes the pid file atomically, as engines read it as soon as `create`
/// returns.
pub(super) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).ctx(|| format!("--pid-file {}", path.display()))?;
    crate::atomic_file::write(&path, pid.to_string().as_bytes())
        .ctx(|| format!("--pid-file {}", path.display()))
}

/// Whether this berth can manage cgroups: as root. An unprivileged berth
/// (rootless) has no cgroup delegated to it on the hosts it supports, and
/// says so when the spec asks for limits.
fn manages_cgroups(linux: &Linux) -> bool {
    if rustix::process::geteuid().is_root() {
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
