//! The process that builds the container.
//!
//! berth clones it into its namespaces ([`spawn`]); it waits for its id maps
//! and cgroup, builds the root filesystem, sets up the process (rlimits,
//! user, capabilities, seccomp), reports ready and blocks on the exec fifo.
//! `start` releases it and it execs the user's program.

pub mod channel;
mod clone;
pub mod namespaces;
mod spawn;
mod terminal;

use std::convert::Infallible;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::panic::AssertUnwindSafe;
use std::path::Path;

use berth_cgroups::Placement;
use libseccomp::ScmpFilterContext;
use oci_spec::runtime::LinuxCapabilities;
use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandleBuilder};

use crate::process::{caps, exec, fds, lsm, rlimits, sched, seccomp, user};
use crate::rootfs::{self, Entry, RootfsConfig};
use crate::spec::{sysctl_path, Bundle};
use crate::{hooks, Context, Error, Result};
use channel::{Channel, FromInit, ToInit};
pub use namespaces::NamespacePlan;
pub use spawn::{spawn, Spawned};

/// Everything the init needs; it lives in berth's memory, which the clone
/// copies.
pub struct InitConfig<'a> {
    pub bundle: &'a Bundle,
    pub plan: &'a NamespacePlan,
    pub cgroup: Option<&'a Placement>,
    pub entry: Entry,
    /// The name of the session keyring to join (the container id), or
    /// `None` with --no-new-keyring.
    pub keyring: Option<&'a str>,
    pub preserve_fds: u32,
    /// A connected --console-socket.
    pub console: Option<BorrowedFd<'a>>,
    pub exec_fifo: BorrowedFd<'a>,
    pub seccomp: Option<&'a ScmpFilterContext>,
}

/// The init's entry point; never returns.
fn main(cfg: &InitConfig, chan: &Channel) -> ! {
    // berth's log may be the container's stderr: the init reports through
    // the channel instead.
    let _quiet = tracing::dispatcher::set_default(&tracing::Dispatch::none());
    let code = match std::panic::catch_unwind(AssertUnwindSafe(|| run(cfg, chan))) {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => {
            let _ = chan.send(&FromInit::Failed(e));
            1
        }
        Err(_) => 2,
    };
    // SAFETY: leaving without running any of berth's destructors, whose
    // resources belong to the parent.
    unsafe { libc::_exit(code) }
}

/// After `start` the creator is gone: a failure can only be told to the
/// container's stderr, and ends the process.
fn late_failure(e: Error, code: i32) -> ! {
    let _ = writeln!(std::io::stderr(), "berth: {e}");
    // SAFETY: as in `main`.
    unsafe { libc::_exit(code) }
}

fn unexpected(what: &str, got: Option<ToInit>) -> Error {
    match got {
        None => Error::Message(format!("berth went away while the init waited for {what}")),
        Some(m) => Error::Message(format!("the init waited for {what} and got {m:?}")),
    }
}

fn run(cfg: &InitConfig, chan: &Channel) -> Result<Infallible> {
    set_signal_mask_empty();
    rustix::process::umask(rustix::fs::Mode::empty());
    match chan.recv()? {
        Some(ToInit::Go) => {}
        other => return Err(unexpected("its id maps and cgroup", other)),
    }
    if let Some(pid) = namespaces::enter_in_init(cfg.plan)? {
        chan.send(&FromInit::Forked { pid })?;
        // SAFETY: the intermediate process leaves at once.
        unsafe { libc::_exit(0) };
    }
    if cfg.plan.in_userns {
        namespaces::become_root()?;
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
    let rootfs_cfg = RootfsConfig {
        spec,
        rootfs: &cfg.bundle.rootfs,
        bundle: &cfg.bundle.path,
        new_mount_ns: cfg.plan.own_mount_ns,
        in_userns: cfg.plan.in_userns,
        cgroupns: cfg.plan.has_cgroupns,
        cgroup: cfg.cgroup,
        entry: cfg.entry,
    };
    let hooks = spec.hooks().clone().unwrap_or_default();
    rootfs::prepare(&rootfs_cfg, || {
        chan.send(&FromInit::RunHooks)?;
        let state = match chan.recv()? {
            Some(ToInit::HooksDone { state }) => state,
            other => return Err(unexpected("the create hooks", other)),
        };
        hooks::run_all(
            "createContainer",
            hooks.create_container().as_deref().unwrap_or_default(),
            &state,
        )
    })?;
    let Some(process) = spec.process() else {
        // Without a process there is nothing to start: wait for `start`,
        // which reports the error, and leave. berth's descriptors (the
        // state dir's lock among them) must not be held meanwhile.
        fds::close_all_from(3, &[chan.raw_fd(), cfg.exec_fifo.as_raw_fd()])?;
        let _ = commit(chan)?;
        let _ = wait_for_start(cfg.exec_fifo);
        // SAFETY: as in `main`.
        unsafe { libc::_exit(0) };
    };
    let pty_slave = match (process.terminal() == Some(true), cfg.console) {
        (true, Some(console)) => Some(terminal::create(console, process.console_size())?),
        _ => None,
    };
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    if let Some(name) = cfg.keyring {
        join_session_keyring(name)?;
    }
    let user = process.user();
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            user::home_of(user.uid(), Path::new("/etc/passwd"))
        ));
    }
    // As root first: a directory root can enter and the user cannot is
    // still the right cwd; one only the user can enter is tried again below.
    let cwd = process.cwd();
    let cwd_deferred = match rustix::process::chdir(cwd) {
        Ok(()) => false,
        Err(rustix::io::Errno::ACCESS) => true,
        Err(e) => return Err(e).ctx(|| format!("process.cwd {cwd:?}: chdir")),
    };
    let args = process.args().as_deref().unwrap_or_default();
    let program = exec::Program::new(&exec::find(&args[0], &env)?, args, &env)?;
    if let Some(slave) = pty_slave {
        terminal::attach(slave)?;
    }
    // Nothing but stdio, --preserve-fds and the two fds the init still needs
    // (close-on-exec) stays open.
    fds::close_all_from(
        3 + cfg.preserve_fds as i32,
        &[chan.raw_fd(), cfg.exec_fifo.as_raw_fd()],
    )?;
    fds::preserve(cfg.preserve_fds)?;
    if !cwd_deferred {
        check_cwd(cwd)?;
    }
    let capabilities = process.capabilities().clone().unwrap_or_else(|| {
        serde_json::from_str::<LinuxCapabilities>("{}").expect("empty capabilities")
    });
    caps::limit_bounding(&capabilities)?;
    user::set_groups(user, true)?;
    let no_new_privs = process.no_new_privileges() == Some(true);
    // Without no_new_privs the filter can only be loaded with CAP_SYS_ADMIN,
    // so before the user switch; with it, as late as possible (below).
    if let Some(filter) = cfg.seccomp.filter(|_| !no_new_privs) {
        seccomp::load(filter)?;
    }
    user::switch(user)?;
    if cwd_deferred {
        rustix::process::chdir(cwd).ctx(|| format!("process.cwd {cwd:?}: chdir"))?;
        check_cwd(cwd)?;
    }
    caps::apply(&capabilities)?;
    if no_new_privs {
        rustix::thread::set_no_new_privs(true).ctx(|| "process.noNewPrivileges")?;
    }
    if let Some(p) = linux.personality() {
        sched::set_personality(p)?;
    }
    if let Some(s) = process.scheduler() {
        sched::set_scheduler(s)?;
    }
    if let Some(p) = process.io_priority() {
        sched::set_io_priority(p)?;
    }
    user::apply_umask(user);
    let state = commit(chan)?;
    if let Err(e) = wait_for_start(cfg.exec_fifo) {
        late_failure(e, 1);
    }
    let start_hooks = hooks.start_container().as_deref().unwrap_or_default();
    if let Err(e) = hooks::run_all("startContainer", start_hooks, &state) {
        late_failure(e, 1);
    }
    if let Some(filter) = cfg.seccomp.filter(|_| no_new_privs) {
        if let Err(e) = seccomp::load(filter) {
            late_failure(e, 1);
        }
    }
    restore_signal_dispositions();
    let e = program.exec();
    let code = if e.errno() == Some(libc::ENOENT) {
        127
    } else {
        126
    };
    late_failure(e, code)
}

