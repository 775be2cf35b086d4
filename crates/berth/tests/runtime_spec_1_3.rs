//! The runtime-spec 1.3 fields: linux.memoryPolicy, linux.netDevices,
//! linux.intelRdt.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    run_fails_saying(&bundle, "linux.memoryPolicy");
    bundle.sh(FIRST_POLICY);
    bundle.edit(|c| {
        c["linux"]["memoryPolicy"] =
            json!({"mode": "MPOL_BIND", "nodes": "0,63", "flags": ["MPOL_F_STATIC_NODES"]})
    });
    assert_eq!(run_ok(&bundle).trim(), "bind=static:0");
}

/// A unique interface name (at most 15 bytes): the tag, this process and
/// a counter.
fn unique_link(tag: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{}x{n}", std::process::id() % 100_000)
}

/// `ip ARGS` on the host; its stdout, or its stderr as the error.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().expect("run ip");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn on_the_host(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).is_ok()
}

/// Whether the interfaces `names` are gone from the host within 10 s: the
/// kernel tears a dead network namespace down (and the virtual interfaces
/// in it) in a work queue, after its last process is gone.
fn gone_from_the_host(names: &[&str]) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while names.iter().any(|n| on_the_host(n)) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    true
}

/// Host interfaces made for a test, deleted when it ends (those still on
/// the host: a moved virtual interface dies with the container's namespace).
struct HostLinks(Vec<String>);

impl HostLinks {
    /// A dummy interface; on a kernel without them (CONFIG_DUMMY unset)
    /// one end of a veth pair stands for it, which behaves the same here
    /// (moved, it dies with the container's namespace).
    fn dummy(tag: &str) -> (HostLinks, String) {
        let name = unique_link(tag);
        match ip(&["link", "add", &name, "type", "dummy"]) {
            Ok(_) => (HostLinks(vec![name.clone()]), name),
            Err(e) if e.contains("Unknown device type") => {
                eprintln!("NOTE: this kernel has no dummy interfaces; a veth end stands for one");
                let (links, end, _) = HostLinks::veth(tag);
                (links, end)
            }
            Err(e) => panic!("ip link add type dummy: {e}"),
        }
    }

    fn veth(tag: &str) -> (HostLinks, String, String) {
        let (a, b) = (unique_link(tag), unique_link(tag));
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])
            .expect("ip link add type veth");
        (HostLinks(vec![a.clone(), b.clone()]), a, b)
    }
}

impl Drop for HostLinks {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = ip(&["link", "del", "dev", name]);
        }
    }
}

/// A named network namespace (`ip netns add`), deleted when dropped.
struct NamedNetns(String);

