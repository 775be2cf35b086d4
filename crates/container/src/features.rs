//! `features`: what this berth supports, in the runtime-spec's
//! features.md format. Only what is implemented is claimed, as the tests
//! below check against the implementation itself.

use serde_json::{json, Value};

use crate::process::mempolicy;
use crate::rootfs::known_options;

/// The CRIU in PATH: its version, or why there is none to use.
fn criu_found() -> String {
    match crate::criu::version() {
        Ok(v) if v >= crate::criu::MIN_VERSION => crate::criu::dotted(v),
        Ok(v) => format!(
            "{} (too old: {} needed)",
            crate::criu::dotted(v),
            crate::criu::dotted(crate::criu::MIN_VERSION)
        ),
        Err(e) => format!("unavailable: {e}"),
    }
}

pub fn features() -> Value {
    let capabilities: Vec<String> = {
        let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        caps.sort();
        caps
    };
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": known_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": capabilities,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                    "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": [
                    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86",
                    "SCMP_ARCH_X86_64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64"
                ],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ],
                "supportedFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ]
            },
            "apparmor": {"enabled": crate::lsm::apparmor_enabled()},
            "selinux": {"enabled": crate::lsm::selinux_enabled()},
            "intelRdt": {"enabled": true, "schemata": true, "monitoring": true},
            "memoryPolicy": {
                "modes": mempolicy::MODES.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "flags": mempolicy::FLAGS.iter().map(ToString::to_string).collect::<Vec<_>>()
            },
            "netDevices": {"enabled": true},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {
            "io.github.berth.version": env!("CARGO_PKG_VERSION"),
            // As runc's org.opencontainers.runc.checkpoint.enabled; the
            // CRIU berth would drive, asked over its RPC.
            "io.github.berth.checkpoint.enabled": "true",
            "io.github.berth.checkpoint.criu": criu_found(),
            // CDI devices berth injects itself (see `berth cdi`).
            "io.github.berth.cdi.versions": crate::cdi::spec::VERSIONS.join(","),
            "io.github.berth.cdi.specDirs": crate::cdi::registry::DEFAULT_SPEC_DIRS.join(","),
            "io.github.berth.cdi.requests": format!("annotations {}<key>, process.env {}", crate::cdi::ANNOTATION_PREFIX, crate::cdi::NVIDIA_ENV)
        },
        "potentiallyUnsafeConfigAnnotations": []
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use oci_spec::runtime::{Features, LinuxIntelRdt, LinuxMemoryPolicy, LinuxSeccomp, Spec};
    use serde_json::{json, Value};

    use super::features;
    use crate::intelrdt::{self, RdtGroup, Resctrl};
    use crate::process::{mempolicy::MemoryPolicy, seccomp};

    fn strings(v: &Value) -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("{v} is not a list"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }

    /// A spec with the runtime-spec's shape checked, and validated as
    /// `create` validates it, with `linux` merged in.
    fn validate(linux: Value) -> crate::Result<std::path::PathBuf> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let mut config = json!({
            "ociVersion": crate::OCI_VERSION,
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network"}]}
        });
        for (key, value) in linux.as_object().unwrap() {
            config["linux"][key] = value.clone();
        }
        let spec: Spec = serde_json::from_value(config).unwrap();
        crate::spec::validate(&spec, dir.path())
    }

    #[test]
    fn features_have_the_runtime_spec_shape() {
        let features: Features = serde_json::from_value(features()).unwrap();
        let linux = features.linux().as_ref().unwrap();
        assert!(linux.net_devices().is_some() && linux.memory_policy().is_some());
        assert_eq!(features.oci_version_max(), crate::OCI_VERSION);
        validate(json!({})).unwrap();
    }

    #[test]
    fn every_memory_policy_mode_and_flag_listed_is_set() {
        let f = features();
        let modes = strings(&f["linux"]["memoryPolicy"]["modes"]);
        // Every mode the spec has.
        assert_eq!(modes.len(), 7, "{modes:?}");
        for mode in &modes {
            let takes_none = mode == "MPOL_DEFAULT" || mode == "MPOL_LOCAL";
            let nodes = if takes_none { json!(null) } else { json!("0") };
            let policy: LinuxMemoryPolicy =
                serde_json::from_value(json!({"mode": mode, "nodes": nodes})).unwrap();
            MemoryPolicy::from_spec(&policy).unwrap_or_else(|e| panic!("{mode}: {e}"));
        }
        let flags = strings(&f["linux"]["memoryPolicy"]["flags"]);
        assert_eq!(flags.len(), 3, "{flags:?}");
        for flag in &flags {
            let policy: LinuxMemoryPolicy =
                serde_json::from_value(json!({"mode": "MPOL_BIND", "nodes": "0", "flags": [flag]}))
                    .unwrap();
            MemoryPolicy::from_spec(&policy).unwrap_or_else(|e| panic!("{flag}: {e}"));
        }
    }

    #[test]
    fn net_devices_are_claimed_and_taken() {
        assert_eq!(features()["linux"]["netDevices"]["enabled"], true);
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: linux.netDevices is for root only");
            return;
        }
        validate(json!({"netDevices": {"eth1": {"name": "ctr0"}}})).unwrap();
    }

    #[test]
    fn intel_rdt_schemata_and_monitoring_are_claimed_and_done() {
        let claimed = &features()["linux"]["intelRdt"];
        assert_eq!(claimed["enabled"], true);
        assert_eq!(claimed["schemata"], true);
        assert_eq!(claimed["monitoring"], true);
        let spec = json!({"schemata": ["L3:0=f"], "enableMonitoring": true});
        validate(json!({"intelRdt": spec})).unwrap();
        let rdt: LinuxIntelRdt = serde_json::from_value(spec).unwrap();
        assert_eq!(intelrdt::schemata(&rdt), "L3:0=f\n");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("info/L3_MON")).unwrap();
        let group = RdtGroup::plan(&Resctrl::at(dir.path()), &rdt, "c").unwrap();
        assert!(group.monitoring.is_some());
    }

    #[test]
    fn every_seccomp_action_operator_and_arch_listed_builds() {
        let f = features();
        let seccomp_features = &f["linux"]["seccomp"];
        let archs = strings(&seccomp_features["archs"]);
        let operators = strings(&seccomp_features["operators"]);
        let build = |action: &str, archs: Value| {
            // Every operator, on one rule.
            let args: Vec<Value> = operators
                .iter()
                .enumerate()
                .map(|(i, op)| json!({"index": i % 6, "value": 1, "valueTwo": 1, "op": op}))
                .collect();
            let profile: LinuxSeccomp = serde_json::from_value(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": archs,
                "listenerPath": "/run/x.sock",
                "syscalls": [{"names": ["getcwd"], "action": action, "args": args}]
            }))
            .unwrap();
            seccomp::build(&profile)
        };
        for action in strings(&seccomp_features["actions"]) {
            build(&action, json!([])).unwrap_or_else(|e| panic!("{action}: {e}"));
        }
        // One at a time, those of the host's byte order: libseccomp puts no
        // two byte orders in one filter (runc's neither).
        let big_endian = ["SCMP_ARCH_S390X"];
        for arch in archs
            .iter()
            .filter(|a| big_endian.contains(&a.as_str()) == cfg!(target_endian = "big"))
        {
            build("SCMP_ACT_ERRNO", json!([arch])).unwrap_or_else(|e| panic!("{arch}: {e}"));
        }
        let flags: HashSet<String> = strings(&seccomp_features["supportedFlags"])
            .into_iter()
            .collect();
        assert!(flags.is_subset(
            &strings(&seccomp_features["knownFlags"])
                .into_iter()
                .collect()
        ));
    }

    #[test]
    fn every_namespace_and_hook_listed_is_one_the_spec_names() {
        let f = features();
        for ns in strings(&f["linux"]["namespaces"]) {
            serde_json::from_value::<oci_spec::runtime::LinuxNamespaceType>(json!(ns))
                .unwrap_or_else(|e| panic!("{ns}: {e}"));
        }
        for hook in strings(&f["hooks"]) {
            let hooks: oci_spec::runtime::Hooks =
                serde_json::from_value(json!({&hook: [{"path": "/bin/true"}]})).unwrap();
            let back = serde_json::to_value(&hooks).unwrap();
            assert!(
                back.get(&hook).is_some(),
                "{hook} is not a hook of the spec"
            );
        }
    }
}
