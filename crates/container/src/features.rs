//! `features`: what this berth supports, in the runtime-spec's
//! features.md format. Only what is implemented is claimed.

use serde_json::{json, Value};

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
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true},
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
            "intelRdt": {"enabled": false},
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
