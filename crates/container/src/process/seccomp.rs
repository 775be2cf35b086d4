//! linux.seccomp. The filter is compiled with libseccomp by the parent,
//! before the init is cloned (so a bad profile fails `create` early and
//! cheaply), and exported as BPF; the init loads it with one seccomp(2)
//! call, as late as it can, with exactly the spec's flags (libseccomp 2.5
//! knows no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) and, for
//! SCMP_ACT_NOTIFY, a listener.

use std::collections::HashSet;
use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::{Context, Error, Result};

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const FLAG_LOG: u32 = 1 << 1;
const FLAG_SPEC_ALLOW: u32 = 1 << 2;
const FLAG_NEW_LISTENER: u32 = 1 << 3;
const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// System calls the init makes between loading a filter with a listener
/// and handing the listener over: notifying them would deadlock.
const NOT_NOTIFIABLE: &[&str] = &["sendmsg", "sendto", "write", "exit", "exit_group"];

/// A compiled filter, ready to load.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: u32,
    /// Whether some rule hands syscalls to a listener (SCMP_ACT_NOTIFY).
    pub notify: bool,
}

impl Filter {
    /// Loads the filter into the calling (single-threaded) process; with
    /// SCMP_ACT_NOTIFY rules, returns the listener's fd (close-on-exec).
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        let flags = self.flags | if self.notify { FLAG_NEW_LISTENER } else { 0 };
        // SAFETY: prog points at a valid BPF program that outlives the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const _,
            )
        };
        if ret < 0 {
            return Err(std::io::Error::last_os_error())
                .ctx(|| format!("linux.seccomp: load the filter (flags {flags:#x})"));
        }
        // SAFETY: with NEW_LISTENER the kernel returned a new descriptor.
        Ok(self
            .notify
            .then(|| unsafe { OwnedFd::from_raw_fd(ret as i32) }))
    }
}

/// Hands a seccomp listener to the agent at linux.seccomp.listenerPath,
/// as the runtime spec says: the container process state (with `fds`
/// naming the one fd sent, `pid`, `metadata` and the OCI state) as the
/// message, the listener as SCM_RIGHTS.
pub fn hand_listener(
    seccomp: &LinuxSeccomp,
    listener: std::os::fd::BorrowedFd,
    pid: i32,
    state: &crate::state::OciState,
) -> Result<()> {
    let path = seccomp.listener_path().as_deref().ok_or_else(|| {
        Error::spec(
            "linux.seccomp.listenerPath",
            "is required for SCMP_ACT_NOTIFY",
        )
    })?;
    let field = || format!("linux.seccomp.listenerPath {}", path.display());
    let message = serde_json::json!({
        "ociVersion": crate::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": seccomp.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    });
    let socket = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .ctx(field)?;
    let addr = rustix::net::SocketAddrUnix::new(path).ctx(field)?;
    rustix::net::connect(&socket, &addr).ctx(|| format!("{}: connect", field()))?;
    let bytes = serde_json::to_vec(&message).expect("the state serialises");
    crate::sys::send_fd(std::os::fd::AsFd::as_fd(&socket), listener, &bytes)
        .ctx(|| format!("{}: send the listener", field()))
}

fn seccomp_error(field: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::spec(field, e.to_string())
}

fn action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> ScmpAction {
    match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno_ret.unwrap_or(libc::EPERM as u32) as i32)
        }
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno_ret.unwrap_or(libc::EPERM as u32) as u16)
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    }
}

fn compare(field: &str, arg: &oci_spec::runtime::LinuxSeccompArg) -> Result<ScmpArgCompare> {
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // For SCMP_CMP_MASKED_EQ the spec's value is the mask and valueTwo
        // the value to compare the masked argument with.
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
    };
    let datum = match arg.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
        _ => arg.value(),
    };
    if arg.index() > 5 {
        return Err(Error::spec(
            field,
            format!("argument index {} is not in 0..=5", arg.index()),
        ));
    }
    Ok(ScmpArgCompare::new(arg.index() as u32, op, datum))
}

