//! berth run by an unprivileged user: a user namespace, no cgroups, id maps
//! written by berth itself or by newuidmap/newgidmap for several ranges.
//! The user is made by the test (with subordinate id ranges) if missing.

mod common;

use std::process::Command;
use std::sync::OnceLock;

use common::*;
use serde_json::json;

const USER: &str = "berth-rootless";
const SUB_START: u32 = 500_000;

/// The test user's uid and gid, made once.
fn test_user() -> (u32, u32) {
    static USER_IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *USER_IDS.get_or_init(|| {
        let lookup = || {
            let out = Command::new("id").args(["-u", USER]).output().ok()?;
            let uid = String::from_utf8(out.stdout).ok()?.trim().parse().ok()?;
            let out = Command::new("id").args(["-g", USER]).output().ok()?;
            let gid = String::from_utf8(out.stdout).ok()?.trim().parse().ok()?;
            Some((uid, gid))
        };
        if lookup().is_none() {
            // Another test binary may make it at the same time.
            let _ = Command::new("useradd")
                .args(["--system", "--shell", "/usr/sbin/nologin", USER])
                .status();
        }
        let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
        if !subuid.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            let range = format!("{SUB_START}-{}", SUB_START + 65535);
            let status = Command::new("usermod")
                .args(["--add-subuids", &range, "--add-subgids", &range, USER])
                .status()
                .expect("usermod");
            assert!(status.success());
        }
        lookup().expect("the test user exists")
    })
}

/// The test user with a bundle and state root of its own, the bundle's
/// config as `berth spec --rootless` writes it for that user.
struct Rootless {
    uid: u32,
    gid: u32,
    bundle: Bundle,
    root: tempfile::TempDir,
}

impl Rootless {
    fn new() -> Rootless {
        let (uid, gid) = test_user();
        let mut bundle = Bundle::new();
        std::fs::remove_file(bundle.path().join("config.json")).unwrap();
        let root = tempfile::Builder::new()
            .prefix("berth-root-")
            .tempdir()
            .unwrap();
        for path in [bundle.path(), root.path()] {
            let status = Command::new("chown")
                .args(["-R", &format!("{uid}:{gid}")])
                .arg(path)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let out = as_user(
            uid,
            gid,
            &[
                "spec",
                "--rootless",
                "--bundle",
                bundle.path().to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{out:?}");
        bundle.config =
            serde_json::from_slice(&std::fs::read(bundle.path().join("config.json")).unwrap())
                .unwrap();
        bundle.edit(|c| c["process"]["terminal"] = json!(false));
        Rootless {
            uid,
            gid,
            bundle,
            root,
        }
    }

    /// berth, as the test user, with this state root.
    fn berth(&self, args: &[&str]) -> std::process::Output {
        let root = ["--root", self.root.path().to_str().unwrap()];
        let args: Vec<&str> = root.iter().chain(args).copied().collect();
        as_user(self.uid, self.gid, &args)
    }

    /// `berth VERB... -b BUNDLE ID`, as the test user.
    fn with_bundle(&self, verb: &[&str], id: &str) -> std::process::Output {
        let bundle = ["-b", self.bundle.path().to_str().unwrap(), id];
        let args: Vec<&str> = verb.iter().chain(&bundle).copied().collect();
        self.berth(&args)
    }

    fn assert_clean(&self, id: &str) {
        assert!(!self.root.path().join(id).exists(), "state left");
        assert_eq!(cgroups_named(id), Vec::<std::path::PathBuf>::new());
        assert_eq!(mounts_under(self.bundle.path()), Vec::<String>::new());
        assert_eq!(
            processes_rooted_in(&self.bundle.rootfs()),
            Vec::<i32>::new()
        );
    }
}

fn as_user(uid: u32, gid: u32, args: &[&str]) -> std::process::Output {
    output_via_files(
        Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
            ])
            .args(["env", "-u", "XDG_RUNTIME_DIR", BERTH])
            .args(args),
    )
}

#[test]
fn an_unprivileged_user_runs_a_container_as_its_root() {
    let mut r = Rootless::new();
    r.bundle.sh(
        "id -u; cat /proc/self/uid_map; hostname; echo $$; grep -c NoNewPrivs /proc/self/status",
    );
    let id = unique_id("rootless");
    let out = r.with_bundle(&["run"], &id);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", &r.uid.to_string(), "1"]
    );
    assert_eq!(lines[2], "berth");
    assert_eq!(lines[3], "1");
    r.assert_clean(&id);
}

