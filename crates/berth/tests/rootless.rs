//! berth run by an unprivileged user: a user namespace, no cgroups, id maps
//! written by berth itself or by newuidmap/newgidmap for several ranges.
//! The user is made by the test (with subordinate id ranges) if missing.

mod common;

use std::path::Path;
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

/// A bundle and state root owned by the test user, with `berth spec
/// --rootless` as the user writes it.
fn rootless_bundle(uid: u32, gid: u32) -> (Bundle, tempfile::TempDir) {
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
        serde_json::from_slice(&std::fs::read(bundle.path().join("config.json")).unwrap()).unwrap();
    bundle.edit(|c| c["process"]["terminal"] = json!(false));
    (bundle, root)
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

fn assert_clean(root: &Path, id: &str, bundle: &Bundle) {
    assert!(!root.join(id).exists(), "state left");
    assert_eq!(cgroups_named(id), Vec::<std::path::PathBuf>::new());
    assert_eq!(mounts_under(bundle.path()), Vec::<String>::new());
    assert_eq!(processes_rooted_in(&bundle.rootfs()), Vec::<i32>::new());
}

#[test]
fn an_unprivileged_user_runs_a_container_as_its_root() {
    let (uid, gid) = test_user();
    let (mut bundle, root) = rootless_bundle(uid, gid);
    bundle.sh(
        "id -u; cat /proc/self/uid_map; hostname; echo $$; grep -c NoNewPrivs /proc/self/status",
    );
    let id = unique_id("rootless");
    let root_arg = root.path().to_str().unwrap();
    let out = as_user(
        uid,
        gid,
        &[
            "--root",
            root_arg,
            "run",
            "-b",
            bundle.path().to_str().unwrap(),
            &id,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", &uid.to_string(), "1"]
    );
    assert_eq!(lines[2], "berth");
    assert_eq!(lines[3], "1");
    assert_clean(root.path(), &id, &bundle);
}

#[test]
fn several_id_ranges_go_through_newuidmap() {
    let (uid, gid) = test_user();
    let (mut bundle, root) = rootless_bundle(uid, gid);
    bundle.edit(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1},
                                           {"containerID": 1, "hostID": SUB_START, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1},
                                           {"containerID": 1, "hostID": SUB_START, "size": 65536}]);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [100]});
    });
    bundle.sh("cat /proc/self/uid_map | wc -l; id -u; id -G");
    let id = unique_id("ranges");
    let root_arg = root.path().to_str().unwrap();
    let out = as_user(
        uid,
        gid,
        &[
            "--root",
            root_arg,
            "run",
            "-b",
            bundle.path().to_str().unwrap(),
            &id,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().collect::<Vec<_>>(), ["2", "1000", "1000 100"]);
    assert_clean(root.path(), &id, &bundle);
}

#[test]
fn rootless_containers_say_that_limits_are_not_applied() {
    let (uid, gid) = test_user();
    let (mut bundle, root) = rootless_bundle(uid, gid);
    bundle.edit(|c| c["linux"]["resources"] = json!({"pids": {"limit": 10}}));
    bundle.args(&["true"]);
    let id = unique_id("limits");
    let root_arg = root.path().to_str().unwrap();
    let out = as_user(
        uid,
        gid,
        &[
            "--root",
            root_arg,
            "run",
            "-b",
            bundle.path().to_str().unwrap(),
            &id,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("manages no cgroups") && err.contains("not applied"),
        "{err}"
    );
    assert_clean(root.path(), &id, &bundle);
}

#[test]
fn a_rootless_container_takes_exec() {
    let (uid, gid) = test_user();
    let (mut bundle, root) = rootless_bundle(uid, gid);
    bundle.args(&["sleep", "30"]);
    let id = unique_id("rlexec");
    let root_arg = root.path().to_str().unwrap();
    let out = as_user(
        uid,
        gid,
        &[
            "--root",
            root_arg,
            "run",
            "-d",
            "-b",
            bundle.path().to_str().unwrap(),
            &id,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = as_user(
        uid,
        gid,
        &[
            "--root",
            root_arg,
            "exec",
            &id,
            "sh",
            "-c",
            "id -u; echo $$; readlink /proc/self/ns/pid",
        ],
    );
    let _ = as_user(uid, gid, &["--root", root_arg, "delete", "--force", &id]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0");
    assert_ne!(lines[1], "1");
    assert_clean(root.path(), &id, &bundle);
}

#[test]
fn without_a_user_namespace_an_unprivileged_user_is_refused_clearly() {
    let (uid, gid) = test_user();
    let (mut bundle, root) = rootless_bundle(uid, gid);
    bundle.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "user");
        c["linux"].as_object_mut().unwrap().remove("uidMappings");
        c["linux"].as_object_mut().unwrap().remove("gidMappings");
    });
    let id = unique_id("nouserns");
    let root_arg = root.path().to_str().unwrap();
    let out = as_user(
        uid,
        gid,
        &[
            "--root",
            root_arg,
            "create",
            "-b",
            bundle.path().to_str().unwrap(),
            &id,
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rootless") && err.contains("user namespace"),
        "{err}"
    );
    assert_clean(root.path(), &id, &bundle);
}
