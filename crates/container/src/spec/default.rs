//! The config.json that `berth spec` writes, like `runc spec`.

use oci_spec::runtime::Spec;
use serde_json::json;

/// Which default spec to write.
#[derive(Debug, Clone, Copy)]
pub enum DefaultSpec {
    /// For berth run as root.
    Root,
    /// For berth run by this unprivileged user: a user namespace mapping the
    /// user to root, no network namespace, /sys bound from the host and no
    /// cgroup limits.
    Rootless { uid: u32, gid: u32 },
}

/// Builds the default spec: `sh` with a terminal in a busybox-like rootfs,
/// the usual pseudo-filesystems, masked /proc files and three capabilities.
/// A cgroup namespace only on a cgroup v2 host, as runc: on v1 it would
/// hide the container's own cgroup paths behind the host's mounts.
pub fn default_spec(kind: DefaultSpec) -> Spec {
    let cgroup2 = matches!(
        berth_cgroups::Host::detect(),
        Ok(berth_cgroups::Host::Unified { .. })
    );
    default_spec_for(kind, cgroup2)
}

fn default_spec_for(kind: DefaultSpec, cgroup2: bool) -> Spec {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut spec = json!({
        "ociVersion": crate::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if let DefaultSpec::Rootless { uid, gid } = kind {
        let linux = &mut spec["linux"];
        linux["resources"] = json!(null);
        linux["namespaces"] = json!([
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
            {"type": "mount"}, {"type": "user"}
        ]);
        linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        let mounts = spec["mounts"].as_array_mut().expect("mounts is an array");
        mounts.retain(|m| m["type"] != "cgroup");
        for m in mounts.iter_mut() {
            if m["type"] == "sysfs" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if m["type"] == "devpts" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
        }
    }
    if cgroup2 {
        let namespaces = spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces is an array");
        namespaces.push(json!({"type": "cgroup"}));
    }
    serde_json::from_value(spec).expect("the default spec is a valid Spec")
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxNamespaceType;

    #[test]
    fn the_default_spec_round_trips() {
        let spec = default_spec(DefaultSpec::Root);
        assert_eq!(spec.hostname().as_deref(), Some("berth"));
        assert_eq!(spec.mounts().as_ref().unwrap().len(), 7);
    }

    fn namespace_types(spec: &Spec) -> Vec<LinuxNamespaceType> {
        let linux = spec.linux().as_ref().unwrap();
        let namespaces = linux.namespaces().as_ref().unwrap();
        namespaces.iter().map(|n| n.typ()).collect()
    }

    #[test]
    fn a_cgroup_namespace_only_on_cgroup_v2() {
        for kind in [DefaultSpec::Root, DefaultSpec::Rootless { uid: 1, gid: 1 }] {
            let v2 = namespace_types(&default_spec_for(kind, true));
            assert!(v2.contains(&LinuxNamespaceType::Cgroup), "{kind:?}");
            let v1 = namespace_types(&default_spec_for(kind, false));
            assert!(!v1.contains(&LinuxNamespaceType::Cgroup), "{kind:?}");
        }
    }

    #[test]
    fn the_rootless_spec_maps_the_user_to_root() {
        let spec = default_spec(DefaultSpec::Rootless {
            uid: 1000,
            gid: 100,
        });
        let linux = spec.linux().as_ref().unwrap();
        let types: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(types.contains(&LinuxNamespaceType::User));
        assert!(!types.contains(&LinuxNamespaceType::Network));
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), 1000);
        assert!(linux.resources().is_none());
    }
}
