//! The process that builds the container.
//!
//! berth clones it into its namespaces ([`spawn`]); it waits for its id maps,
//! builds the root filesystem while berth readies its cgroup, waits for the
//! cgroup, sets up the process (rlimits, user, capabilities, seccomp),
//! reports ready and blocks on the exec fifo.
//! `start` releases it and it execs the user's program.

pub mod channel;
pub mod child;
mod enter;
mod plan;
mod spawn;
mod timens;

use std::convert::Infallible;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use pathrs::procfs::ProcfsBase;

use crate::process::setup::{self, ProcessContext};
use crate::process::{fds, procfs, terminal};
use crate::rootfs::{self, RootfsConfig};
use crate::spec::{sysctl_path, Bundle};
use crate::state::OciState;
use crate::{hooks, Context, Error, Result};
use channel::{Channel, FromChild, ToChild};
pub use plan::NamespacePlan;
pub use spawn::{spawn, CgroupSetup, Spawned};

/// Everything the init needs; it lives in berth's memory, which the clone
/// copies.
pub struct InitConfig<'a> {
    pub bundle: &'a Bundle,
    pub plan: &'a NamespacePlan,
    pub rootfs: RootfsConfig<'a>,
    /// The name of the session keyring to join (the container id), or
    /// `None` with --no-new-keyring.
    pub keyring: Option<&'a str>,
    pub preserve_fds: u32,
    /// A connected --console-socket.
    pub console: Option<BorrowedFd<'a>>,
    pub exec_fifo: BorrowedFd<'a>,
    pub seccomp: Option<&'a crate::process::seccomp::Filter>,
    /// The resctrl groups (made) berth puts the init in.
    pub intel_rdt: Option<&'a crate::intelrdt::RdtGroup>,
}

/// After `start` the creator is gone: a failure can only be told to the
/// container's stderr, and ends the process.
fn late_failure(e: Error, code: i32) -> ! {
    let _ = writeln!(std::io::stderr(), "berth: {e}");
    // SAFETY: leaving without running berth's destructors (see child::start).
    unsafe { libc::_exit(code) }
}

fn unexpected(what: &str, got: Option<ToChild>) -> Error {
    match got {
        None => Error::Message(format!("berth went away while the init waited for {what}")),
        Some(m) => Error::Message(format!("the init waited for {what} and got {m:?}")),
    }
}

