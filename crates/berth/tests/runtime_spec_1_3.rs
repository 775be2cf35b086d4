//! The runtime-spec 1.3 fields: linux.memoryPolicy, linux.netDevices,
//! linux.intelRdt.

mod common;

use common::*;
use serde_json::json;

/// The policy of the first mapping of `head`, as numa_maps shows it.
const FIRST_POLICY: &str = "head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2";

fn has_numa() -> bool {
    runs_here(
        std::path::Path::new("/proc/self/numa_maps").exists(),
        "the kernel has no NUMA support (no /proc/self/numa_maps)",
    )
}

#[test]
fn a_memory_policy_is_set_before_the_program_runs() {
    if !has_numa() {
        return;
    }
    for (policy, want) in [
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}),
            "interleave:0",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "bind=static:0",
        ),
        (json!({"mode": "MPOL_DEFAULT"}), "default"),
    ] {
        let mut bundle = Bundle::new();
        bundle.sh(FIRST_POLICY);
        bundle.edit(|c| c["linux"]["memoryPolicy"] = policy.clone());
        assert_eq!(run_ok(&bundle).trim(), want, "{policy}");
    }
}

#[test]
fn exec_gets_the_memory_policy_too() {
    if !has_numa() {
        return;
    }
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    bundle.edit(|c| {
        c["linux"]["memoryPolicy"] =
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]})
    });
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let out = berth.ok(&["exec", &c.id, "sh", "-c", FIRST_POLICY]);
    assert_eq!(out.trim(), "prefer=relative:0");
}

#[test]
fn a_bad_memory_policy_is_refused_before_anything_is_made() {
    for (policy, want) in [
        (json!({}), "invalid memory policy mode"),
        (
            json!({"mode": "INTERLEAVE", "nodes": "0"}),
            "invalid memory policy mode",
        ),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["badflag"]}),
            "invalid memory policy flag",
        ),
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"}),
            "mode requires 0 nodes but got 8",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-9876543210"}),
            "invalid memory policy node",
        ),
    ] {
        let mut bundle = Bundle::new();
        bundle.edit(|c| c["linux"]["memoryPolicy"] = policy.clone());
        let ran = run(&bundle);
        assert_ne!(ran.code, 0, "{policy}");
        assert!(ran.stderr.contains(want), "{policy}: {}", ran.stderr);
    }
}

#[test]
fn a_node_the_host_lacks_fails_create_cleanly() {
    if !has_numa() {
        return;
    }
    // Node 63 is not online here (the kernel refuses it), unless
    // MPOL_F_STATIC_NODES asks it to keep the node for later.
    let online = std::fs::read_to_string("/sys/devices/system/node/online").unwrap_or_default();
    if !runs_here(online.trim() == "0", "the host has more than node 0") {
        return;
    }
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "63"}));
    let ran = run(&bundle);
    assert_ne!(ran.code, 0);
    assert!(ran.stderr.contains("linux.memoryPolicy"), "{}", ran.stderr);
    bundle.sh(FIRST_POLICY);
    bundle.edit(|c| {
        c["linux"]["memoryPolicy"] =
            json!({"mode": "MPOL_BIND", "nodes": "0,63", "flags": ["MPOL_F_STATIC_NODES"]})
    });
    assert_eq!(run_ok(&bundle).trim(), "bind=static:0");
}
