//! `exec`: another process in a running container, in four steps:
//! [`plan`] reads the container's state and the process to run; [`prepare`]
//! readies berth (console, signals, the container's pid and time
//! namespaces, which only children enter); [`spawn`] clones the child,
//! which joins the rest of the container's namespaces through the init's
//! pidfd in one setns(2), enters the container's cgroup and sets itself up
//! as the spec says before it execs; [`record`] writes the pid file and, in
//! the foreground, waits for the process.

use std::convert::Infallible;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use berth_cgroups::{Manager, SubCgroup};
use oci_spec::runtime::{Capabilities, Capability, Linux, LinuxNamespaceType, Process};

use super::foreground::{ConsoleSocket, Foreground};
use crate::init::channel::{Channel, FromChild, ToChild};
use crate::init::child::{self, Outcome, Requests};
use crate::process::setup::{self, ProcessContext};
use crate::process::{caps, procfs, sched, seccomp, terminal};
use crate::state::{is_alive, OciState, State, Status, Store};
use crate::sys::{namespace, Child};
use crate::{Context, Error, Result};

/// The process `exec` runs, as the command line describes it.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// A process.json: used as it is, the other fields are ignored.
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub cwd: Option<PathBuf>,
    /// KEY=value pairs added to (or replacing in) the container's env.
    pub env: Vec<String>,
    /// uid[:gid]
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    /// Capabilities added to the container's.
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub request: ExecRequest,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// Sub-cgroups of the container's (see [`SubCgroup::parse`]).
    pub cgroup: Vec<String>,
    /// Run in a paused container: the process waits until it is resumed.
    pub ignore_paused: bool,
    /// A unix socket to send the process's pidfd to once it runs.
    pub pidfd_socket: Option<PathBuf>,
}

/// The process to run: the file's, or the container's with the request's
/// changes.
fn build_process(state: &State, request: &ExecRequest) -> Result<Process> {
    if let Some(path) = &request.process_file {
        let bytes = std::fs::read(path).ctx(|| format!("--process {}", path.display()))?;
        let mut value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::spec(format!("--process {}", path.display()), e.to_string()))?;
        // A process without `user` runs as root, as runc's does.
        if let Some(object) = value.as_object_mut() {
            object
                .entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        crate::spec::drop_unknown_capabilities(&mut value);
        return serde_path_to_error::deserialize(value).map_err(|e| {
            Error::spec(
                format!("--process {}: {}", path.display(), e.path()),
                e.into_inner().to_string(),
            )
        });
    }
    let mut p = state.config.process().clone().ok_or_else(|| {
        Error::spec(
            "process",
            "the container has no process to take defaults from",
        )
    })?;
    if request.args.is_empty() {
        return Err(Error::Message("exec: no command given".into()));
    }
    p.set_args(Some(request.args.clone()));
    p.set_terminal(Some(request.tty));
    if let Some(cwd) = &request.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for var in &request.env {
        let key = var.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(var.clone());
    }
    p.set_env(Some(env));
    if let Some(user) = &request.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let parse = |s: &str, what: &str| {
            s.parse::<u32>().map_err(|_| {
                Error::Message(format!("--user {user:?}: {what} {s:?} is not a number"))
            })
        };
        p.user_mut().set_uid(parse(uid, "uid")?);
        if let Some(gid) = gid {
            p.user_mut().set_gid(parse(gid, "gid")?);
        }
    }
    if !request.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(request.additional_gids.clone()));
    }
    if !request.caps.is_empty() {
        let added: Capabilities = request
            .caps
            .iter()
            .map(|c| {
                serde_json::from_value::<Capability>(serde_json::Value::String(c.clone()))
                    .map_err(|_| Error::Message(format!("--cap {c:?} is not a capability")))
            })
            .collect::<Result<_>>()?;
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let extend = |set: &Option<Capabilities>| -> Option<Capabilities> {
            Some(
                set.clone()
                    .unwrap_or_default()
                    .union(&added)
                    .copied()
                    .collect(),
            )
        };
        caps.set_bounding(extend(caps.bounding()));
        caps.set_effective(extend(caps.effective()));
        caps.set_permitted(extend(caps.permitted()));
        // An ambient capability also needs to be inheritable, which --cap
        // does not make it: as in runc, it is added to the ambient set only
        // when the container's process has an inheritable set.
        if caps.inheritable().is_some() {
            caps.set_ambient(extend(caps.ambient()));
        }
        p.set_capabilities(Some(caps));
    }
    if request.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &request.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &request.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    Ok(p)
}

