//! process.rlimits.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};
use rustix::process::{Resource, Rlimit};

use crate::{Context, Result};

fn resource(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitCpu => Resource::Cpu,
        PosixRlimitType::RlimitFsize => Resource::Fsize,
        PosixRlimitType::RlimitData => Resource::Data,
        PosixRlimitType::RlimitStack => Resource::Stack,
        PosixRlimitType::RlimitCore => Resource::Core,
        PosixRlimitType::RlimitRss => Resource::Rss,
        PosixRlimitType::RlimitNproc => Resource::Nproc,
        PosixRlimitType::RlimitNofile => Resource::Nofile,
        PosixRlimitType::RlimitMemlock => Resource::Memlock,
        PosixRlimitType::RlimitAs => Resource::As,
        PosixRlimitType::RlimitLocks => Resource::Locks,
        PosixRlimitType::RlimitSigpending => Resource::Sigpending,
        PosixRlimitType::RlimitMsgqueue => Resource::Msgqueue,
        PosixRlimitType::RlimitNice => Resource::Nice,
        PosixRlimitType::RlimitRtprio => Resource::Rtprio,
        PosixRlimitType::RlimitRttime => Resource::Rttime,
    }
}

fn limit(value: u64) -> Option<u64> {
    (value != u64::MAX).then_some(value)
}

/// Applies every rlimit. Raising a hard limit needs CAP_SYS_RESOURCE; where
/// berth lacks it the kernel's EPERM is reported with the rlimit's name.
pub fn apply(rlimits: &[PosixRlimit]) -> Result<()> {
    for (i, r) in rlimits.iter().enumerate() {
        let value = Rlimit {
            current: limit(r.soft()),
            maximum: limit(r.hard()),
        };
        rustix::process::setrlimit(resource(r.typ()), value).ctx(|| {
            format!(
                "process.rlimits[{i}] {} (soft {}, hard {}): setrlimit",
                r.typ(),
                r.soft(),
                r.hard()
            )
        })?;
    }
    Ok(())
}
