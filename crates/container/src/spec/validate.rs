//! Checks a spec before anything is created, so that a bad bundle fails with
//! the field at fault and leaves nothing behind.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Linux, LinuxNamespaceType, Process, Spec};

use crate::{Context, Error, Result};

/// Validates `spec` from the bundle at `bundle`; returns the absolute rootfs.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    validate_version(spec.version())?;
    let rootfs = validate_root(spec, bundle)?;
    if let Some(process) = spec.process() {
        validate_process(process)?;
    }
    let linux = spec.linux().clone().unwrap_or_default();
    let namespaces = validate_namespaces(&linux)?;
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        && !namespaces.contains(&LinuxNamespaceType::Uts)
    {
        return Err(Error::spec(
            "hostname",
            "setting it needs a UTS namespace in linux.namespaces",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty())
        && !namespaces.contains(&LinuxNamespaceType::Uts)
    {
        return Err(Error::spec(
            "domainname",
            "setting it needs a UTS namespace in linux.namespaces",
        ));
    }
    validate_linux(&linux, &namespaces)?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let destination = m.destination();
        if destination.as_os_str().is_empty() {
            return Err(Error::spec(
                format!("mounts[{i}].destination"),
                "must not be empty",
            ));
        }
        let has_uid_maps = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty());
        let has_gid_maps = m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty());
        if has_uid_maps != has_gid_maps {
            return Err(Error::spec(
                format!("mounts[{i}].uidMappings"),
                "an idmapped mount needs both uid and gid mappings",
            ));
        }
        let is_bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        if has_uid_maps && !is_bind {
            return Err(Error::spec(
                format!("mounts[{i}].uidMappings"),
                "only bind mounts can be idmapped",
            ));
        }
        if m.typ().as_deref() == Some("bind") && m.source().is_none() {
            return Err(Error::spec(
                format!("mounts[{i}].source"),
                "a bind mount needs a source",
            ));
        }
    }
    Ok(rootfs)
}

/// ociVersion must be a 1.x semantic version.
fn validate_version(version: &str) -> Result<()> {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !numeric {
        return Err(Error::spec(
            "ociVersion",
            format!("{version:?} is not a version like 1.2.0"),
        ));
    }
    if parts[0] != "1" {
        return Err(Error::spec(
            "ociVersion",
            format!("{version:?} is not supported (berth implements runtime-spec 1.x)"),
        ));
    }
    Ok(())
}

fn validate_root(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::spec("root", "is required"))?;
    if root.path().as_os_str().is_empty() {
        return Err(Error::spec("root.path", "must not be empty"));
    }
    let given = bundle.join(root.path());
    // The bundle is the engine's: symlinks in its path are followed once,
    // here, as runc does; inside the rootfs nothing is.
    let rootfs = std::fs::canonicalize(&given).ctx(|| format!("root.path {given:?}"))?;
    if !rootfs.is_dir() {
        return Err(Error::spec(
            "root.path",
            format!("{given:?} is not a directory"),
        ));
    }
    Ok(rootfs)
}

