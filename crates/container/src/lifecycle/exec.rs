//! `exec`: another process in a running container. berth joins the
//! container's pid (and time) namespace for its children, forks, and the
//! child joins the rest of the container's namespaces through the init's
//! pidfd in one setns(2), enters the container's cgroup and sets itself up
//! as the spec says before it execs.

use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use berth_cgroups::Placement;
use oci_spec::runtime::{Capabilities, Capability, Linux, LinuxNamespaceType, Process};
use rustix::fs::{Mode, OFlags};

use super::foreground::{ConsoleSocket, Foreground};
use crate::init::channel::{Channel, FromInit, ToInit};
use crate::init::namespaces;
use crate::process::setup::{self, ProcessContext};
use crate::process::{sched, seccomp, terminal};
use crate::state::{is_alive, State, Status, Store};
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
    /// A sub-cgroup of the container's: `path`, or `controller:path` on v1.
    pub cgroup: Option<String>,
}

/// The process to run: the file's, or the container's with the request's
/// changes.
fn build_process(state: &State, request: &ExecRequest) -> Result<Process> {
    if let Some(path) = &request.process_file {
        let bytes = std::fs::read(path).ctx(|| format!("--process {}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        return serde_path_to_error::deserialize(de).map_err(|e| {
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

/// The directories of the cgroup the process goes into: the container's,
/// or the --cgroup sub-cgroup of it.
fn target_cgroups(placement: &Placement, sub: Option<&str>) -> Result<Vec<PathBuf>> {
    let dirs: Vec<(Vec<String>, PathBuf)> = match placement {
        Placement::V2 { dir, .. } => vec![(Vec::new(), dir.clone())],
        Placement::V1 { dirs, unified, .. } => dirs
            .iter()
            .map(|d| (d.controllers.clone(), d.dir.clone()))
            .chain(unified.iter().map(|u| (Vec::new(), u.clone())))
            .collect(),
    };
    let Some(sub) = sub else {
        return Ok(dirs.into_iter().map(|(_, d)| d).collect());
    };
    let (controller, path) = match sub.split_once(':') {
        Some((c, p)) => (Some(c), p),
        None => (None, sub),
    };
    let path = Path::new(path.trim_start_matches('/'));
    if path
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Error::Message(format!(
            "--cgroup {sub:?}: not a path below the container's cgroup"
        )));
    }
    Ok(dirs
        .into_iter()
        .map(|(controllers, dir)| {
            let applies = controller.is_none_or(|c| controllers.iter().any(|have| have == c));
            if applies {
                dir.join(path)
            } else {
                dir
            }
        })
        .collect())
}

fn namespace_flags(linux: &Linux, types: &[LinuxNamespaceType]) -> u32 {
    // The CLONE_NEW* flags all fit setns's 32 bits.
    let flag = |t: LinuxNamespaceType| crate::init::namespaces::clone_flag(t) as u32;
    linux
        .namespaces()
        .iter()
        .flatten()
        .map(|n| n.typ())
        .filter(|t| types.contains(t))
        .fold(0, |acc, t| acc | flag(t))
}

/// setns(2) through a pidfd: every namespace in `flags` at once.
fn join(pidfd: BorrowedFd, flags: u32) -> Result<()> {
    if flags == 0 {
        return Ok(());
    }
    // SAFETY: setns with a valid pidfd and CLONE_NEW* flags.
    if unsafe { libc::setns(pidfd.as_raw_fd(), flags as i32) } < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| format!("join the container's namespaces ({flags:#x})"));
    }
    Ok(())
}

