//! Per-process settings of runtime-spec 1.2 that runc 1.1 lacks:
//! linux.personality, process.scheduler and process.ioPriority.

use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler,
};

use crate::{Error, Result};

fn last_os_error(context: String) -> Error {
    let errno = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL);
    Error::os(context, errno)
}

/// linux.personality: the execution domain for the process.
pub fn set_personality(p: &LinuxPersonality) -> Result<()> {
    const PER_LINUX: libc::c_ulong = 0x0000;
    const PER_LINUX32: libc::c_ulong = 0x0008;
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::spec(
            "linux.personality.flags",
            "no personality flags are defined",
        ));
    }
    let persona = match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    };
    // SAFETY: personality(2) takes a plain integer.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(last_os_error(format!(
            "linux.personality {}: personality",
            p.domain()
        )));
    }
    Ok(())
}

/// The kernel's struct sched_attr (include/uapi/linux/sched/types.h).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// process.scheduler through sched_setattr(2); libc has no wrapper.
pub fn set_scheduler(s: &Scheduler) -> Result<()> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
        LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
        LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
        LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |acc, f| {
        acc | match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        }
    });
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy as u32,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..SchedAttr::default()
    };
    // SAFETY: attr is a valid sched_attr of the size it declares.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if ret < 0 {
        return Err(last_os_error(format!(
            "process.scheduler {:?}: sched_setattr",
            s.policy()
        )));
    }
    Ok(())
}

/// process.ioPriority through ioprio_set(2).
pub fn set_io_priority(p: &LinuxIOPriority) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: i64 = 13;
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::spec(
            "process.ioPriority.priority",
            format!("{} is not in 0..=7", p.priority()),
        ));
    }
    let class: i64 = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let value = (class << IOPRIO_CLASS_SHIFT) | p.priority();
    // SAFETY: ioprio_set takes plain integers.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if ret < 0 {
        return Err(last_os_error(format!(
            "process.ioPriority {}: ioprio_set",
            p.class()
        )));
    }
    Ok(())
}

/// execCPUAffinity: runs the process on the CPUs of a list like "0-3,7".
pub fn set_affinity(cpus: &str) -> Result<()> {
    let field = "process.execCPUAffinity";
    let mut set = rustix::thread::CpuSet::new();
    for part in cpus.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| Error::spec(field, format!("{cpus:?} is not a CPU list")))
        };
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => (parse(part)?, parse(part)?),
        };
        if first > last || last >= rustix::thread::CpuSet::MAX_CPU {
            return Err(Error::spec(field, format!("{cpus:?} is not a CPU list")));
        }
        for cpu in first..=last {
            set.set(cpu);
        }
    }
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| {
        Error::os(
            format!("{field} {cpus:?}: sched_setaffinity"),
            e.raw_os_error(),
        )
    })?;
    tracing::debug!("{field} {cpus:?}: affinity: {}", hex_mask(&set));
    Ok(())
}

/// A CPU set as the hexadecimal mask logs show ("0,1" is 0x3).
fn hex_mask(set: &rustix::thread::CpuSet) -> String {
    let mut words = vec![0u64; rustix::thread::CpuSet::MAX_CPU.div_ceil(64)];
    for cpu in (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c)) {
        words[cpu / 64] |= 1 << (cpu % 64);
    }
    while words.len() > 1 && words.last() == Some(&0) {
        words.pop();
    }
    let mut hex = format!("0x{:x}", words.pop().unwrap_or(0));
    for word in words.iter().rev() {
        hex.push_str(&format!("{word:016x}"));
    }
    hex
}

/// Lets process `pid` run on every CPU (the kernel clamps the mask to the
/// CPUs there are and to its cpuset), so that it does not keep the CPU
/// affinity of berth, which it inherited (runc 1.3.1 does the same). A
/// failure only costs the process that inheritance: a warning.
pub fn reset_affinity(pid: i32) {
    // Room for more CPUs than any kernel supports, so that CPUs plugged in
    // later are allowed too.
    let mask = [u64::MAX; 128];
    // SAFETY: sched_setaffinity reads `size_of_val(&mask)` bytes of mask.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            std::mem::size_of_val(&mask),
            mask.as_ptr(),
        )
    };
    if ret < 0 {
        tracing::warn!(
            "reset the CPU affinity of pid {pid}: {}; the process keeps berth's",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_sets_print_as_hexadecimal_masks() {
        let mut set = rustix::thread::CpuSet::new();
        set.set(0);
        set.set(1);
        assert_eq!(hex_mask(&set), "0x3");
        set.set(64);
        assert_eq!(hex_mask(&set), "0x10000000000000003");
        assert_eq!(hex_mask(&rustix::thread::CpuSet::new()), "0x0");
    }
}
