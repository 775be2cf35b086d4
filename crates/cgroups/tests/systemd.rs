//! The systemd driver against a real systemd (pid 1, pure cgroup v2):
//! tests/vm/run.sh boots one. Elsewhere each test says why it skips.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};

use berth_cgroups::systemd::Options;
use berth_cgroups::{Host, Manager, Placement};
use oci_spec::runtime::LinuxResources;

/// Why the driver cannot be tried here, if it cannot.
fn unusable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root".into());
    }
    if !Path::new("/run/systemd/system").is_dir() {
        return Some(
            "systemd is not pid 1 here (tests/vm/run.sh boots a machine where it is)".into(),
        );
    }
    match Host::detect() {
        Ok(Host::Unified { .. }) => None,
        Ok(host) => Some(format!(
            "the driver needs pure cgroup v2; this host is {}",
            host.describe()
        )),
        Err(e) => Some(e.to_string()),
    }
}

macro_rules! skip_unless_usable {
    () => {
        if let Some(why) = unusable() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn systemctl_show(unit: &str, property: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "--value", "-p", property, unit])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `sleep` that is killed and reaped when dropped.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dir_of(manager: &dyn Manager) -> std::path::PathBuf {
    match manager.placement() {
        Placement::V2 { dir, .. } => dir.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_scope_with_limits_is_started_read_back_and_stopped() {
    skip_unless_usable!();
    let id = unique("scope");
    let path = format!("system.slice:berth-test:{id}");
    let unit = format!("berth-test-{id}.scope");
    let annotations = HashMap::from([(
        "org.systemd.property.CollectMode".to_string(),
        "'inactive-or-failed'".to_string(),
    )]);
    let host = Host::detect().unwrap();
    let manager = berth_cgroups::create_systemd(
        &host,
        &Options {
            cgroups_path: Some(&path),
            id: &id,
            user: false,
            annotations: Some(&annotations),
        },
    )
    .unwrap();
    let dir = dir_of(manager.as_ref());
    assert_eq!(dir, Path::new("/sys/fs/cgroup/system.slice").join(&unit));
    assert!(!dir.exists(), "nothing exists before the unit starts");

    let resources: LinuxResources = serde_json::from_str(
        r#"{"memory":{"limit":67108864},"pids":{"limit":37},"cpu":{"shares":2048,"quota":25000,"period":100000}}"#,
    )
    .unwrap();
    manager.apply(&resources).unwrap();
    let sleeper = Sleeper(Command::new("sleep").arg("60").spawn().unwrap());
    let pid = sleeper.0.id() as i32;
    let started = std::time::Instant::now();
    manager.join(pid, None).unwrap();
    eprintln!("unit started in {:?}", started.elapsed());

    assert_eq!(systemctl_show(&unit, "ActiveState"), "active");
    assert_eq!(systemctl_show(&unit, "MemoryMax"), "67108864");
    assert_eq!(systemctl_show(&unit, "TasksMax"), "37");
    assert_eq!(systemctl_show(&unit, "CPUWeight"), "174");
    assert_eq!(systemctl_show(&unit, "CPUQuotaPerSecUSec"), "250ms");
    assert_eq!(systemctl_show(&unit, "Delegate"), "yes");
    assert_eq!(systemctl_show(&unit, "CollectMode"), "inactive-or-failed");
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory.max"), "67108864");
    assert_eq!(read("pids.max"), "37");
    assert_eq!(read("cpu.weight"), "174");
    assert_eq!(read("cpu.max"), "25000 100000");
    assert_eq!(manager.procs().unwrap(), [pid]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(own.trim(), format!("0::/system.slice/{unit}"));

    // A later command reaches the unit from the state alone, and an update
    // goes to systemd and the files.
    let placement: Placement =
        serde_json::from_str(&serde_json::to_string(manager.placement()).unwrap()).unwrap();
    let later = berth_cgroups::open(placement);
    let update: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":41}}"#).unwrap();
    later.apply(&update).unwrap();
    assert_eq!(systemctl_show(&unit, "TasksMax"), "41");
    assert_eq!(read("pids.max"), "41");
    later.freeze().unwrap();
    assert!(berth_cgroups::is_frozen(later.placement()));
    later.thaw().unwrap();

    let stopping = std::time::Instant::now();
    later.destroy().unwrap();
    eprintln!("unit stopped in {:?}", stopping.elapsed());
    assert!(!dir.exists(), "{} is left", dir.display());
    assert_eq!(systemctl_show(&unit, "LoadState"), "not-found");
    drop(sleeper);
}

#[test]
fn a_unit_systemd_refuses_names_the_unit_and_leaves_nothing() {
    skip_unless_usable!();
    let id = unique("refused");
    let unit = format!("berth-test-{id}.scope");
    let annotations = HashMap::from([(
        "org.systemd.property.NoSuchProperty".to_string(),
        "true".to_string(),
    )]);
    let host = Host::detect().unwrap();
    let manager = berth_cgroups::create_systemd(
        &host,
        &Options {
            cgroups_path: Some(&format!(":berth-test:{id}")),
            id: &id,
            user: false,
            annotations: Some(&annotations),
        },
    )
    .unwrap();
    let sleeper = Sleeper(Command::new("sleep").arg("60").spawn().unwrap());
    let err = manager.join(sleeper.0.id() as i32, None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("systemd unit {unit}: ")),
        "{text}"
    );
    assert!(text.contains("NoSuchProperty"), "{text}");
    assert_eq!(systemctl_show(&unit, "LoadState"), "not-found");
    assert!(!dir_of(manager.as_ref()).exists());
}

#[test]
fn a_missing_bus_is_named() {
    skip_unless_usable!();
    let id = unique("nobus");
    let host = Host::detect().unwrap();
    // The driver reads the bus address from the environment when it
    // connects; a child process gets a bogus one.
    if std::env::var_os("BERTH_TEST_NO_BUS_CHILD").is_none() {
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "a_missing_bus_is_named", "--nocapture"])
            .env("BERTH_TEST_NO_BUS_CHILD", "1")
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                "unix:path=/nonexistent/system_bus",
            )
            .status()
            .unwrap();
        assert!(status.success());
        return;
    }
    let err = berth_cgroups::create_systemd(
        &host,
        &Options {
            cgroups_path: None,
            id: &id,
            user: false,
            annotations: None,
        },
    )
    .err()
    .expect("no bus, no manager");
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/system_bus") && text.contains("DBUS_SYSTEM_BUS_ADDRESS"),
        "{text}"
    );
}