fn namespace_flags(linux: &Linux, types: &[LinuxNamespaceType]) -> u32 {
    // The CLONE_NEW* flags all fit setns's 32 bits.
    let flag = |t: LinuxNamespaceType| namespace::clone_flag(t) as u32;
    linux
        .namespaces()
        .iter()
        .flatten()
        .map(|n| n.typ())
        .filter(|t| types.contains(t))
        .fold(0, |acc, t| acc | flag(t))
}

/// Runs the process in the container. Detached, returns 0 once it runs;
/// otherwise its exit status.
pub fn exec(store: &Store, id: &str, opts: &ExecOptions) -> Result<i32> {
    let plan = plan(store, id, opts)?;
    let prepared = prepare(&plan, opts)?;
    let child = spawn(&plan, &prepared, opts)?;
    record(child, prepared, opts)
}

/// What `exec` will do: the container, the process, and where it goes.
struct Plan {
    state: State,
    process: Process,
    linux: Linux,
    seccomp: Option<seccomp::Filter>,
    init_pidfd: OwnedFd,
    cgroup: Option<Box<dyn Manager>>,
    sub_cgroup: Option<SubCgroup>,
}

fn plan(store: &Store, id: &str, opts: &ExecOptions) -> Result<Plan> {
    let container = store.load(id)?;
    let status = container.status();
    let state = match (container.state, status) {
        (Some(state), Status::Created | Status::Running) => state,
        (Some(state), Status::Paused) if opts.ignore_paused => state,
        (_, Status::Paused) => {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                message: "cannot exec in a paused container (use --ignore-paused to override)"
                    .into(),
            })
        }
        _ => return Err(stopped(id, status)),
    };
    let mut process = build_process(&state, &opts.request)?;
    crate::spec::validate_process(&process)?;
    caps::drop_unavailable_from(&mut process);
    if process.terminal() == Some(true) && opts.console_socket.is_none() && opts.detach {
        return Err(Error::Message(
            "exec --tty --detach needs --console-socket to hand the pty to".into(),
        ));
    }
    let linux = state.config.linux().clone().unwrap_or_default();
    let seccomp = linux.seccomp().as_ref().map(seccomp::build).transpose()?;
    let cgroup = state.cgroup.clone().map(berth_cgroups::open);
    let sub_cgroup =
        Some(SubCgroup::parse(&opts.cgroup).ctx(|| "exec")?).filter(|sub| !sub.is_empty());
    if let (Some(cgroup), Some(sub)) = (&cgroup, &sub_cgroup) {
        // A bad --cgroup is refused before anything runs.
        cgroup.placement().dirs_for(Some(sub)).ctx(|| "exec")?;
    } else if sub_cgroup.is_some() {
        return Err(Error::Message(format!(
            "--cgroup: container {id:?} has no cgroup of its own"
        )));
    }
    let init = rustix::process::Pid::from_raw(state.pid)
        .ok_or_else(|| Error::Message(format!("bad init pid {}", state.pid)))?;
    let init_pidfd = rustix::process::pidfd_open(init, rustix::process::PidfdFlags::empty())
        .ctx(|| format!("pidfd_open of the init ({})", state.pid))?;
    if !is_alive(state.pid, state.pid_start_time) {
        return Err(stopped(id, Status::Stopped));
    }
    Ok(Plan {
        state,
        process,
        linux,
        seccomp,
        init_pidfd,
        cgroup,
        sub_cgroup,
    })
}

fn stopped(id: &str, status: Status) -> Error {
    Error::WrongState {
        id: id.into(),
        status: status.to_string(),
        message: "cannot exec in a stopped container (exec needs a created or running one)".into(),
    }
}

