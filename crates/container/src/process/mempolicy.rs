//! linux.memoryPolicy: the NUMA memory policy set with set_mempolicy(2)
//! before the exec, which the program and its children inherit.
//!
//! As runc: the nodes are a list like `0-3,7`; MPOL_DEFAULT and MPOL_LOCAL
//! take none, MPOL_PREFERRED any number, the other modes at least one.
//! Nodes the host lacks are the kernel's to judge (it refuses them, unless
//! MPOL_F_STATIC_NODES asks it to remember them for later).

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

use crate::{Error, Result};

/// The modes berth sets (the match in [`MemoryPolicy::from_spec`] takes
/// every one), listed for `features`.
pub const MODES: [MemoryPolicyModeType; 7] = [
    MemoryPolicyModeType::MpolDefault,
    MemoryPolicyModeType::MpolPreferred,
    MemoryPolicyModeType::MpolBind,
    MemoryPolicyModeType::MpolInterleave,
    MemoryPolicyModeType::MpolLocal,
    MemoryPolicyModeType::MpolPreferredMany,
    MemoryPolicyModeType::MpolWeightedInterleave,
];

/// The mode flags berth sets, listed for `features`.
pub const FLAGS: [MemoryPolicyFlagType; 3] = [
    MemoryPolicyFlagType::MpolFNumaBalancing,
    MemoryPolicyFlagType::MpolFRelativeNodes,
    MemoryPolicyFlagType::MpolFStaticNodes,
];

/// The highest node number accepted, as runc's.
const MAX_NODE: u32 = 64 * 1024;

/// A checked policy: set_mempolicy's mode (flags or'ed in) and node mask.
#[derive(Debug, PartialEq, Eq)]
pub struct MemoryPolicy {
    mode: i32,
    /// One bit per node, 64 nodes a word.
    mask: Vec<libc::c_ulong>,
}

impl MemoryPolicy {
    pub fn from_spec(spec: &LinuxMemoryPolicy) -> Result<MemoryPolicy> {
        use MemoryPolicyModeType as M;
        let nodes = spec.nodes().as_deref().unwrap_or("");
        let list = parse_nodes(nodes).map_err(|m| {
            Error::spec(
                "linux.memoryPolicy.nodes",
                format!("invalid memory policy nodes {nodes:?}: {m}"),
            )
        })?;
        let (mode, needs) = match spec.mode() {
            M::MpolDefault => (0, Some(false)),
            M::MpolPreferred => (1, None),
            M::MpolBind => (2, Some(true)),
            M::MpolInterleave => (3, Some(true)),
            M::MpolLocal => (4, Some(false)),
            M::MpolPreferredMany => (5, Some(true)),
            M::MpolWeightedInterleave => (6, Some(true)),
        };
        let count = list.len();
        match needs {
            Some(false) if count != 0 => {
                return Err(Error::spec(
                    "linux.memoryPolicy.nodes",
                    format!(
                        "memory policy mode requires 0 nodes but got {count} ({})",
                        spec.mode()
                    ),
                ))
            }
            Some(true) if count == 0 => {
                return Err(Error::spec(
                    "linux.memoryPolicy.nodes",
                    format!(
                        "memory policy mode requires at least one node but got 0 ({})",
                        spec.mode()
                    ),
                ))
            }
            _ => {}
        }
        let flags = spec.flags().iter().flatten().fold(0, |acc, f| {
            acc | match f {
                MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
                MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
                MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
            }
        });
        let bits = libc::c_ulong::BITS;
        let words = list.iter().max().map_or(0, |max| max / bits + 1);
        let mut mask = vec![0; words as usize];
        for node in list {
            mask[(node / bits) as usize] |= 1 << (node % bits);
        }
        Ok(MemoryPolicy {
            mode: mode | flags,
            mask,
        })
    }

    /// Sets the policy of the calling process.
    pub fn apply(&self) -> Result<()> {
        // The kernel reads maxnode - 1 bits.
        let maxnode =
            self.mask.len() as libc::c_ulong * libc::c_ulong::from(libc::c_ulong::BITS) + 1;
        let mask = if self.mask.is_empty() {
            std::ptr::null()
        } else {
            self.mask.as_ptr()
        };
        loop {
            // SAFETY: the mask holds maxnode - 1 bits.
            let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, self.mode, mask, maxnode) };
            if ret == 0 {
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::spec(
                    "linux.memoryPolicy",
                    format!("set_mempolicy: {err} (are the nodes online?)"),
                ));
            }
        }
    }
}

/// The node numbers of a list like `0-3,7` (spaces and empty elements
/// allowed, as runc allows them).
fn parse_nodes(text: &str) -> std::result::Result<Vec<u32>, String> {
    let number = |s: &str| -> std::result::Result<u32, String> {
        let n: u64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a node number"))?;
        if n > u64::from(MAX_NODE) {
            return Err(format!("values larger than {MAX_NODE} are not supported"));
        }
        Ok(n as u32)
    };
    let mut nodes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (number(a.trim())?, number(b.trim())?),
            None => (number(part)?, number(part)?),
        };
        if start > end {
            return Err(format!("invalid range {part:?}"));
        }
        nodes.extend(start..=end);
    }
    nodes.sort_unstable();
    nodes.dedup();
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<MemoryPolicy> {
        MemoryPolicy::from_spec(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn modes_flags_and_nodes_become_set_mempolicy_arguments() {
        let p =
            policy(r#"{"mode":"MPOL_BIND","nodes":"0-2, 65,","flags":["MPOL_F_STATIC_NODES"]}"#)
                .unwrap();
        assert_eq!(p.mode, 2 | 1 << 15);
        assert_eq!(p.mask, [0b111, 0b10]);
        let p = policy(r#"{"mode":"MPOL_PREFERRED"}"#).unwrap();
        assert_eq!((p.mode, p.mask.len()), (1, 0));
        let p = policy(r#"{"mode":"MPOL_DEFAULT"}"#).unwrap();
        assert_eq!(p.mode, 0);
    }

    #[test]
    fn node_counts_are_checked_per_mode_as_runc() {
        let err = policy(r#"{"mode":"MPOL_DEFAULT","nodes":"0-7"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mode requires 0 nodes but got 8"), "{err}");
        let err = policy(r#"{"mode":"MPOL_INTERLEAVE"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one node"), "{err}");
        let err = policy(r#"{"mode":"MPOL_BIND","nodes":"0-9876543210"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid memory policy node"), "{err}");
        assert!(policy(r#"{"mode":"MPOL_BIND","nodes":"3-1"}"#).is_err());
    }
}