/// Builds the filter of `seccomp`. Syscall names this libseccomp does not
/// know are skipped with a warning, as runc does.
pub fn build(seccomp: &LinuxSeccomp) -> Result<Filter> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| seccomp_error("linux.seccomp", e))?;
    for (i, arch) in seccomp.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        let arch = ScmpArch::from_str(&arch.to_string()).map_err(|e| seccomp_error(&field, e))?;
        ctx.add_arch(arch).map_err(|e| seccomp_error(&field, e))?;
    }
    if default == ScmpAction::Notify {
        return Err(Error::spec(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default",
        ));
    }
    let flags = seccomp.flags().iter().flatten().fold(0, |acc, flag| {
        acc | match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
            // The init is single-threaded: there is no thread to synchronise.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
        }
    });
    let mut notify = false;
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(rule.action(), rule.errno_ret());
        if act == default {
            continue;
        }
        if act == ScmpAction::Notify {
            notify = true;
            if let Some(name) = rule
                .names()
                .iter()
                .find(|n| NOT_NOTIFIABLE.contains(&n.as_str()))
            {
                return Err(Error::spec(
                    format!("{field}.names"),
                    format!("{name} cannot be handed to a listener: berth needs it to hand the listener over"),
                ));
            }
        }
        let comparisons = rule
            .args()
            .iter()
            .flatten()
            .map(|a| compare(&format!("{field}.args"), a))
            .collect::<Result<Vec<_>>>()?;
        // libseccomp takes one comparison per argument in a rule; several on
        // one argument become separate rules (any of them matches), as runc
        // does.
        let indexes: HashSet<usize> = rule.args().iter().flatten().map(|a| a.index()).collect();
        let rule_sets: Vec<Vec<ScmpArgCompare>> = if indexes.len() == comparisons.len() {
            vec![comparisons]
        } else {
            comparisons.into_iter().map(|c| vec![c]).collect()
        };
        for name in rule.names() {
            let syscall = match ScmpSyscall::from_name(name) {
                Ok(s) => s,
                Err(_) => {
                    tracing::warn!("{field}: unknown syscall {name:?} skipped");
                    continue;
                }
            };
            for conditions in &rule_sets {
                ctx.add_rule_conditional(act, syscall, conditions)
                    .map_err(|e| seccomp_error(format!("{field} {name}"), e))?;
            }
        }
    }
    add_enosys_for_newer_syscalls(&mut ctx, seccomp, default)?;
    if notify && seccomp.listener_path().is_none() {
        return Err(Error::spec(
            "linux.seccomp.listenerPath",
            "SCMP_ACT_NOTIFY needs a listener",
        ));
    }
    Ok(Filter {
        program: export(&ctx)?,
        flags,
        notify,
    })
}

/// Syscall numbers of the native architecture scanned for syscalls newer
/// than a profile: above every table libseccomp has (x86_64 reaches the
/// 460s) and below x32's numbering.
const SYSCALL_SCAN_END: i32 = 1024;

/// A syscall newer than every one the profile names gets ENOSYS instead of
/// the default action, as runc's "enosys stub" gives it: a program that
/// tries a new syscall and falls back on ENOSYS (glibc with clone3, say)
/// would otherwise see the default's EPERM and fail, where the kernel or a
/// profile written before the syscall existed meant "not there". Not when
/// the default action lets syscalls through (SCMP_ACT_ALLOW, LOG, TRACE:
/// a tracer handles new syscalls itself) or already is ENOSYS.
///
/// runc patches the compiled program with a range check; berth asks
/// libseccomp for explicit rules instead, which is simpler and as sound for
/// every syscall libseccomp knows: each syscall of the native architecture
/// numbered above the profile's highest (by native numbers) gets an
/// ENOSYS rule by name, which libseccomp puts in every architecture of the
/// filter (new syscalls get one number on all architectures since Linux
/// 5.1). Syscalls newer than libseccomp itself still get the default action.
fn add_enosys_for_newer_syscalls(
    ctx: &mut ScmpFilterContext,
    seccomp: &LinuxSeccomp,
    default: ScmpAction,
) -> Result<()> {
    let enosys = ScmpAction::Errno(libc::ENOSYS);
    if matches!(
        default,
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Trace(_)
    ) || default == enosys
    {
        return Ok(());
    }
    let native = ScmpArch::native();
    let newest = seccomp
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|rule| rule.names())
        .filter_map(|name| ScmpSyscall::from_name_by_arch(name, native).ok())
        .map(|s| s.as_raw_syscall())
        .max()
        .unwrap_or(0);
    // As runc: a profile that names no syscall above 0 gets no stub.
    if newest <= 0 {
        return Ok(());
    }
    for number in newest + 1..SYSCALL_SCAN_END {
        let syscall = ScmpSyscall::from_raw_syscall(number);
        if syscall.get_name_by_arch(native).is_err() {
            continue;
        }
        ctx.add_rule(enosys, syscall).map_err(|e| {
            seccomp_error(
                "linux.seccomp",
                format!("ENOSYS for syscall {number}, newer than the profile: {e}"),
            )
        })?;
    }
    Ok(())
}