/// Reports ready and waits until berth has recorded the container; returns
/// the state to give the startContainer hooks.
fn commit(chan: &Channel) -> Result<String> {
    chan.send(&FromInit::Ready)?;
    match chan.recv()? {
        Some(ToInit::Committed { state }) => Ok(state),
        // berth died before recording the container: nobody can start it.
        // SAFETY: as in `main`.
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

/// sysctl, oom_score_adj and the AppArmor profile: written through a
/// procfs handle that pathrs has checked is a real procfs, with no symlink
/// followed, so the container cannot redirect them (CVE-2019-16884 and
/// kin).
fn kernel_settings(cfg: &InitConfig) -> Result<()> {
    let spec = &cfg.bundle.spec;
    let sysctl = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().clone())
        .unwrap_or_default();
    let process = spec.process().as_ref();
    let oom = process.and_then(|p| p.oom_score_adj());
    let apparmor = process
        .and_then(|p| p.apparmor_profile().clone())
        .filter(|p| !p.is_empty());
    if sysctl.is_empty() && oom.is_none() && apparmor.is_none() {
        return Ok(());
    }
    let procfs = ProcfsHandleBuilder::new()
        .unmasked()
        .build()
        .ctx(|| "open procfs")?;
    let write = |base: ProcfsBase, path: &Path, value: &str, field: &str| -> Result<()> {
        let mut file = procfs
            .open(base, path, OpenFlags::O_WRONLY)
            .ctx(|| format!("{field}: open /proc/{}", path.display()))?;
        file.write_all(value.as_bytes())
            .ctx(|| format!("{field}: write {value:?}"))
    };
    for (key, value) in &sysctl {
        let path = Path::new("sys").join(sysctl_path(key)?);
        write(
            ProcfsBase::ProcRoot,
            &path,
            value,
            &format!("linux.sysctl.{key}"),
        )?;
    }
    if let Some(adj) = oom {
        write(
            ProcfsBase::ProcSelf,
            Path::new("oom_score_adj"),
            &adj.to_string(),
            "process.oomScoreAdj",
        )?;
    }
    if let Some(profile) = apparmor {
        lsm::set_apparmor_exec_profile(&procfs, &profile)?;
    }
    Ok(())
}

/// process.cwd must be inside the container: getcwd(2) reports a directory
/// outside the root as "(unreachable)..." (CVE-2024-21626).
fn check_cwd(cwd: &Path) -> Result<()> {
    let actual =
        rustix::process::getcwd(Vec::new()).ctx(|| format!("process.cwd {cwd:?}: getcwd"))?;
    if !actual.to_bytes().starts_with(b"/") {
        return Err(Error::spec(
            "process.cwd",
            format!("{cwd:?} is outside the container's root"),
        ));
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

fn set_signal_mask_empty() {
    // SAFETY: plain signal-mask calls on this (only) thread.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// berth ignores SIGPIPE (as every Rust program does); the container's
/// process starts with the default.
fn restore_signal_dispositions() {
    // SAFETY: resetting a disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
