//! Resource control on this host's cgroups: v1 controllers on a hybrid
//! host, the one cgroup2 hierarchy on a pure v2 host (tests/vm/suite.sh
//! runs them on one), and the v2 backend in a private mount namespace whose
//! /sys/fs/cgroup is the cgroup2 hierarchy alone.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::json;

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// `v1` on a v1 or hybrid host, `v2` on a pure v2 host: the name of a file
/// that both versions have, or what a test expects to read from it.
fn per_version<T>(v1: T, v2: T) -> T {
    if host_is_cgroup_v2() {
        v2
    } else {
        v1
    }
}

/// The directory of the container's cgroup that holds `controller`'s
/// files: that controller's hierarchy on a v1 host, the container's one
/// directory on a v2 host. From its state.
fn cgroup_dir(berth: &Berth, id: &str, controller: &str) -> PathBuf {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(berth.root().join(id).join("state.json")).unwrap())
            .unwrap();
    let cgroup = &state["cgroup"];
    if cgroup["layout"] == "v2" {
        return PathBuf::from(cgroup["dir"].as_str().expect("a v2 placement"));
    }
    let dirs = cgroup["dirs"].as_array().expect("a v1 placement");
    let dir = dirs
        .iter()
        .find(|d| {
            d["controllers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == controller)
        })
        .unwrap_or_else(|| panic!("no {controller} hierarchy"));
    PathBuf::from(dir["dir"].as_str().unwrap())
}

/// The container's directory in the cgroup2 hierarchy: its one directory
/// on a v2 host, the one beside its v1 directories on a hybrid host.
fn cgroup2_dir(berth: &Berth, id: &str) -> PathBuf {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(berth.root().join(id).join("state.json")).unwrap())
            .unwrap();
    let cgroup = &state["cgroup"];
    let dir = if cgroup["layout"] == "v2" {
        &cgroup["dir"]
    } else {
        &cgroup["unified"]
    };
    PathBuf::from(dir.as_str().expect("a cgroup2 directory"))
}

/// The root of a hierarchy by a v1 controller's name: its own on a v1
/// host, the cgroup2 one on a v2 host.
fn hierarchy_root(controller: &str) -> PathBuf {
    per_version(
        Path::new("/sys/fs/cgroup").join(controller),
        PathBuf::from("/sys/fs/cgroup"),
    )
}

/// The host's cgroup2 hierarchy: all of /sys/fs/cgroup on a v2 host, the
/// one beside the v1 hierarchies on a hybrid host.
fn cgroup2_root() -> Option<&'static Path> {
    [
        Path::new("/sys/fs/cgroup"),
        Path::new("/sys/fs/cgroup/unified"),
    ]
    .into_iter()
    .find(|root| root.join("cgroup.controllers").exists())
}

#[test]
fn limits_are_set_and_read_back_inside_and_outside() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["resources"] = json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 67108864, "reservation": 33554432, "swappiness": 20},
            "cpu": {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 42}
        });
    });
    // The same limits in each version's files; 512 shares are weight 59.
    let (files, values) = per_version(
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.soft_limit_in_bytes \
             /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpuset/cpuset.cpus \
             /sys/fs/cgroup/pids/pids.max",
            ["67108864", "33554432", "512", "25000", "0", "42"],
        ),
        (
            "/sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.low /sys/fs/cgroup/cpu.weight \
             /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpuset.cpus /sys/fs/cgroup/pids.max",
            ["67108864", "33554432", "59", "25000 100000", "0", "42"],
        ),
    );
    bundle.args(&["sleep", "30"]);
    let c = Container::create(&berth, &bundle, &[]);
    let memory = cgroup_dir(&berth, &c.id, "memory");
    assert_eq!(
        read(memory.join(per_version("memory.limit_in_bytes", "memory.max"))),
        "67108864"
    );
    if host_is_cgroup_v2() {
        // v2 has no swappiness: berth warns and leaves it.
        assert_eq!(read(memory.join("memory.low")), "33554432");
        assert_eq!(read(memory.join("cpu.max")), "25000 100000");
    } else {
        assert_eq!(read(memory.join("memory.swappiness")), "20");
        assert_eq!(
            read(cgroup_dir(&berth, &c.id, "cpu").join("cpu.cfs_period_us")),
            "100000"
        );
    }
    let pids = cgroup_dir(&berth, &c.id, "pids");
    assert_eq!(read(pids.join("pids.max")), "42");
    // The init is in the cgroup before the user's program runs.
    let pid = berth.state(&c.id)["pid"].as_i64().unwrap();
    assert_eq!(read(pids.join("cgroup.procs")), pid.to_string());
    drop(c);
    // Run it again in the foreground to see the values from inside.
    bundle.sh(&format!("cat {files}"));
    let inside = run_ok(&bundle);
    assert_eq!(inside.lines().collect::<Vec<_>>(), values);
}