/// The BPF program libseccomp compiled, as an array of sock_filter.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let memfd = rustix::fs::memfd_create("berth-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .ctx(|| "memfd_create")?;
    let mut file = std::fs::File::from(memfd);
    ctx.export_bpf(&file)
        .map_err(|e| Error::spec("linux.seccomp", e.to_string()))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut bytes))
        .ctx(|| "read the compiled filter")?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_docker_like_profile_builds() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{"names":["read","write","not_a_syscall"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                             "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]},
                            {"names":["clone"],"action":"SCMP_ACT_ALLOW",
                             "args":[{"index":0,"value":2114060288,"op":"SCMP_CMP_MASKED_EQ"}]},
                            {"names":["socket"],"action":"SCMP_ACT_ALLOW",
                             "args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        build(&p).unwrap();
    }

    #[test]
    fn notify_needs_a_listener_and_spares_what_berth_needs() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        let err = build(&p).err().unwrap().to_string();
        assert!(err.starts_with("linux.seccomp.listenerPath"), "{err}");
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[{"names":["sendmsg"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(build(&p)
            .err()
            .unwrap()
            .to_string()
            .contains("sendmsg cannot be handed"));
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(build(&p).unwrap().notify);
    }

    #[test]
    fn flags_become_seccomp_flags() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
        );
        let filter = build(&p).unwrap();
        assert_eq!(filter.flags, FLAG_LOG | FLAG_WAIT_KILLABLE_RECV);
        assert!(!filter.program.is_empty());
    }

    /// What syscall `number` returns (0 or an errno) in a child that
    /// loaded `filter`.
    fn errno_under(filter: &Filter, number: libc::c_long) -> i32 {
        // SAFETY: the child only makes syscalls and leaves with _exit.
        match unsafe { libc::fork() } {
            0 => {
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                if filter.load().is_err() {
                    unsafe { libc::_exit(255) };
                }
                let ret = unsafe { libc::syscall(number, -1, 0, 0, 0, 0) };
                let code = if ret < 0 {
                    std::io::Error::last_os_error()
                        .raw_os_error()
                        .unwrap_or(254)
                } else {
                    0
                };
                unsafe { libc::_exit(code) }
            }
            pid => {
                let mut status = 0;
                assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
                assert!(libc::WIFEXITED(status), "status {status:#x}");
                libc::WEXITSTATUS(status)
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn syscalls_newer_than_the_profile_get_enosys() {
        // close_range is 436 on x86_64: clone3 (435) is older and gets the
        // default, faccessat2 (439) newer and gets ENOSYS.
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO",
                "syscalls":[{"names":["exit","exit_group","close_range"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let filter = build(&p).unwrap();
        assert_eq!(errno_under(&filter, libc::SYS_clone3), libc::EPERM);
        assert_eq!(errno_under(&filter, libc::SYS_faccessat2), libc::ENOSYS);
        // Allowed, it runs: close_range(-1, 0, 0) is EINVAL.
        assert_eq!(errno_under(&filter, libc::SYS_close_range), libc::EINVAL);
        // An ENOSYS default, or one that lets syscalls through, needs no
        // stub.
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_LOG",
                "syscalls":[{"names":["close_range"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        // faccessat2(-1, NULL, ...) runs and faults on its path.
        assert_eq!(
            errno_under(&build(&p).unwrap(), libc::SYS_faccessat2),
            libc::EFAULT
        );
    }

    #[test]
    fn bad_argument_indexes_name_the_rule() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":9,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let err = build(&p).err().unwrap().to_string();
        assert!(err.starts_with("linux.seccomp.syscalls[0].args"), "{err}");
    }
}