/// berth readied for the clone: what the child will inherit.
struct Prepared {
    /// A connected --console-socket.
    console: Option<OwnedFd>,
    /// berth's own console, when it is the process's console.
    own_console: Option<ConsoleSocket>,
    /// Signals taken from before the clone, in the foreground.
    foreground: Option<Foreground>,
    /// berth joined the container's user namespace (an unprivileged berth).
    joined_user: bool,
    setgroups_allowed: bool,
    /// CLONE_INTO_CGROUP's target, on cgroup v2.
    clone_into: Option<OwnedFd>,
    /// A connected --pidfd-socket.
    pidfd_socket: Option<OwnedFd>,
}

fn prepare(plan: &Plan, opts: &ExecOptions) -> Result<Prepared> {
    let terminal = plan.process.terminal() == Some(true);
    let console = match (&opts.console_socket, terminal) {
        (Some(path), true) => Some(super::create::connect_console(path)?),
        _ => None,
    };
    let own_console = (terminal && console.is_none())
        .then(ConsoleSocket::pair)
        .transpose()?;
    let pidfd_socket = opts
        .pidfd_socket
        .as_deref()
        .map(super::create::connect_pidfd_socket)
        .transpose()?;
    let foreground = if opts.detach {
        None
    } else {
        Some(Foreground::block_signals()?)
    };
    if let Some(cpus) = plan
        .process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().clone())
    {
        sched::set_affinity(&cpus)?;
    }
    // While a copy of berth runs inside the container, nothing there may
    // open it through /proc/<pid>/exe (CVE-2019-5736): not dumpable.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .ctx(|| "PR_SET_DUMPABLE")?;
    // Only children enter a pid or time namespace: join those first. An
    // unprivileged berth may only do so from inside the container's user
    // namespace (it has nothing left to do that needs the host's).
    let joined_user = !rustix::process::geteuid().is_root();
    let mut first = vec![LinuxNamespaceType::Pid, LinuxNamespaceType::Time];
    if joined_user {
        first.push(LinuxNamespaceType::User);
    }
    namespace::join_all_of(
        plan.init_pidfd.as_fd(),
        namespace_flags(&plan.linux, &first),
    )?;
    // A user namespace with setgroups denied (a rootless container's)
    // takes no setgroups(2).
    let setgroups_allowed = std::fs::read_to_string(format!("/proc/{}/setgroups", plan.state.pid))
        .map_or(true, |s| s.trim() != "deny");
    let clone_into = match &plan.cgroup {
        Some(cgroup) => cgroup
            .clone_into_fd(plan.sub_cgroup.as_ref())
            .ctx(|| "exec --cgroup")?,
        None => None,
    };
    Ok(Prepared {
        console,
        own_console,
        foreground,
        joined_user,
        setgroups_allowed,
        clone_into,
        pidfd_socket,
    })
}

/// Clones the child and takes it through its setup, until it has exec'd
/// the program.
fn spawn(plan: &Plan, prepared: &Prepared, opts: &ExecOptions) -> Result<Child> {
    let body = ExecChild {
        process: &plan.process,
        linux: &plan.linux,
        init_pidfd: plan.init_pidfd.as_fd(),
        console: prepared
            .console
            .as_ref()
            .or(prepared.own_console.as_ref().map(|c| &c.theirs))
            .map(|c| c.as_fd()),
        preserve_fds: opts.preserve_fds,
        seccomp: plan.seccomp.as_ref(),
        setgroups_allowed: prepared.setgroups_allowed,
        joined_user: prepared.joined_user,
    };
    // SAFETY: berth is single-threaded.
    let (mut child, chan) = unsafe {
        child::start(0, prepared.clone_into.as_ref().map(|f| f.as_fd()), |chan| {
            body.run(chan)
        })?
    };
    if let (Some(cgroup), None) = (&plan.cgroup, &prepared.clone_into) {
        cgroup
            .join(child.pid(), plan.sub_cgroup.as_ref())
            .ctx(|| "join the container's cgroup")?;
    }
    if let Some(group) = &plan.state.intel_rdt {
        group.add(child.pid())?;
    }
    // Without an execCPUAffinity the process must not keep berth's own
    // (a pinned engine's): all CPUs, as runc does.
    let affinity = plan.process.exec_cpu_affinity().as_ref();
    if affinity.is_none_or(|a| a.initial().is_none() && a.cpu_affinity_final().is_none()) {
        sched::reset_affinity(child.pid());
    }
    tracing::debug!(
        "setns_init: about to exec {:?} once pid {} is set up",
        plan.process.args().as_deref().unwrap_or_default(),
        child.pid()
    );
    chan.send(&ToChild::Go)?;
    let mut requests = ExecRequests {
        state: &plan.state,
        linux: &plan.linux,
    };
    match child::serve(&chan, &mut child, &mut requests)? {
        Outcome::Closed => Ok(child),
        Outcome::Ready => Err(Error::Message(
            "the exec'd process reported ready instead of running".into(),
        )),
    }
}