#[test]
fn cgroups_path_is_read_as_runc_reads_it() {
    if !runs_here(
        !systemd_driver(),
        "cgroupfs paths; tests/systemd.rs reads the systemd driver's",
    ) {
        return;
    }
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let absolute = format!("/berth-test-{}/abs", std::process::id());
    bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(absolute));
    let c = Container::create(&berth, &bundle, &[]);
    let memory_root = hierarchy_root("memory");
    assert_eq!(
        cgroup_dir(&berth, &c.id, "memory"),
        memory_root.join(&absolute[1..])
    );
    berth.ok(&["delete", "--force", &c.id]);
    // The parents berth made are gone with the container.
    assert!(!memory_root.join(&absolute[1..]).parent().unwrap().exists());

    // A relative path is below the caller's own cgroup.
    let own = read("/proc/self/cgroup");
    let own_memory = own
        .lines()
        .find(|l| l.split(':').nth(1) == Some(per_version("memory", "")))
        .unwrap()
        .split(':')
        .nth(2)
        .unwrap()
        .to_string();
    let relative = format!("berth-test-{}/rel", std::process::id());
    bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(relative));
    let c = Container::create(&berth, &bundle, &[]);
    let want = memory_root
        .join(own_memory.trim_start_matches('/'))
        .join(&relative);
    assert_eq!(cgroup_dir(&berth, &c.id, "memory"), want);
    berth.ok(&["delete", "--force", &c.id]);
    assert!(!want.parent().unwrap().exists());

    // Without one: /<id>, as runc places it when called from the root.
    bundle.edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    });
    let c = Container::create(&berth, &bundle, &[]);
    assert_eq!(cgroup_dir(&berth, &c.id, "memory"), memory_root.join(&c.id));
    berth.ok(&["delete", "--force", &c.id]);

    // ... only if berth makes it: an id that names a cgroup which exists
    // in any hierarchy is refused, and what was made for it is removed.
    let taken = unique_id("taken");
    let existing = hierarchy_root("pids").join(&taken);
    std::fs::create_dir(&existing).unwrap();
    let err = berth.run(&[
        "create",
        "--bundle",
        bundle.path().to_str().unwrap(),
        &taken,
    ]);
    std::fs::remove_dir(&existing).unwrap();
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(!err.status.success());
    assert!(
        stderr.contains("linux.cgroupsPath") && stderr.contains("exists already"),
        "{stderr}"
    );
    assert_nothing_left(&berth, &taken, &bundle);
}

#[test]
fn memory_past_the_limit_is_oom_killed_and_events_reports_it() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 33554432}));
    // One 64 MiB read buffer, filled from /dev/zero at once: past the
    // 32 MiB limit within a few page faults, even in an emulated guest
    // (a shell doubling a string needs minutes there).
    bundle.sh("dd if=/dev/zero of=/dev/null bs=64M count=1");
    let c = Container::create(&berth, &bundle, &[]);
    let events = std::process::Command::new(BERTH)
        .args([
            "--root",
            berth.root().to_str().unwrap(),
            "events",
            "--interval",
            "200ms",
            &c.id,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = Background(Some(events));
    std::thread::sleep(Duration::from_millis(300));
    berth.ok(&["start", &c.id]);
    berth.wait_status(&c.id, "stopped");
    let mut child = events.0.take().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut text = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut text).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(kinds.contains(&"stats".to_string()), "{text}");
    assert!(kinds.contains(&"oom".to_string()), "{text}");
}

