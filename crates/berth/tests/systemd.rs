//! `--systemd-cgroup`: containers whose cgroups are systemd units. The
//! driver needs systemd as pid 1 on pure cgroup v2 (tests/vm/run.sh boots
//! such a machine); elsewhere it must refuse clearly.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::json;

fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn pure_v2() -> bool {
    rustix::fs::statfs("/sys/fs/cgroup").is_ok_and(|s| s.f_type == libc::CGROUP2_SUPER_MAGIC)
}

fn systemctl_show(unit: &str, property: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "--value", "-p", property, unit])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn without_systemd_the_driver_says_so_and_leaves_nothing() {
    if !runs_here(!systemd_runs(), "systemd runs here") {
        return;
    }
    let bundle = Bundle::new();
    let berth = Berth::new();
    let id = unique_id("nosd");
    let err = berth.fails(&[
        "--systemd-cgroup",
        "create",
        "-b",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    assert!(
        err.contains("--systemd-cgroup: systemd is not running on this host (/run/systemd/system does not exist)"),
        "{err}"
    );
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn a_container_is_a_scope_with_its_limits_until_deleted() {
    if !runs_here(
        systemd_runs() && pure_v2(),
        "needs systemd as pid 1 on pure cgroup v2 (tests/vm/run.sh)",
    ) {
        return;
    }
    let id = unique_id("sd");
    let unit = format!("berth-test-{id}.scope");
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "300"]).edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:berth-test:{id}"));
        c["linux"]["resources"] = json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 42},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
        });
        c["annotations"] = json!({"org.systemd.property.CollectMode": "'inactive-or-failed'"});
    });
    let berth = Berth::new();
    berth.ok(&[
        "--systemd-cgroup",
        "create",
        "-b",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(systemctl_show(&unit, "ActiveState"), "active");
    assert_eq!(systemctl_show(&unit, "MemoryMax"), "67108864");
    assert_eq!(systemctl_show(&unit, "TasksMax"), "42");
    assert_eq!(systemctl_show(&unit, "CPUWeight"), "100");
    assert_eq!(systemctl_show(&unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(systemctl_show(&unit, "Delegate"), "yes");
    assert_eq!(systemctl_show(&unit, "CollectMode"), "inactive-or-failed");
    assert_eq!(read("memory.max"), "67108864");
    assert_eq!(read("pids.max"), "42");
    assert_eq!(read("cpu.max"), "50000 100000");
    let pid = berth.state(&id)["pid"].as_i64().unwrap();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(own.trim(), format!("0::/system.slice/{unit}"));

    berth.ok(&["start", &id]);
    berth.ok(&["update", "--pids-limit", "50", &id]);
    assert_eq!(systemctl_show(&unit, "TasksMax"), "50");
    assert_eq!(read("pids.max"), "50");
    berth.ok(&["pause", &id]);
    assert_eq!(berth.status(&id), "paused");
    berth.ok(&["resume", &id]);
    let exec_cgroup = berth.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    assert_eq!(
        exec_cgroup.trim(),
        "0::/",
        "exec joins the container's cgroup (its namespace's root)"
    );
    berth.ok(&["kill", "--all", &id, "KILL"]);
    berth.wait_status(&id, "stopped");
    berth.ok(&["delete", &id]);
    assert_eq!(systemctl_show(&unit, "LoadState"), "not-found");
    assert!(!dir.exists(), "{} is left", dir.display());
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn without_a_cgroup_namespace_the_units_cgroup_is_bound_at_sys_fs_cgroup() {
    // A privileged Kubernetes pod's form (containerd, SystemdCgroup): the
    // cgroup mount binds the unit's directory, which exists only once the
    // unit has started with the init in it.
    if !runs_here(
        systemd_runs() && pure_v2(),
        "needs systemd as pid 1 on pure cgroup v2 (tests/vm/run.sh)",
    ) {
        return;
    }
    let id = unique_id("sdnocgns");
    let mut bundle = Bundle::new();
    bundle
        .edit(|c| {
            c["linux"]["cgroupsPath"] = json!(format!("system.slice:berth-test:{id}"));
            c["linux"]["resources"] = json!({"pids": {"limit": 42}});
            let namespaces = c["linux"]["namespaces"].as_array_mut().unwrap();
            namespaces.retain(|ns| ns["type"] != "cgroup");
        })
        .sh("cat /sys/fs/cgroup/pids.max; cat /proc/self/cgroup");
    let ran = run_with_flags(&bundle, &["--systemd-cgroup"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        format!("42\n0::/system.slice/berth-test-{id}.scope\n")
    );
    assert!(!Path::new("/sys/fs/cgroup/system.slice")
        .join(format!("berth-test-{id}.scope"))
        .exists());
}

#[test]
fn a_unit_systemd_refuses_is_named_and_nothing_is_left() {
    if !runs_here(
        systemd_runs() && pure_v2(),
        "needs systemd as pid 1 on pure cgroup v2 (tests/vm/run.sh)",
    ) {
        return;
    }
    let id = unique_id("sdbad");
    let unit = format!("berth-test-{id}.scope");
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "300"]).edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:berth-test:{id}"));
        c["annotations"] = json!({"org.systemd.property.NoSuchProperty": "true"});
    });
    let berth = Berth::new();
    let err = berth.fails(&[
        "--systemd-cgroup",
        "create",
        "-b",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    assert!(err.contains(&format!("systemd unit {unit}: ")), "{err}");
    assert!(err.contains("NoSuchProperty"), "{err}");
    assert_eq!(systemctl_show(&unit, "LoadState"), "not-found");
    assert_nothing_left(&berth, &id, &bundle);

    bundle.edit(|c| c["linux"]["cgroupsPath"] = json!("system.slice/not-a-unit"));
    let err = berth.fails(&[
        "--systemd-cgroup",
        "create",
        "-b",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    assert!(err.contains("linux.cgroupsPath: "), "{err}");
    assert_nothing_left(&berth, &id, &bundle);
}