/// Checks a process: the spec's, or one `exec` runs.
pub fn validate_process(process: &Process) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::spec("process.args", "must name the program to run"));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::spec(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    for (i, var) in process.env().iter().flatten().enumerate() {
        if !var.contains('=') {
            return Err(Error::spec(
                format!("process.env[{i}]"),
                format!("{var:?} is not KEY=value"),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, rlimit) in process.rlimits().iter().flatten().enumerate() {
        if !seen.insert(rlimit.typ().to_string()) {
            return Err(Error::spec(
                format!("process.rlimits[{i}]"),
                format!("{} is listed twice", rlimit.typ()),
            ));
        }
        if rlimit.soft() > rlimit.hard() {
            return Err(Error::spec(
                format!("process.rlimits[{i}]"),
                "soft limit is above the hard limit",
            ));
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(Error::spec(
                "process.oomScoreAdj",
                format!("{adj} is not in -1000..=1000"),
            ));
        }
    }
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        if !crate::lsm::apparmor_enabled() {
            return Err(Error::spec(
                "process.apparmorProfile",
                format!("{profile:?} was asked for, but AppArmor is not enabled on this host"),
            ));
        }
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        if !crate::lsm::selinux_enabled() {
            return Err(Error::spec(
                "process.selinuxLabel",
                format!("{label:?} was asked for, but SELinux is not enabled on this host"),
            ));
        }
    }
    Ok(())
}

/// The namespace types the container has (new or joined). Duplicates and
/// combinations the kernel cannot give are refused.
fn validate_namespaces(linux: &Linux) -> Result<HashSet<LinuxNamespaceType>> {
    let mut types = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !types.insert(ns.typ()) {
            return Err(Error::spec(
                format!("linux.namespaces[{i}]"),
                format!("{} is listed twice", ns.typ()),
            ));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(Error::spec(
                    format!("linux.namespaces[{i}].path"),
                    format!("{path:?} is not absolute"),
                ));
            }
        }
    }
    let joined_user = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_some());
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    let new_user = types.contains(&LinuxNamespaceType::User) && !joined_user;
    if has_maps && !new_user {
        return Err(Error::spec(
            "linux.uidMappings",
            "id mappings need a new user namespace in linux.namespaces",
        ));
    }
    if new_user {
        for (field, maps) in [
            ("linux.uidMappings", linux.uid_mappings()),
            ("linux.gidMappings", linux.gid_mappings()),
        ] {
            if maps.as_ref().is_none_or(|m| m.is_empty()) {
                return Err(Error::spec(field, "a new user namespace needs id mappings"));
            }
        }
    }
    if linux.time_offsets().as_ref().is_some_and(|o| !o.is_empty()) {
        let new_time = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|ns| ns.typ() == LinuxNamespaceType::Time && ns.path().is_none());
        if !new_time {
            return Err(Error::spec(
                "linux.timeOffsets",
                "offsets need a new time namespace in linux.namespaces",
            ));
        }
        for key in linux.time_offsets().iter().flatten().map(|(k, _)| k) {
            if key != "monotonic" && key != "boottime" {
                return Err(Error::spec(
                    format!("linux.timeOffsets.{key}"),
                    "only monotonic and boottime clocks have offsets",
                ));
            }
        }
    }
    Ok(types)
}

fn validate_linux(linux: &Linux, namespaces: &HashSet<LinuxNamespaceType>) -> Result<()> {
    for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
        let needed = sysctl_namespace(key).ok_or_else(|| {
            Error::spec(
                format!("linux.sysctl.{key}"),
                "is not namespaced, so a container may not set it",
            )
        })?;
        if !namespaces.contains(&needed) {
            return Err(Error::spec(
                format!("linux.sysctl.{key}"),
                format!("needs a {needed} namespace in linux.namespaces"),
            ));
        }
        sysctl_path(key)?;
    }
    match linux.rootfs_propagation().as_deref() {
        None | Some("") => {}
        Some(p) if crate::rootfs::propagation_flag(p).is_some() => {}
        Some(p) => {
            return Err(Error::spec(
                "linux.rootfsPropagation",
                format!("{p:?} is not a propagation mode"),
            ))
        }
    }
    // Relative maskedPaths and readonlyPaths are taken from the container's
    // root, as runc takes them (it applies them once / is the rootfs).
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            return Err(Error::spec(
                format!("linux.devices[{i}].path"),
                format!("{:?} is not absolute", d.path()),
            ));
        }
    }
    if let Some(rdt) = linux.intel_rdt() {
        crate::intelrdt::validate(rdt)?;
    }
    if let Some(policy) = linux.memory_policy() {
        crate::process::mempolicy::MemoryPolicy::from_spec(policy)?;
    }
    if let Some(devices) = linux.net_devices().as_ref().filter(|d| !d.is_empty()) {
        crate::netdev::validate(devices, namespaces.contains(&LinuxNamespaceType::Network))?;
        if !rustix::process::geteuid().is_root() {
            return Err(Error::spec(
                "linux.netDevices",
                "network devices are not supported for rootless containers",
            ));
        }
    }
    Ok(())
}