#[test]
fn several_id_ranges_go_through_newuidmap() {
    let mut r = Rootless::new();
    r.bundle.edit(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": r.uid, "size": 1},
                                           {"containerID": 1, "hostID": SUB_START, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": r.gid, "size": 1},
                                           {"containerID": 1, "hostID": SUB_START, "size": 65536}]);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [100]});
    });
    r.bundle.sh("cat /proc/self/uid_map | wc -l; id -u; id -G");
    let id = unique_id("ranges");
    let out = r.with_bundle(&["run"], &id);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().collect::<Vec<_>>(), ["2", "1000", "1000 100"]);
    r.assert_clean(&id);
}

#[test]
fn rootless_containers_say_that_limits_are_not_applied() {
    let mut r = Rootless::new();
    r.bundle
        .edit(|c| c["linux"]["resources"] = json!({"pids": {"limit": 10}}));
    r.bundle.args(&["true"]);
    let id = unique_id("limits");
    let out = r.with_bundle(&["run"], &id);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("manages no cgroups") && err.contains("not applied"),
        "{err}"
    );
    r.assert_clean(&id);
}

#[test]
fn a_rootless_container_takes_exec() {
    let mut r = Rootless::new();
    r.bundle.args(&["sleep", "30"]);
    let id = unique_id("rlexec");
    let out = r.with_bundle(&["run", "-d"], &id);
    assert!(out.status.success(), "{out:?}");
    let out = r.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; echo $$; readlink /proc/self/ns/pid",
    ]);
    let _ = r.berth(&["delete", "--force", &id]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0");
    assert_ne!(lines[1], "1");
    r.assert_clean(&id);
}

#[test]
fn without_a_user_namespace_an_unprivileged_user_is_refused_clearly() {
    let mut r = Rootless::new();
    r.bundle.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "user");
        c["linux"].as_object_mut().unwrap().remove("uidMappings");
        c["linux"].as_object_mut().unwrap().remove("gidMappings");
    });
    let id = unique_id("nouserns");
    let out = r.with_bundle(&["create"], &id);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rootless") && err.contains("user namespace"),
        "{err}"
    );
    r.assert_clean(&id);
}

/// Without XDG_RUNTIME_DIR an unprivileged berth has no state root to
/// fall back on: a directory under /tmp could be another user's.
#[test]
fn without_xdg_runtime_dir_the_state_root_must_be_given() {
    let (uid, gid) = test_user();
    let fallback = format!("/tmp/berth-{uid}");
    for args in [
        &["list"][..],
        &["state", "c1"],
        &["delete", "--force", "c1"],
    ] {
        let out = as_user(uid, gid, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "berth {args:?} succeeded");
        assert!(err.contains("XDG_RUNTIME_DIR is not set"), "{err}");
    }
    assert!(
        !std::path::Path::new(&fallback).exists(),
        "{fallback} was made"
    );
    let out = as_user(
        uid,
        gid,
        &["spec", "--rootless", "--bundle", "/nonexistent"],
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("XDG_RUNTIME_DIR"),
        "spec needs no state root"
    );
}

/// Under rootless podman berth is uid 0 of the user's namespace, where
/// /run is not its to write: as runc, it then keeps its state in
/// XDG_RUNTIME_DIR, unless USER says it is root itself.
#[test]
fn uid_0_of_a_user_namespace_keeps_its_state_in_xdg_runtime_dir() {
    let xdg = tempfile::tempdir().unwrap();
    let berth = Berth::with_root_in(xdg.path());
    let c = Container::create(&berth, &Bundle::new(), &[]);
    let list_as = |user: &str| {
        let out = output_via_files(
            Command::new("unshare")
                .args(["--user", "--map-root-user", "env"])
                .arg(format!("XDG_RUNTIME_DIR={}", xdg.path().display()))
                .arg(format!("USER={user}"))
                .args([BERTH, "list", "-q"]),
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(list_as("podman-user").trim(), c.id);
    assert!(!list_as("root").contains(&c.id));
}