#[test]
fn a_fork_bomb_is_held_by_the_pids_limit() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 16});
        c["root"]["readonly"] = json!(false);
    });
    // busybox sh gives up at the first fork that fails: run the bomb in a
    // child shell, whose sleeps stay behind.
    bundle.sh("sh -c 'for i in $(seq 64); do sleep 30 & done' 2>/fork.log; sleep 30");
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let dir = cgroup_dir(&berth, &c.id, "pids");
    std::thread::sleep(Duration::from_millis(500));
    let current: u32 = read(dir.join("pids.current")).parse().unwrap();
    assert!(current <= 16, "{current} processes");
    assert!(current >= 8, "only {current} processes");
    assert!(read(bundle.rootfs().join("fork.log")).contains("can't fork"));
    let stats: serde_json::Value =
        serde_json::from_str(&berth.ok(&["events", "--stats", &c.id])).unwrap();
    assert_eq!(stats["data"]["pids"]["limit"], 16);
}

#[test]
fn a_paused_container_makes_no_progress_until_resumed() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["root"]["readonly"] = json!(false));
    bundle.sh("i=0; while true; do i=$((i+1)); echo $i > /count; sleep 0.02; done");
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let count = || {
        read(bundle.rootfs().join("count"))
            .parse::<u64>()
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_millis(300));
    berth.ok(&["pause", &c.id]);
    assert_eq!(berth.status(&c.id), "paused");
    let frozen = count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(count(), frozen);
    assert!(berth.fails(&["pause", &c.id]).contains("is paused"));
    berth.ok(&["resume", &c.id]);
    assert_eq!(berth.status(&c.id), "running");
    // Resumed, it counts on: within seconds even on a loaded machine.
    let resumed = (0..250).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        count() > frozen
    });
    assert!(resumed, "no progress after resume");
    assert!(berth.fails(&["resume", &c.id]).contains("is running"));
    // A paused container can be force-deleted.
    berth.ok(&["pause", &c.id]);
    berth.ok(&["delete", "--force", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

#[test]
fn update_changes_a_running_containers_limits() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    bundle.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 67108864}));
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    berth.ok(&[
        "update",
        "--memory",
        "96m",
        "--pids-limit",
        "33",
        "--cpu-shares",
        "256",
        "--cpu-quota",
        "30000",
        "--cpu-period",
        "60000",
        &c.id,
    ]);
    let memory = cgroup_dir(&berth, &c.id, "memory");
    let pids = cgroup_dir(&berth, &c.id, "pids");
    let cpu = cgroup_dir(&berth, &c.id, "cpu");
    assert_eq!(
        read(memory.join(per_version("memory.limit_in_bytes", "memory.max"))),
        (96u64 << 20).to_string()
    );
    assert_eq!(read(pids.join("pids.max")), "33");
    if host_is_cgroup_v2() {
        // 256 shares are weight 35.
        assert_eq!(read(cpu.join("cpu.weight")), "35");
        assert_eq!(read(cpu.join("cpu.max")), "30000 60000");
    } else {
        assert_eq!(read(cpu.join("cpu.shares")), "256");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "30000");
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "60000");
    }
    // From a file, as podman passes it, and from stdin, as docker does.
    let file = bundle.path().join("resources.json");
    std::fs::write(&file, r#"{"pids": {"limit": 44}}"#).unwrap();
    berth.ok(&["update", &format!("--resources={}", file.display()), &c.id]);
    assert_eq!(read(pids.join("pids.max")), "44");
    let mut child = berth
        .cmd(&["update", "-r", "-", &c.id])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        br#"{"pids": {"limit": 55}}"#,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(read(pids.join("pids.max")), "55");
    // The state records the new limits.
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(berth.root().join(&c.id).join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["config"]["linux"]["resources"]["pids"]["limit"], 55);
    assert_eq!(
        state["config"]["linux"]["resources"]["memory"]["limit"],
        96 << 20
    );
}

#[test]
fn check_before_update_refuses_a_limit_below_usage() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let err = berth.fails_with_stdin(
        &["update", "-r", "-", &c.id],
        r#"{"memory": {"limit": 4096, "checkBeforeUpdate": true}}"#,
    );
    assert!(err.contains("checkBeforeUpdate"), "{err}");
}