/// The namespace a sysctl belongs to, or `None` when it is host-wide.
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// The file under /proc/sys of a sysctl key (`net.ipv4.ip_forward` →
/// `net/ipv4/ip_forward`). Every dot-separated part must be a plain name:
/// no empty part (a leading dot would make the path absolute), no `..`.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    let parts: Vec<&str> = key.split('.').collect();
    let plain = |p: &&str| !p.is_empty() && !p.contains('/') && *p != ".." && !p.contains('\0');
    if parts.iter().all(plain) {
        Ok(parts.iter().collect())
    } else {
        Err(Error::spec(
            format!("linux.sysctl.{key}"),
            "is not a sysctl name",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: serde_json::Value) -> Result<PathBuf> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let mut base = serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]}
        });
        merge(&mut base, json);
        let spec: Spec = serde_json::from_value(base).unwrap();
        validate(&spec, dir.path())
    }

    fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        if let (Some(b), serde_json::Value::Object(p)) = (base.as_object_mut(), patch) {
            for (k, v) in p {
                b.insert(k, v);
            }
        }
    }

    fn field_of(result: Result<PathBuf>) -> String {
        match result.unwrap_err() {
            Error::Spec { field, .. } => field,
            other => panic!("not a spec error: {other}"),
        }
    }

    #[test]
    fn a_plain_spec_passes() {
        assert!(check(serde_json::json!({})).unwrap().ends_with("rootfs"));
    }

    #[test]
    fn versions_other_than_1_x_are_refused() {
        assert_eq!(
            field_of(check(serde_json::json!({"ociVersion": "2.0.0"}))),
            "ociVersion"
        );
        assert_eq!(
            field_of(check(serde_json::json!({"ociVersion": "one"}))),
            "ociVersion"
        );
        check(serde_json::json!({"ociVersion": "1.0.2-dev"})).unwrap();
    }

    #[test]
    fn a_missing_rootfs_names_root_path() {
        let err = check(serde_json::json!({"root": {"path": "nope"}}))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("root.path"), "{err}");
        assert!(err.ends_with("no such file or directory"), "{err}");
    }

    #[test]
    fn process_fields_are_checked() {
        let bad_args =
            serde_json::json!({"process": {"args": [], "cwd": "/", "user": {"uid": 0, "gid": 0}}});
        assert_eq!(field_of(check(bad_args)), "process.args");
        let bad_cwd = serde_json::json!({"process": {"args": ["sh"], "cwd": "tmp", "user": {"uid": 0, "gid": 0}}});
        assert_eq!(field_of(check(bad_cwd)), "process.cwd");
        let twice = serde_json::json!({"process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}]}});
        assert_eq!(field_of(check(twice)), "process.rlimits[1]");
    }

    #[test]
    fn impossible_namespace_combinations_are_refused() {
        let dup = serde_json::json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}});
        assert_eq!(field_of(check(dup)), "linux.namespaces[1]");
        let maps_without_userns = serde_json::json!({"linux": {"namespaces": [{"type": "pid"}],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}});
        assert_eq!(field_of(check(maps_without_userns)), "linux.uidMappings");
        let userns_without_maps = serde_json::json!({"linux": {"namespaces": [{"type": "user"}]}});
        assert_eq!(field_of(check(userns_without_maps)), "linux.uidMappings");
        let offsets_without_timens = serde_json::json!({"linux": {"namespaces": [],
            "timeOffsets": {"monotonic": {"secs": 1, "nanosecs": 0}}}});
        assert_eq!(field_of(check(offsets_without_timens)), "linux.timeOffsets");
        let hostname_without_uts =
            serde_json::json!({"hostname": "h", "linux": {"namespaces": []}});
        assert_eq!(field_of(check(hostname_without_uts)), "hostname");
    }

    #[test]
    fn sysctls_need_their_namespace() {
        let net = serde_json::json!({"linux": {"namespaces": [{"type": "uts"}], "sysctl": {"net.ipv4.ip_forward": "1"}}});
        assert_eq!(field_of(check(net)), "linux.sysctl.net.ipv4.ip_forward");
        let host_wide =
            serde_json::json!({"linux": {"namespaces": [], "sysctl": {"vm.swappiness": "1"}}});
        assert_eq!(field_of(check(host_wide)), "linux.sysctl.vm.swappiness");
        for bad in ["net..x", ".wazn", "net.", "", "net/../x", "net.ipv4/conf"] {
            assert!(sysctl_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("net/ipv4/ip_forward")
        );
    }

    #[test]
    fn bad_propagation_is_refused() {
        let p = serde_json::json!({"linux": {"namespaces": [{"type":"mount"}], "rootfsPropagation": "sideways"}});
        assert_eq!(field_of(check(p)), "linux.rootfsPropagation");
    }
}