impl NamedNetns {
    fn new() -> NamedNetns {
        let name = unique_id("netns");
        ip(&["netns", "add", &name]).expect("ip netns add");
        NamedNetns(name)
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", &self.0, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

#[test]
fn host_interfaces_move_in_renamed_with_their_addresses() {
    let (_a, dummy) = HostLinks::dummy("bdd");
    let (_b, templated) = HostLinks::dummy("bdt");
    ip(&["address", "add", "192.0.2.7/24", "dev", &dummy]).unwrap();
    ip(&["address", "add", "2001:db8::7/64", "dev", &dummy]).unwrap();
    let mut bundle = Bundle::new();
    bundle.sh("ip -o link show ctr0; ip -o address show dev ctr0; ip -o link show tpl0");
    bundle.edit(|c| {
        c["linux"]["netDevices"] = json!({
            &dummy: {"name": "ctr0"},
            &templated: {"name": "tpl%d"},
        })
    });
    let out = run_ok(&bundle);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains(": ctr0") && lines[0].contains(",UP"),
        "{out}"
    );
    assert!(out.contains("inet 192.0.2.7/24"), "{out}");
    assert!(out.contains("inet6 2001:db8::7/64"), "{out}");
    assert!(out.contains(": tpl0"), "{out}");
    // The container's namespace died with it, and the kernel deleted the
    // virtual interfaces in it (runtime-spec: berth does not move them
    // back).
    assert!(gone_from_the_host(&[&dummy, &templated, "ctr0", "tpl0"]));
}

#[test]
fn a_veth_end_moves_in_and_carries_traffic() {
    let (_links, inner, outer) = HostLinks::veth("bdv");
    ip(&["address", "add", "198.51.100.2/24", "dev", &inner]).unwrap();
    ip(&["address", "add", "198.51.100.1/24", "dev", &outer]).unwrap();
    ip(&["link", "set", "up", "dev", &outer]).unwrap();
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    bundle.edit(|c| c["linux"]["netDevices"] = json!({&inner: {"name": "eth1"}}));
    let c = Container::create(&berth, &bundle, &[]);
    assert!(!on_the_host(&inner));
    berth.ok(&["start", &c.id]);
    let inside = berth.ok(&["exec", &c.id, "ip", "-o", "address", "show", "dev", "eth1"]);
    assert!(inside.contains("inet 198.51.100.2/24"), "{inside}");
    let busybox = template_rootfs().join("bin/busybox");
    let ping = Command::new(&busybox)
        .args(["ping", "-c", "1", "-W", "5", "198.51.100.2"])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "ping from the host: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    drop(c);
    // A veth dies with the namespace of either end, and its peer with it.
    assert!(gone_from_the_host(&[&inner, &outer]));
}

#[test]
fn an_interface_moves_into_a_container_with_a_user_namespace() {
    let (_links, dummy) = HostLinks::dummy("bdu");
    ip(&["address", "add", "192.0.2.77/24", "dev", &dummy]).unwrap();
    let mut bundle = Bundle::new();
    bundle.user_namespace(410000, 410000);
    bundle.sh("ip -o address show dev ctr0");
    bundle.edit(|c| c["linux"]["netDevices"] = json!({&dummy: {"name": "ctr0"}}));
    // The namespace is owned by the container's user namespace: berth, root
    // outside it, moves the interface and adds the address all the same.
    assert!(run_ok(&bundle).contains("inet 192.0.2.77/24"));
    assert!(gone_from_the_host(&[&dummy]));
}

#[test]
fn interfaces_stay_in_a_namespace_joined_by_path_after_delete() {
    let netns = NamedNetns::new();
    let (_links, dummy) = HostLinks::dummy("bdp");
    ip(&["address", "add", "203.0.113.9/24", "dev", &dummy]).unwrap();
    let mut bundle = Bundle::new();
    bundle.sh("ip -o address show dev ctr0");
    bundle.add_namespace(json!({"type": "network", "path": netns.path()}));
    bundle.edit(|c| c["linux"]["netDevices"] = json!({&dummy: {"name": "ctr0"}}));
    assert!(run_ok(&bundle).contains("inet 203.0.113.9/24"));
    // As the runtime-spec asks: the namespace's owner decides what becomes
    // of them, berth does not move them out.
    let left = netns.ip(&["-o", "address", "show", "dev", "ctr0"]).unwrap();
    assert!(left.contains("inet 203.0.113.9/24"), "{left}");
    assert!(!on_the_host(&dummy));
}

#[test]
fn bad_net_devices_fail_create_and_move_nothing() {
    let (_a, first) = HostLinks::dummy("bdb");
    let (_b, second) = HostLinks::dummy("bdb");
    let missing = unique_link("bdm");
    let cases = [
        (
            json!({&first: {}, &missing: {}}),
            format!(
                r#"linux.netDevices["{missing}"]: no network interface "{missing}" on the host"#
            ),
        ),
        (
            json!({&first: {"name": "lo"}}),
            format!(
                r#"linux.netDevices["{first}"]: the container's network namespace already has an interface named "lo""#
            ),
        ),
        (
            json!({&first: {"name": "ctr0"}, &second: {"name": "ctr0"}}),
            format!(
                r#"linux.netDevices["{second}"]: "{first}" is to be named "ctr0" in the container too"#
            ),
        ),
        (
            json!({&first: {"name": "a/b"}}),
            format!(r#"linux.netDevices["{first}"].name: invalid network device name "a/b""#),
        ),
    ];
    for (devices, want) in cases {
        let mut bundle = Bundle::new();
        bundle.edit(|c| c["linux"]["netDevices"] = devices.clone());
        let ran = run(&bundle);
        assert_ne!(ran.code, 0, "{devices}");
        assert!(ran.stderr.contains(&want), "{devices}: {}", ran.stderr);
        assert!(on_the_host(&first) && on_the_host(&second), "{devices}");
    }
    // Without a network namespace there is nowhere to move them (runc's
    // words, which its tests look for).
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["netDevices"] = json!({&first: {}});
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network");
    });
    run_fails_saying(
        &bundle,
        "linux.netDevices: unable to move network devices without a NET namespace",
    );
    assert!(on_the_host(&first));
}

#[test]
fn intel_rdt_without_resctrl_fails_create_cleanly() {
    let resctrl = std::path::Path::new("/sys/fs/resctrl/info").is_dir();
    if !runs_here(
        !resctrl,
        "the host has resctrl (the error is for hosts without)",
    ) {
        return;
    }
    for rdt in [
        json!({"closID": "gold", "schemata": ["L3:0=f"]}),
        json!({"enableMonitoring": true}),
    ] {
        let mut bundle = Bundle::new();
        bundle.edit(|c| c["linux"]["intelRdt"] = rdt.clone());
        let ran = run(&bundle);
        assert_ne!(ran.code, 0, "{rdt}");
        assert!(
            ran.stderr.contains(
                "linux.intelRdt: intelRdt is specified in config, but Intel RDT is not enabled"
            ),
            "{rdt}: {}",
            ran.stderr
        );
    }
}

#[test]
fn a_bad_clos_id_is_refused() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["linux"]["intelRdt"] = json!({"closID": "../x"}));
    run_fails_saying(
        &bundle,
        r#"linux.intelRdt.closID: invalid intelRdt.closID "../x""#,
    );
}