#[test]
fn ps_lists_the_containers_processes() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.sh("sleep 30 & sleep 30");
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    std::thread::sleep(Duration::from_millis(200));
    let pids: Vec<i64> =
        serde_json::from_str(&berth.ok(&["ps", "--format", "json", &c.id])).unwrap();
    // sh runs its last command with exec: two sleeps, one of them the init.
    assert_eq!(pids.len(), 2, "{pids:?}");
    let init = berth.state(&c.id)["pid"].as_i64().unwrap();
    assert!(pids.contains(&init));
    let table = berth.ok(&["ps", &c.id, "--", "-o", "pid,comm"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert_eq!(lines.len(), 3, "{table}");
    assert_eq!(lines.iter().filter(|l| l.ends_with("sleep")).count(), 2);
}

#[test]
fn unified_resources_go_to_the_cgroup2_hierarchy() {
    if !runs_here(
        cgroup2_root().is_some(),
        "this host has no cgroup2 hierarchy",
    ) {
        return;
    }
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    bundle.edit(|c| c["linux"]["resources"]["unified"] = json!({"cgroup.max.descendants": "7"}));
    let c = Container::create(&berth, &bundle, &[]);
    assert_eq!(
        read(cgroup2_dir(&berth, &c.id).join("cgroup.max.descendants")),
        "7"
    );
}

/// Runs `berth run` of `bundle` in a mount namespace whose /sys/fs/cgroup
/// is the cgroup2 hierarchy alone, as on a pure v2 host.
fn run_in_cgroup2_view(bundle: &Bundle) -> Ran {
    let berth = Berth::new();
    let id = unique_id("v2");
    let script = "umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"";
    let out = output_via_files(
        std::process::Command::new("unshare")
            .args([
                "-m",
                "sh",
                "-c",
                script,
                "sh",
                BERTH,
                "--root",
                berth.root().to_str().unwrap(),
            ])
            .args(["run", "-b", bundle.path().to_str().unwrap(), &id]),
    );
    assert_nothing_left(&berth, &id, bundle);
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn on_cgroup_v2_the_device_rules_are_an_ebpf_program() {
    let mut bundle = Bundle::new();
    bundle.cgroup_namespace();
    let node = bundle.rootfs().join("tty0");
    let path = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
    // SAFETY: mknod with a valid path.
    assert_eq!(
        unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(4, 0)) },
        0
    );
    bundle.sh("head -c 1 /dev/zero >/dev/null && echo zero-ok; (head -c 0 /tty0) 2>&1; cat /proc/self/cgroup | grep '^0::'; cat /sys/fs/cgroup/cgroup.procs | wc -l");
    let ran = run_in_cgroup2_view(&bundle);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines[0], "zero-ok");
    assert!(
        lines[1].contains("Operation not permitted"),
        "{}",
        ran.stdout
    );
    assert_eq!(lines[2], "0::/");
    // sh, cat and wc: the container's cgroup and nothing else.
    assert!(
        lines[3].trim().parse::<u32>().unwrap() <= 3,
        "{}",
        ran.stdout
    );
}

#[test]
fn on_cgroup_v2_unified_limits_and_freeze_work() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["linux"]["resources"]["unified"] = json!({"cgroup.max.depth": "3"}));
    bundle.sh("cat /sys/fs/cgroup/cgroup.max.depth /sys/fs/cgroup/cgroup.freeze");
    let ran = run_in_cgroup2_view(&bundle);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout.lines().collect::<Vec<_>>(), ["3", "0"]);
}

#[test]
fn hugepage_limits_use_the_cgroup2_hugetlb_when_it_is_there() {
    let v2_hugetlb = cgroup2_root().is_some_and(|root| {
        read(root.join("cgroup.controllers"))
            .split_whitespace()
            .any(|c| c == "hugetlb")
    });
    if !runs_here(
        v2_hugetlb,
        "this host's cgroup2 hierarchy has no hugetlb controller",
    ) {
        return;
    }
    if !runs_here(
        !Path::new("/sys/fs/cgroup/hugetlb").exists(),
        "hugetlb is a v1 controller on this host",
    ) {
        return;
    }
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    bundle.edit(|c| {
        c["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}])
    });
    let c = Container::create(&berth, &bundle, &[]);
    assert_eq!(
        read(cgroup2_dir(&berth, &c.id).join("hugetlb.2MB.max")),
        "4194304"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&berth.ok(&["events", "--stats", &c.id])).unwrap();
    assert_eq!(stats["data"]["hugetlb"]["2MB"]["max"], 4194304);
}
