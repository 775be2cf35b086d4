//! The five capability sets of process.capabilities.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::{Error, Result};

/// Converts spec capabilities to the caps crate's type. Every name the spec
/// parser accepts is one the caps crate knows.
fn convert(set: &Option<Capabilities>) -> CapsHashSet {
    set.iter()
        .flatten()
        .filter_map(|c| Capability::from_str(&format!("CAP_{c}")).ok())
        .collect()
}

/// The highest capability number the running kernel knows, probed with
/// PR_CAPBSET_READ (EINVAL past the last) once. Never read from
/// /proc/sys/kernel/cap_last_cap: inside the container that path is what
/// the spec's mounts and the image make it.
fn last_cap() -> u32 {
    use std::sync::OnceLock;
    static LAST: OnceLock<u32> = OnceLock::new();
    *LAST.get_or_init(|| {
        let known = |cap: u32| {
            // SAFETY: PR_CAPBSET_READ only reads the calling thread's set.
            unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) >= 0 }
        };
        // Capability 0 always exists; find the first number past the last.
        let (mut low, mut high) = (0u32, 64u32);
        while high - low > 1 {
            let mid = (low + high) / 2;
            if known(mid) {
                low = mid;
            } else {
                high = mid;
            }
        }
        low
    })
}

/// Whether the running kernel knows `cap`.
fn kernel_knows(cap: Capability) -> bool {
    u32::from(cap.index()) <= last_cap()
}

/// Takes out of every set of `caps` what berth's own bounding set lacks
/// (a nested or restricted host): such a capability could never be held,
/// and runc drops it with a warning rather than fail. Returns the names
/// dropped.
pub fn drop_unavailable(caps: &mut LinuxCapabilities) -> Vec<String> {
    let Ok(available) = caps::read(None, CapSet::Bounding) else {
        return Vec::new();
    };
    let mut dropped: Vec<String> = Vec::new();
    let mut keep = |set: &Option<Capabilities>| -> Option<Capabilities> {
        set.as_ref().map(|set| {
            set.iter()
                .copied()
                .filter(|c| {
                    let held = Capability::from_str(&format!("CAP_{c}"))
                        .is_ok_and(|cap| available.contains(&cap) || !kernel_knows(cap));
                    if !held && !dropped.contains(&c.to_string()) {
                        dropped.push(c.to_string());
                    }
                    held
                })
                .collect()
        })
    };
    let bounding = keep(caps.bounding());
    let effective = keep(caps.effective());
    let permitted = keep(caps.permitted());
    let inheritable = keep(caps.inheritable());
    let ambient = keep(caps.ambient());
    caps.set_bounding(bounding);
    caps.set_effective(effective);
    caps.set_permitted(permitted);
    caps.set_inheritable(inheritable);
    caps.set_ambient(ambient);
    dropped.sort();
    dropped
}

/// [`drop_unavailable`] for a process about to be set up, with the
/// warning runc gives.
pub fn drop_unavailable_from(process: &mut oci_spec::runtime::Process) {
    let Some(mut caps) = process.capabilities().clone() else {
        return;
    };
    let dropped = drop_unavailable(&mut caps);
    if !dropped.is_empty() {
        tracing::warn!(
            "process.capabilities: berth's own bounding set lacks {}: dropped from the request",
            dropped.join(", ")
        );
        process.set_capabilities(Some(caps));
    }
}

/// Drops from the bounding set what the spec does not list: every
/// capability the kernel knows, by number, including any newer than the
/// names berth knows. This needs CAP_SETPCAP, so it runs before the switch
/// to the container's user.
pub fn limit_bounding(caps: &LinuxCapabilities) -> Result<()> {
    let keep: Vec<u32> = convert(caps.bounding())
        .iter()
        .map(|c| u32::from(c.index()))
        .collect();
    for cap in (0..=last_cap()).filter(|c| !keep.contains(c)) {
        // SAFETY: PR_CAPBSET_DROP changes only the calling thread's set.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } < 0 {
            let name = caps::all()
                .into_iter()
                .find(|c| u32::from(c.index()) == cap)
                .map_or_else(|| format!("capability {cap}"), |c| c.to_string());
            return Err(Error::Message(format!(
                "process.capabilities.bounding: drop {name}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// Sets the inheritable, effective and permitted sets, then raises the
/// ambient ones. Runs after the switch to the container's user (which keeps
/// the permitted set through PR_SET_KEEPCAPS).
pub fn apply(caps: &LinuxCapabilities) -> Result<()> {
    // What berth does not hold itself cannot be granted: name it, rather
    // than let capset(2) fail with a bare EPERM.
    let held = caps::read(None, CapSet::Permitted).unwrap_or_default();
    let permitted = convert(caps.permitted());
    let effective = convert(caps.effective());
    let inheritable = convert(caps.inheritable());
    let wanted: CapsHashSet = permitted
        .union(&effective)
        .copied()
        .filter(|c| kernel_knows(*c))
        .collect();
    let mut missing: Vec<String> = wanted.difference(&held).map(|c| c.to_string()).collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(Error::Message(format!(
            "process.capabilities: {} cannot be granted: berth does not hold {} itself",
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" },
        )));
    }
    let set = |which: CapSet, field: &str, value: &CapsHashSet| {
        let value: CapsHashSet = value.iter().copied().filter(|c| kernel_knows(*c)).collect();
        caps::set(None, which, &value)
            .map_err(|e| Error::Message(format!("process.capabilities.{field}: {e}")))
    };
    // Inheritable first, while the permitted set still covers it; effective
    // before permitted, as the effective set may never exceed the permitted.
    set(CapSet::Inheritable, "inheritable", &inheritable)?;
    set(CapSet::Effective, "effective", &effective)?;
    set(CapSet::Permitted, "permitted", &permitted)?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| Error::Message(format!("process.capabilities.ambient: {e}")))?;
    // The kernel raises an ambient capability only if it is permitted and
    // inheritable. As in runc, one the other sets do not allow is skipped
    // rather than fatal; it is not even asked for (runc's own spec lists
    // ambient capabilities without inheritable ones, and a refused raise
    // costs a formatted error each).
    let raisable: CapsHashSet = permitted.intersection(&inheritable).copied().collect();
    for cap in convert(caps.ambient()) {
        if !raisable.contains(&cap) {
            tracing::debug!("process.capabilities.ambient: {cap} is not both permitted and inheritable; skipped");
            continue;
        }
        if let Err(e) = caps::raise(None, CapSet::Ambient, cap) {
            tracing::debug!("process.capabilities.ambient: cannot raise {cap}: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_capability_is_the_kernels() {
        let from_proc: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(last_cap(), from_proc);
    }

    #[test]
    fn spec_names_convert_to_kernel_capabilities() {
        let set: Capabilities =
            serde_json::from_str(r#"["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_AUDIT_WRITE"]"#)
                .unwrap();
        let converted = convert(&Some(set));
        assert_eq!(converted.len(), 3);
        assert!(converted.contains(&Capability::CAP_NET_ADMIN));
        assert!(converted.contains(&Capability::CAP_AUDIT_WRITE));
    }
}