/// Rootless: an unprivileged user's own systemd (reached on the user bus)
/// makes the scope below its manager's cgroup and delegates it.
#[test]
fn a_user_scope_on_the_user_bus() {
    if rustix::process::geteuid().is_root() {
        eprintln!("skipped: run as an unprivileged user with a running `systemd --user`");
        return;
    }
    let runtime_dir = std::env::var("XDG_RUNTIME_DIR").unwrap_or_default();
    if runtime_dir.is_empty() || !Path::new(&runtime_dir).join("bus").exists() {
        eprintln!("skipped: no user bus ($XDG_RUNTIME_DIR/bus)");
        return;
    }
    if !matches!(Host::detect(), Ok(Host::Unified { .. })) {
        eprintln!("skipped: the driver needs pure cgroup v2");
        return;
    }
    let id = unique("user");
    let unit = format!("berth-test-{id}.scope");
    let host = Host::detect().unwrap();
    let manager = berth_cgroups::create_systemd(
        &host,
        &Options {
            cgroups_path: Some(&format!(":berth-test:{id}")),
            id: &id,
            user: true,
            annotations: None,
        },
    )
    .unwrap();
    let dir = dir_of(manager.as_ref());
    let uid = rustix::process::geteuid().as_raw();
    assert!(
        dir.ends_with(format!("user@{uid}.service/user.slice/{unit}")),
        "{}",
        dir.display()
    );
    let resources: LinuxResources =
        serde_json::from_str(r#"{"memory":{"limit":33554432},"pids":{"limit":12}}"#).unwrap();
    manager.apply(&resources).unwrap();
    let sleeper = Sleeper(Command::new("sleep").arg("60").spawn().unwrap());
    manager.join(sleeper.0.id() as i32, None).unwrap();
    let show = |p: &str| {
        let out = Command::new("systemctl")
            .args(["--user", "show", "--value", "-p", p, &unit])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(show("MemoryMax"), "33554432");
    assert_eq!(show("TasksMax"), "12");
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory.max"), "33554432");
    assert_eq!(read("pids.max"), "12");
    manager.destroy().unwrap();
    assert!(!dir.exists(), "{} is left", dir.display());
    assert_eq!(show("LoadState"), "not-found");
}

/// A v1 or hybrid host: systemd makes the unit in the hierarchies it
/// manages, berth joins the others under the same path.
#[test]
fn a_scope_on_a_v1_host_joins_every_hierarchy() {
    if !rustix::process::geteuid().is_root() || !Path::new("/run/systemd/system").is_dir() {
        eprintln!("skipped: needs root and systemd as pid 1");
        return;
    }
    let host = Host::detect().unwrap();
    if !matches!(host, Host::Legacy { .. }) {
        eprintln!("skipped: not a v1 or hybrid host (BERTH_VM_CGROUP=hybrid boots one)");
        return;
    }
    let id = unique("v1");
    let unit = format!("berth-test-{id}.scope");
    let manager = berth_cgroups::create_systemd(
        &host,
        &Options {
            cgroups_path: Some(&format!("system.slice:berth-test:{id}")),
            id: &id,
            user: false,
            annotations: None,
        },
    )
    .unwrap();
    let resources: LinuxResources = serde_json::from_str(
        r#"{"memory":{"limit":67108864},"pids":{"limit":37},"cpu":{"shares":512}}"#,
    )
    .unwrap();
    manager.apply(&resources).unwrap();
    let sleeper = Sleeper(Command::new("sleep").arg("60").spawn().unwrap());
    let pid = sleeper.0.id() as i32;
    manager.join(pid, None).unwrap();
    assert_eq!(systemctl_show(&unit, "MemoryLimit"), "67108864");
    assert_eq!(systemctl_show(&unit, "TasksMax"), "37");
    assert_eq!(systemctl_show(&unit, "CPUShares"), "512");
    let placement = manager.placement().clone();
    let dir = |c: &str| placement.dir_of(c).unwrap().clone();
    let read = |c: &str, f: &str| {
        std::fs::read_to_string(dir(c).join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(read("pids", "pids.max"), "37");
    assert_eq!(read("cpu", "cpu.shares"), "512");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in own
        .lines()
        .filter(|l| !l.contains(":rdma:") && !l.contains(":misc:"))
    {
        assert!(line.ends_with(&format!("/system.slice/{unit}")), "{line}");
    }
    let later = berth_cgroups::open(
        serde_json::from_str(&serde_json::to_string(&placement).unwrap()).unwrap(),
    );
    later.freeze().unwrap();
    assert!(berth_cgroups::is_frozen(later.placement()));
    later.thaw().unwrap();
    later.destroy().unwrap();
    assert_eq!(systemctl_show(&unit, "LoadState"), "not-found");
    if let Placement::V1 { dirs, unified, .. } = &placement {
        for d in dirs.iter().map(|d| &d.dir).chain(unified.as_ref()) {
            assert!(!d.exists(), "{} is left", d.display());
        }
    }
    drop(sleeper);
}

/// A name ending in `.slice` makes a slice unit, which takes no PIDs: the
/// process joins it once it exists.
#[test]
fn a_slice_unit_is_joined_after_it_starts() {
    skip_unless_usable!();
    let unit = format!("berthtest{}.slice", std::process::id());
    let host = Host::detect().unwrap();
    let manager = berth_cgroups::create_systemd(
        &host,
        &Options {
            cgroups_path: Some(&format!("system.slice:ignored:{unit}")),
            id: "x",
            user: false,
            annotations: None,
        },
    )
    .unwrap();
    let dir = dir_of(manager.as_ref());
    assert_eq!(dir, Path::new("/sys/fs/cgroup").join(&unit));
    let resources: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":7}}"#).unwrap();
    manager.apply(&resources).unwrap();
    let sleeper = Sleeper(Command::new("sleep").arg("60").spawn().unwrap());
    let pid = sleeper.0.id() as i32;
    manager.join(pid, None).unwrap();
    assert_eq!(systemctl_show(&unit, "TasksMax"), "7");
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(own.trim(), format!("0::/{unit}"));
    drop(sleeper);
    manager.destroy().unwrap();
    assert!(!dir.exists(), "{} is left", dir.display());
    // A stopped slice may stay loaded a moment before systemd drops it.
    assert_eq!(systemctl_show(&unit, "ActiveState"), "inactive");
}