/// The init's body, run in the clone (see [`child::start`]).
fn run(cfg: &InitConfig, chan: &Channel) -> Result<Infallible> {
    rustix::process::umask(rustix::fs::Mode::empty());
    match chan.recv()? {
        Some(ToChild::Go) => {}
        other => return Err(unexpected("its id maps", other)),
    }
    // The init is a copy of berth inside the container's pid namespace
    // until it execs: nothing there may open it through /proc/<pid>/exe
    // (CVE-2019-5736). It turns itself non-dumpable now, once berth has
    // written its id maps (an unprivileged berth could not write them to a
    // non-dumpable process); execve of the user's program undoes it.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .ctx(|| "PR_SET_DUMPABLE")?;
    if let Some(pid) = enter::enter_in_init(cfg.plan)? {
        chan.send(&FromChild::Forked { pid })?;
        // SAFETY: the intermediate process leaves at once.
        unsafe { libc::_exit(0) };
    }
    if cfg.plan.in_userns {
        crate::sys::namespace::become_root()?;
    }
    rustix::process::setsid().ctx(|| "setsid")?;
    let spec = &cfg.bundle.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    if let Some(name) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        rustix::system::sethostname(name.as_bytes()).ctx(|| format!("hostname {name:?}"))?;
    }
    if let Some(name) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        rustix::system::setdomainname(name.as_bytes()).ctx(|| format!("domainname {name:?}"))?;
    }
    kernel_settings(cfg)?;
    let hooks = spec.hooks().clone().unwrap_or_default();
    let create_hooks = [
        hooks.prestart(),
        hooks.create_runtime(),
        hooks.create_container(),
    ]
    .iter()
    .any(|list| list.as_ref().is_some_and(|l| !l.is_empty()));
    rootfs::prepare(&cfg.rootfs, || {
        match chan.recv()? {
            Some(ToChild::CgroupReady) => {}
            other => return Err(unexpected("its cgroup", other)),
        }
        // A round trip to berth only when there are hooks to run.
        if !create_hooks {
            return Ok(());
        }
        chan.send(&FromChild::RunHooks)?;
        let state = match chan.recv()? {
            Some(ToChild::HooksDone { state }) => state,
            other => return Err(unexpected("the create hooks", other)),
        };
        // createContainer hooks start in the rootfs, as under runc (the
        // root switch that follows does not depend on the cwd).
        rustix::process::chdir(&cfg.bundle.rootfs)
            .ctx(|| format!("chdir to the rootfs {}", cfg.bundle.rootfs.display()))?;
        hooks::run_all(
            "createContainer",
            hooks.create_container().as_deref().unwrap_or_default(),
            &state,
        )
    })?;
    let Some(process) = spec.process() else {
        rootfs::make_root_readonly(spec, cfg.plan.own_mount_ns)?;
        // Without a process there is nothing to start: wait for `start`,
        // which reports the error, and leave. berth's descriptors (the
        // state dir's lock among them) must not be held meanwhile.
        fds::close_all_from(3, &[chan.raw_fd(), cfg.exec_fifo.as_raw_fd()])?;
        let _ = commit(chan)?;
        let _ = wait_for_start(cfg.exec_fifo);
        // SAFETY: leaving without running berth's destructors (see child::start).
        unsafe { libc::_exit(0) };
    };
    if let Some(name) = cfg.keyring {
        join_session_keyring(name)?;
    }
    let keep = [chan.raw_fd(), cfg.exec_fifo.as_raw_fd()];
    let ctx = ProcessContext {
        linux: &linux,
        preserve_fds: cfg.preserve_fds,
        keep_fds: &keep,
        seccomp: cfg.seccomp,
        setgroups_allowed: cfg.plan.id_mapper.setgroups_allowed(),
    };
    // The pty (and /dev/console) come before the root turns read-only.
    let pty_slave = match (process.terminal() == Some(true), cfg.console) {
        (true, Some(console)) => Some(terminal::create(console, process.console_size(), true)?),
        _ => None,
    };
    rootfs::make_root_readonly(spec, cfg.plan.own_mount_ns)?;
    let mut prepared = setup::prepare(process, &ctx, pty_slave)?;
    if let Some(listener) = prepared.seccomp_listener.take() {
        chan.send_with_fd(&FromChild::SeccompListener, listener.as_fd())?;
    }
    let state = commit(chan)?;
    if let Err(e) = wait_for_start(cfg.exec_fifo) {
        late_failure(e, 1);
    }
    if let Err(e) = prepared.load_late_filter() {
        late_failure(e, 1);
    }
    let mut start_hooks = hooks.start_container().clone().unwrap_or_default();
    for hook in start_hooks.iter_mut().filter(|h| h.env().is_none()) {
        hook.set_env(Some(prepared.env.clone()));
    }
    if let Err(e) = hooks::run_all("startContainer", &start_hooks, &state) {
        late_failure(e, 1);
    }
    let e = prepared.exec();
    let code = if e.errno() == Some(libc::ENOENT) {
        127
    } else {
        126
    };
    // Told as a shell tells it, with no prefix: the container's own
    // program could not be run.
    let _ = writeln!(std::io::stderr(), "{e}");
    // SAFETY: leaving without running berth's destructors (see child::start).
    unsafe { libc::_exit(code) }
}

/// Reports ready and waits until berth has recorded the container; returns
/// the state to give the startContainer hooks.
fn commit(chan: &Channel) -> Result<OciState> {
    chan.send(&FromChild::Ready)?;
    match chan.recv()? {
        Some(ToChild::Committed { state }) => Ok(state),
        // berth died before recording the container: nobody can start it.
        // SAFETY: leaving without running berth's destructors (see child::start).
        None => unsafe { libc::_exit(1) },
        other => Err(unexpected("the container to be recorded", other)),
    }
}

/// Blocks until `start` writes to the exec fifo.
fn wait_for_start(fifo: BorrowedFd) -> Result<()> {
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(fifo, &mut byte) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).ctx(|| "wait on the exec fifo"),
        }
    }
}

/// linux.sysctl and the process's /proc attributes (see
/// [`procfs`]).
fn kernel_settings(cfg: &InitConfig) -> Result<()> {
    if let Some(process) = cfg.bundle.spec.process() {
        procfs::set_process_attributes(process)?;
    }
    let Some(sysctl) = cfg
        .bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
    else {
        return Ok(());
    };
    if sysctl.is_empty() {
        return Ok(());
    }
    let proc = procfs::open()?;
    for (key, value) in sysctl {
        let path = Path::new("sys").join(sysctl_path(key)?);
        procfs::write(
            &proc,
            ProcfsBase::ProcRoot,
            &path,
            value,
            &format!("linux.sysctl.{key}"),
        )?;
    }
    Ok(())
}

/// Joins a new session keyring named after the container, so that it does
/// not share the caller's keys.
fn join_session_keyring(name: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    let name = std::ffi::CString::new(name)
        .map_err(|_| Error::Message("container id holds a NUL".into()))?;
    // SAFETY: keyctl with a NUL-terminated name.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if ret < 0 {
        let err = std::io::Error::last_os_error();
        // Kernels without keyrings, or keyrings disallowed here: as runc.
        if !matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EACCES)) {
            return Err(err).ctx(|| "join a session keyring");
        }
    }
    Ok(())
}
