//! linux.seccomp, compiled with libseccomp. The filter is built by the
//! parent before the init is cloned (so a bad profile fails `create` early
//! and cheaply) and loaded by the init as late as it can.

use std::collections::HashSet;
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::{Error, Result};

fn seccomp_error(field: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::spec(field, e.to_string())
}

fn action(field: &str, action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<ScmpAction> {
    Ok(match action {
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
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::spec(
                field,
                "SCMP_ACT_NOTIFY is not supported by berth yet",
            ))
        }
    })
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
pub fn build(seccomp: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(
        "linux.seccomp.defaultAction",
        seccomp.default_action(),
        seccomp.default_errno_ret(),
    )?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| seccomp_error("linux.seccomp", e))?;
    // berth sets no_new_privs itself, only when the spec asks for it.
    ctx.set_ctl_nnp(false)
        .map_err(|e| seccomp_error("linux.seccomp", e))?;
    for (i, arch) in seccomp.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        let arch = ScmpArch::from_str(&arch.to_string()).map_err(|e| seccomp_error(&field, e))?;
        ctx.add_arch(arch).map_err(|e| seccomp_error(&field, e))?;
    }
    for (i, flag) in seccomp.flags().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.flags[{i}]");
        let result = match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                ctx.set_ctl_waitkill(true).map(|_| ())
            }
            // The init is single-threaded: there is no thread to synchronise.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => Ok(()),
        };
        result.map_err(|e| seccomp_error(&field, e))?;
    }
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(&format!("{field}.action"), rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
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
    Ok(ctx)
}

/// Loads a filter into the calling (single-threaded) process.
pub fn load(ctx: &ScmpFilterContext) -> Result<()> {
    ctx.load().map_err(|e| {
        let errno = e.errno().map(|e| e as i32).unwrap_or(libc::EINVAL);
        Error::os("linux.seccomp: load the filter", errno.abs())
    })
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
    fn bad_argument_indexes_name_the_rule() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":9,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let err = build(&p).unwrap_err().to_string();
        assert!(err.starts_with("linux.seccomp.syscalls[0].args"), "{err}");
    }
}
