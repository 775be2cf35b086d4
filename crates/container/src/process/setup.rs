//! The process's setup, shared by the init and by `exec`: from a root-owned
//! copy of berth inside the container's namespaces to a process with the
//! spec's limits, user, capabilities and seccomp filter, one execve away
//! from the user's program.

use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxCapabilities, Process};

use super::{caps, exec, fds, mempolicy, rlimits, sched, seccomp, terminal, user};
use crate::{Context, Error, Result};

/// What the setup needs besides the spec's process.
pub struct ProcessContext<'a> {
    pub linux: &'a Linux,
    /// Fds 3..3+preserve_fds are handed on (--preserve-fds, LISTEN_FDS).
    pub preserve_fds: u32,
    /// berth's own fds (close-on-exec) still needed before the exec.
    pub keep_fds: &'a [RawFd],
    pub seccomp: Option<&'a seccomp::Filter>,
    /// False in a user namespace whose setgroups is denied.
    pub setgroups_allowed: bool,
}

/// A process set up but for what must come last: the seccomp filter when it
/// waits for no_new_privs, and the execve.
pub struct Prepared<'a> {
    program: exec::Program,
    late_seccomp: Option<&'a seccomp::Filter>,
    /// The seccomp listener, for the caller to hand to the spec's
    /// listenerPath (SCMP_ACT_NOTIFY).
    pub seccomp_listener: Option<std::os::fd::OwnedFd>,
    /// The environment the program gets, which startContainer hooks that
    /// set none of their own inherit (as runc's do).
    pub env: Vec<String>,
}

impl Prepared<'_> {
    /// Loads the filter that waited for no_new_privs, if it is not loaded
    /// yet. The init does it before the startContainer hooks, as runc does:
    /// they run under the filter the program will.
    pub fn load_late_filter(&mut self) -> Result<()> {
        match self.late_seccomp.take() {
            Some(filter) => filter.load().map(drop),
            None => Ok(()),
        }
    }

    /// Loads the late filter and replaces this process with the program;
    /// returns only on failure.
    pub fn exec(mut self) -> Error {
        if let Err(e) = self.load_late_filter() {
            return e;
        }
        // berth ignores SIGPIPE (as every Rust program does); the user's
        // process starts with the default.
        // SAFETY: resetting a disposition to its default.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        self.program.exec()
    }
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

/// The process's environment as runc gives it: a variable set more than
/// once keeps its last value (at that place), and HOME, when unset or
/// empty, is the user's home from the container's /etc/passwd.
fn environment(env: &[String], home: impl FnOnce() -> String) -> Vec<String> {
    let key = |entry: &str| entry.split('=').next().unwrap_or_default().to_string();
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<String> = env
        .iter()
        .rev()
        .filter(|entry| seen.insert(key(entry)))
        .filter(|entry| entry.as_str() != "HOME=")
        .cloned()
        .collect();
    kept.reverse();
    if !kept.iter().any(|e| e.starts_with("HOME=")) {
        kept.push(format!("HOME={}", home()));
    }
    kept
}

/// Sets up `process` in the calling process, which is root in the
/// container's namespaces and whose root is the container's. `pty_slave`
/// is its terminal, made beforehand ([`terminal::create`]).
pub fn prepare<'a>(
    process: &Process,
    ctx: &ProcessContext<'a>,
    pty_slave: Option<OwnedFd>,
) -> Result<Prepared<'a>> {
    rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    let user = process.user();
    let env = environment(process.env().as_deref().unwrap_or_default(), || {
        user::home_of(user.uid(), Path::new("/etc/passwd"))
    });
    // As root first: a directory root can enter and the user cannot is
    // still the right cwd; one only the user can enter is tried again below.
    let cwd = process.cwd();
    let cwd_deferred = match rustix::process::chdir(cwd) {
        Ok(()) => false,
        Err(rustix::io::Errno::ACCESS) => true,
        Err(e) => return Err(e).ctx(|| format!("process.cwd {cwd:?}: chdir")),
    };
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| Error::spec("process.args", "must name the program to run"))?;
    let program = exec::Program::new(&exec::find(arg0, &env)?, args, &env)?;
    if let Some(slave) = pty_slave {
        terminal::attach(slave)?;
    }
    // Nothing but stdio, the preserved fds and berth's own (close-on-exec)
    // stays open.
    fds::close_all_from(3 + ctx.preserve_fds as RawFd, ctx.keep_fds)?;
    fds::preserve(ctx.preserve_fds)?;
    if !cwd_deferred {
        check_cwd(cwd)?;
    }
    let capabilities = process.capabilities().clone().unwrap_or_else(|| {
        serde_json::from_str::<LinuxCapabilities>("{}").expect("empty capabilities")
    });
    caps::limit_bounding(&capabilities)?;
    user::set_groups(user, ctx.setgroups_allowed)?;
    let no_new_privs = process.no_new_privileges() == Some(true);
    // Without no_new_privs the filter can only be loaded with CAP_SYS_ADMIN,
    // so before the user switch; with it, right before the exec (or, with
    // a listener to hand over, at the end of the setup).
    let mut seccomp_listener = None;
    if let Some(filter) = ctx.seccomp.filter(|_| !no_new_privs) {
        seccomp_listener = filter.load()?;
    }
    fds::give_stdio_to(user.uid())?;
    // The realtime class needs CAP_SYS_ADMIN (or CAP_SYS_NICE): set it
    // while berth still holds them.
    if let Some(p) = process.io_priority() {
        sched::set_io_priority(p)?;
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
    if let Some(p) = ctx.linux.personality() {
        sched::set_personality(p)?;
    }
    if let Some(p) = ctx.linux.memory_policy() {
        mempolicy::MemoryPolicy::from_spec(p)?.apply()?;
    }
    if let Some(s) = process.scheduler() {
        sched::set_scheduler(s)?;
    }
    user::apply_umask(user);
    let mut late_seccomp = ctx.seccomp.filter(|_| no_new_privs);
    if let Some(filter) = late_seccomp.filter(|f| f.notify) {
        seccomp_listener = filter.load()?;
        late_seccomp = None;
    }
    Ok(Prepared {
        program,
        late_seccomp,
        seccomp_listener,
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(list: &[&str]) -> Vec<String> {
        environment(
            &list.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            || "/root".into(),
        )
    }

    #[test]
    fn the_last_value_of_a_variable_wins() {
        assert_eq!(
            env(&["ONE=two", "PATH=/bin", "ONE=three"]),
            ["PATH=/bin", "ONE=three", "HOME=/root"]
        );
    }

    #[test]
    fn an_empty_home_is_the_users() {
        assert_eq!(env(&["HOME=/override", "HOME="]), ["HOME=/root"]);
        assert_eq!(env(&["HOME=", "HOME=/x"]), ["HOME=/x"]);
        assert_eq!(env(&["PATH=/bin"]), ["PATH=/bin", "HOME=/root"]);
    }
}