/// What berth does on the exec'd child's requests.
struct ExecRequests<'a> {
    state: &'a State,
    linux: &'a Linux,
}

impl Requests for ExecRequests<'_> {
    fn create_hooks(&mut self, _pid: i32) -> Result<OciState> {
        Err(Error::Message(
            "an exec'd process asked for the create hooks".into(),
        ))
    }

    fn seccomp_listener(&mut self, pid: i32, listener: BorrowedFd) -> Result<()> {
        let profile = self
            .linux
            .seccomp()
            .as_ref()
            .expect("a listener comes from a filter");
        let state = OciState::for_hooks(self.state, Status::Running);
        seccomp::hand_listener(profile, listener, pid, &state)
    }
}

/// Writes the pid file and, in the foreground, waits for the process.
fn record(child: Child, prepared: Prepared, opts: &ExecOptions) -> Result<i32> {
    if let Some(path) = &opts.pid_file {
        super::create::write_pid_file(path, child.pid())?;
    }
    if let Some(socket) = &prepared.pidfd_socket {
        super::create::send_pidfd(socket, child.pidfd(), "setns")?;
    }
    let console_master = prepared
        .own_console
        .as_ref()
        .map(ConsoleSocket::receive)
        .transpose()?;
    let (pid, pidfd) = child.release();
    match prepared.foreground {
        None => Ok(0),
        Some(foreground) => foreground.wait(pid, pidfd.as_fd(), console_master),
    }
}

/// The forked child's side of `exec`.
struct ExecChild<'a> {
    process: &'a Process,
    linux: &'a Linux,
    init_pidfd: BorrowedFd<'a>,
    console: Option<BorrowedFd<'a>>,
    preserve_fds: u32,
    seccomp: Option<&'a seccomp::Filter>,
    setgroups_allowed: bool,
    /// The parent has joined the user namespace already.
    joined_user: bool,
}

impl ExecChild<'_> {
    /// The child's body, run in the clone (see [`child::start`]).
    fn run(&self, chan: &Channel) -> Result<Infallible> {
        match chan.recv::<ToChild>()? {
            Some(ToChild::Go) => {}
            _ => return Err(Error::Message("berth went away before the exec".into())),
        }
        let others = [
            LinuxNamespaceType::User,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Cgroup,
        ];
        let others: Vec<_> = others
            .into_iter()
            .filter(|t| !(self.joined_user && *t == LinuxNamespaceType::User))
            .collect();
        let flags = namespace_flags(self.linux, &others);
        namespace::join_all_of(self.init_pidfd, flags)?;
        if flags & libc::CLONE_NEWUSER as u32 != 0 || self.joined_user {
            namespace::become_root()?;
        }
        if self.process.terminal() == Some(true) {
            rustix::process::setsid().ctx(|| "setsid")?;
        }
        procfs::set_process_attributes(self.process)?;
        let keep = [chan.raw_fd()];
        let ctx = ProcessContext {
            linux: self.linux,
            preserve_fds: self.preserve_fds,
            keep_fds: &keep,
            seccomp: self.seccomp,
            setgroups_allowed: self.setgroups_allowed,
        };
        let pty_slave = match (self.process.terminal() == Some(true), self.console) {
            (true, Some(console)) => Some(terminal::create(
                console,
                self.process.console_size(),
                false,
            )?),
            _ => None,
        };
        let mut prepared = setup::prepare(self.process, &ctx, pty_slave)?;
        if let Some(listener) = prepared.seccomp_listener.take() {
            chan.send_with_fd(&FromChild::SeccompListener, listener.as_fd())?;
        }
        if let Some(cpus) = self
            .process
            .exec_cpu_affinity()
            .as_ref()
            .and_then(|a| a.cpu_affinity_final().clone())
        {
            sched::set_affinity(&cpus)?;
        }
        Err(prepared.exec())
    }
}