/// Runs the process in the container. Detached, returns 0 once it runs;
/// otherwise its exit status.
pub fn exec(store: &Store, id: &str, opts: &ExecOptions) -> Result<i32> {
    let container = store.load(id)?;
    let status = container.status();
    let state = match (&container.state, status) {
        (Some(state), Status::Created | Status::Running) => state.clone(),
        (_, Status::Paused) => {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                message: "resume it before exec".into(),
            })
        }
        _ => {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                message: "exec needs a created or running container".into(),
            })
        }
    };
    let process = build_process(&state, &opts.request)?;
    crate::spec::validate_process(&process)?;
    let terminal = process.terminal() == Some(true);
    if terminal && opts.console_socket.is_none() && opts.detach {
        return Err(Error::Message(
            "exec --tty --detach needs --console-socket to hand the pty to".into(),
        ));
    }
    let linux = state.config.linux().clone().unwrap_or_default();
    let seccomp = linux.seccomp().as_ref().map(seccomp::build).transpose()?;
    let cgroups = match &state.cgroup {
        Some(p) => target_cgroups(p, opts.cgroup.as_deref())?,
        None => Vec::new(),
    };
    let init = rustix::process::Pid::from_raw(state.pid)
        .ok_or_else(|| Error::Message(format!("bad init pid {}", state.pid)))?;
    let init_pidfd = rustix::process::pidfd_open(init, rustix::process::PidfdFlags::empty())
        .ctx(|| format!("pidfd_open of the init ({})", state.pid))?;
    if !is_alive(state.pid, state.pid_start_time) {
        return Err(Error::WrongState {
            id: id.into(),
            status: Status::Stopped.to_string(),
            message: "exec needs a created or running container".into(),
        });
    }
    let console = match (&opts.console_socket, terminal) {
        (Some(path), true) => Some(super::create::connect_console(path)?),
        _ => None,
    };
    let own_console = (terminal && console.is_none())
        .then(ConsoleSocket::pair)
        .transpose()?;
    let foreground = if opts.detach {
        None
    } else {
        Some(Foreground::block_signals()?)
    };
    if let Some(cpus) = process
        .exec_cpu_affinity()
        .as_ref()
        .and_then(|a| a.initial().clone())
    {
        sched::set_affinity(&cpus)?;
    }
    let (ours, theirs) = Channel::pair()?;
    // While a copy of berth runs inside the container, nothing there may
    // open it through /proc/<pid>/exe (CVE-2019-5736): not dumpable.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .ctx(|| "PR_SET_DUMPABLE")?;
    // Only children enter a pid or time namespace: join those first. An
    // unprivileged berth may only do so from inside the container's user
    // namespace (it has nothing left to do that needs the host's).
    let rootless = !rustix::process::geteuid().is_root();
    let mut first = vec![LinuxNamespaceType::Pid, LinuxNamespaceType::Time];
    if rootless {
        first.push(LinuxNamespaceType::User);
    }
    join(init_pidfd.as_fd(), namespace_flags(&linux, &first))?;
    // A user namespace with setgroups denied (a rootless container's)
    // takes no setgroups(2).
    let setgroups_allowed = std::fs::read_to_string(format!("/proc/{}/setgroups", state.pid))
        .map_or(true, |s| s.trim() != "deny");
    let clone_into = match &state.cgroup {
        Some(Placement::V2 { .. }) => Some(
            rustix::fs::open(
                &cgroups[0],
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("--cgroup {}", cgroups[0].display()))?,
        ),
        _ => None,
    };
    let child = ExecChild {
        process: &process,
        linux: &linux,
        init_pidfd: init_pidfd.as_fd(),
        console: console
            .as_ref()
            .or(own_console.as_ref().map(|c| &c.theirs))
            .map(|c| c.as_fd()),
        preserve_fds: opts.preserve_fds,
        seccomp: seccomp.as_ref(),
        setgroups_allowed,
        joined_user: rootless,
    };
    // SAFETY: berth is single-threaded.
    let cloned = unsafe { crate::init::clone::clone3(0, clone_into.as_ref().map(|f| f.as_fd()))? };
    let (pid, pidfd) = match cloned {
        crate::init::clone::Cloned::Child => {
            drop(ours);
            child.main(&theirs)
        }
        crate::init::clone::Cloned::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(theirs);
    let result = (|| -> Result<()> {
        if clone_into.is_none() {
            for dir in &cgroups {
                std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                    .ctx(|| format!("join the cgroup {}", dir.display()))?;
            }
        }
        ours.send(&ToInit::Go)?;
        loop {
            match ours.recv::<FromInit>()? {
                None => return Ok(()),
                Some(FromInit::Failed(e)) => return Err(e),
                Some(FromInit::SeccompListener) => {
                    let fd = ours.take_fd().ok_or_else(|| {
                        Error::Message("the seccomp listener did not come".into())
                    })?;
                    let profile = linux
                        .seccomp()
                        .as_ref()
                        .expect("a listener comes from a filter");
                    let json =
                        serde_json::from_str(&super::OciState::for_hooks(&state, Status::Running))
                            .expect("valid JSON");
                    seccomp::hand_listener(profile, fd.as_fd(), pid, json)?;
                }
                Some(other) => return Err(Error::Message(format!("unexpected message {other:?}"))),
            }
        }
    })();
    if let Err(e) = result {
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(pid),
            rustix::process::WaitOptions::empty(),
        );
        return Err(e);
    }
    if let Some(path) = &opts.pid_file {
        super::create::write_pid_file(path, pid)?;
    }
    let console_master = own_console.map(|c| c.receive()).transpose()?;
    match foreground {
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
    fn main(&self, chan: &Channel) -> ! {
        let _quiet = tracing::dispatcher::set_default(&tracing::Dispatch::none());
        let code = match std::panic::catch_unwind(AssertUnwindSafe(|| self.run(chan))) {
            Ok(Ok(never)) => match never {},
            Ok(Err(e)) => {
                let _ = chan.send(&FromInit::Failed(e));
                1
            }
            Err(_) => 2,
        };
        // SAFETY: leaving without running berth's destructors.
        unsafe { libc::_exit(code) }
    }

    fn run(&self, chan: &Channel) -> Result<Infallible> {
        crate::init::set_signal_mask_empty();
        match chan.recv::<ToInit>()? {
            Some(ToInit::Go) => {}
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
        join(self.init_pidfd, flags)?;
        if flags & libc::CLONE_NEWUSER as u32 != 0 || self.joined_user {
            namespaces::become_root()?;
        }
        if self.process.terminal() == Some(true) {
            rustix::process::setsid().ctx(|| "setsid")?;
        }
        crate::init::process_settings(self.process)?;
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
            chan.send_with_fd(&FromInit::SeccompListener, listener.as_fd())?;
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
