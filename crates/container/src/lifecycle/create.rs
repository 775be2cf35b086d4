//! `create`: from a bundle to an init blocked before the user's program.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_cgroups::{CgroupsPath, Host, Manager};
use oci_spec::runtime::{Linux, LinuxDeviceCgroup, LinuxResources};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::foreground::ConsoleSocket;
use super::OciState;
use crate::init::{self, CgroupSetup, InitConfig, NamespacePlan};
use crate::process::seccomp;
use crate::rootfs::{devices, Entry};
use crate::spec::Bundle;
use crate::state::{ContainerDir, ProcStat, State, Status, Store};
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
    /// Whether the init is this process's child (or, after a second fork,
    /// was reparented to it).
    pub is_child: bool,
    /// The pty master, when berth is the console.
    pub console: Option<OwnedFd>,
    /// The state dir, still locked, and what it records: `run` starts the
    /// container with them, without reading them back.
    pub(super) dir: ContainerDir,
    pub(super) state: State,
}

/// What a failed create must undo, undone on drop unless disarmed.
struct Rollback {
    dir: Option<ContainerDir>,
    cgroup: Option<Box<dyn Manager>>,
}

impl Drop for Rollback {
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
    let mut limits =
        serde_json::to_value(linux.resources().clone().unwrap_or_default()).unwrap_or_default();
    if let Some(map) = limits.as_object_mut() {
        map.remove("devices");
        map.retain(|_, v| !v.is_null());
    }
    if limits.as_object().is_some_and(|m| !m.is_empty()) {
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

pub fn create(store: &Store, id: &str, opts: &CreateOptions) -> Result<Created> {
    id::validate(id)?;
    let mut bundle = Bundle::load(&opts.bundle, &opts.cdi_spec_dirs)?;
    if opts.listen_fds > 0 {
        if let Some(process) = bundle.spec.process_mut() {
            let mut env = process.env().clone().unwrap_or_default();
            env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
            env.push(format!("LISTEN_FDS={}", opts.listen_fds));
            env.push("LISTEN_PID=1".into());
            process.set_env(Some(env));
        }
    }
    let spec = &bundle.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    let terminal = spec
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
    let plan = NamespacePlan::new(&linux, matches!(host, Some(Host::Unified { .. })));
    init::namespaces::check_paths(&plan)?;
    let console = opts
        .console_socket
        .as_deref()
        .filter(|_| terminal)
        .map(connect_console)
        .transpose()?;
    let own_console = (terminal && console.is_none())
        .then(ConsoleSocket::pair)
        .transpose()?;

    // Idmapped mounts are made while berth is still host root; the init
    // inherits them and only attaches them.
    let idmaps = crate::rootfs::idmapped_trees(spec, &bundle.path)?;
    let dir = store.create(id)?;
    let mut rollback = Rollback {
        dir: Some(dir),
        cgroup: None,
    };
    if let Some(host) = &host {
        let cgroup = berth_cgroups::create(host, &cgroups_path).ctx(|| "cgroups")?;
        rollback.cgroup = Some(cgroup);
    }
    let resources = effective_resources(&linux);
    let dir = rollback.dir.as_ref().expect("the state dir is held");
    dir.make_exec_fifo()?;
    let fifo = dir.open_exec_fifo()?;
    let cgroup = rollback.cgroup.as_deref();
    let placement = cgroup.map(|c| c.placement().clone());
    let cfg = InitConfig {
        bundle: &bundle,
        plan: &plan,
        cgroup: placement.as_ref(),
        entry: match (plan.own_mount_ns, opts.no_pivot) {
            (false, _) => Entry::Chroot,
            (true, true) => Entry::MoveAndChroot,
            (true, false) => Entry::Pivot,
        },
        keyring: (!opts.no_new_keyring).then_some(id),
        preserve_fds: opts.listen_fds + opts.preserve_fds,
        console: console
            .as_ref()
            .or(own_console.as_ref().map(|c| &c.theirs))
            .map(|c| c.as_fd()),
        exec_fifo: fifo.as_fd(),
        seccomp: seccomp.as_ref(),
        idmaps: &idmaps,
    };
    let mut state = State {
        oci_version: spec.version().clone(),
        id: id.to_string(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.path.clone(),
        rootfs: bundle.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        cgroup: placement.clone(),
        config: spec.clone(),
    };
    let hooks = spec.hooks().clone().unwrap_or_default();
    let spawned = init::spawn(
        &cfg,
        &linux,
        cgroup.map(|manager| CgroupSetup {
            manager,
            resources: &resources,
        }),
        |pid| {
            let mut s = state.clone();
            s.pid = pid;
            let json = OciState::for_hooks(&s, Status::Created);
            hooks::run_all(
                "prestart",
                hooks.prestart().as_deref().unwrap_or_default(),
                &json,
            )?;
            hooks::run_all(
                "createRuntime",
                hooks.create_runtime().as_deref().unwrap_or_default(),
                &json,
            )?;
            Ok(json)
        },
        |pid, listener| {
            let mut s = state.clone();
            s.pid = pid;
            let json = serde_json::from_str(&OciState::for_hooks(&s, Status::Creating))
                .expect("valid JSON");
            let profile = linux
                .seccomp()
                .as_ref()
                .expect("a listener comes from a filter");
            seccomp::hand_listener(profile, listener, pid, json)
        },
    )?;
    let mut record = || -> Result<()> {
        state.pid = spawned.pid;
        state.pid_start_time = ProcStat::read(spawned.pid)
            .ok_or_else(|| Error::Message("the container's init vanished".into()))?
            .start_time;
        dir.write_state(&state)?;
        if let Some(path) = &opts.pid_file {
            write_pid_file(path, spawned.pid)?;
        }
        spawned.commit(OciState::for_hooks(&state, Status::Created))
    };
    if let Err(e) = record() {
        let _ = rustix::process::pidfd_send_signal(&spawned.pidfd, rustix::process::Signal::KILL);
        if let Some(pid) = rustix::process::Pid::from_raw(spawned.pid) {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
        }
        return Err(e);
    }
    // Success: keep the cgroup and the state dir.
    rollback.cgroup = None;
    let dir = rollback.dir.take().expect("the state dir is held");
    // The init sent the pty master before it reported ready.
    let console = own_console.map(|c| c.receive()).transpose()?;
    Ok(Created {
        pid: spawned.pid,
        pidfd: spawned.pidfd,
        is_child: spawned.is_child,
        console,
        dir,
        state,
    })
}
