//! Attacks on what berth trusts besides the container: the ids and the
//! state root it is given, the pid file's directory, /proc inside the
//! container, the capability bounding set, hooks and the pty.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::json;

/// A process of the test's, and a state.json that names it, planted where
/// a hostile id would lead berth.
struct Decoy {
    sleeper: Background,
    dirs: Vec<std::path::PathBuf>,
}

impl Decoy {
    fn plant(dirs: &[std::path::PathBuf]) -> Decoy {
        // It must outlive the test (a zombie reads as signalled), which
        // in an emulated guest (tests/vm) takes minutes.
        let sleeper = Background::spawn(Command::new("sleep").arg("3600"));
        let pid = sleeper.pid();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let start_time: u64 = after_name.split(' ').nth(19).unwrap().parse().unwrap();
        let state = json!({
            "ociVersion": "1.2.0", "id": "decoy", "pid": pid, "pidStartTime": start_time,
            "bundle": "/nonexistent", "rootfs": "/nonexistent", "created": "2026-01-01T00:00:00Z",
            "config": {"ociVersion": "1.2.0"}
        });
        for dir in dirs {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("state.json"), state.to_string()).unwrap();
        }
        Decoy {
            sleeper,
            dirs: dirs.to_vec(),
        }
    }

    fn assert_untouched(&self) {
        let pid = self.sleeper.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("State:") && !l.contains("zombie")),
            "the decoy process was signalled:\n{status}"
        );
        for dir in &self.dirs {
            assert!(
                dir.join("state.json").exists(),
                "{} was removed",
                dir.display()
            );
        }
    }
}

/// Every verb that takes an id refuses ids that are paths, and touches
/// nothing they point at.
#[test]
fn hostile_ids_are_refused_by_every_verb() {
    let berth = Berth::new();
    let base = berth.root().parent().unwrap().to_path_buf();
    let outside = tempfile::Builder::new()
        .prefix("berth-decoy-")
        .tempdir_in(&base)
        .unwrap();
    let outside_name = outside.path().file_name().unwrap().to_str().unwrap();
    let climbing = format!("../{outside_name}");
    let absolute = outside.path().to_str().unwrap().to_string();
    let decoy = Decoy::plant(&[
        outside.path().to_path_buf(),
        berth.root().join("a/b"),
        berth.root().to_path_buf(),
    ]);
    let bundle = Bundle::new();
    let bundle_path = bundle.path().to_str().unwrap();
    for id in [climbing.as_str(), &absolute, "a/b", "", ".", ".."] {
        let verbs: Vec<Vec<&str>> = vec![
            vec!["start", id],
            vec!["state", id],
            vec!["kill", id, "KILL"],
            vec!["kill", "--all", id, "KILL"],
            vec!["delete", id],
            vec!["delete", "--force", id],
            vec!["pause", id],
            vec!["resume", id],
            vec!["exec", id, "true"],
            vec!["update", "--pids-limit", "10", id],
            vec!["events", "--stats", id],
            vec!["ps", id],
            vec!["create", "--bundle", bundle_path, id],
            vec!["run", "--bundle", bundle_path, id],
        ];
        for args in verbs {
            let err = berth.fails(&args);
            assert!(
                err.contains("invalid container id"),
                "berth {args:?}: {err}"
            );
        }
    }
    decoy.assert_untouched();
}

/// A state root that is a symlink, is writable by others or belongs to
/// another user is refused, whatever the verb.
#[test]
fn an_untrusted_state_root_is_refused() {
    let base = tempfile::Builder::new()
        .prefix("berth-roots-")
        .tempdir()
        .unwrap();
    let real = base.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let decoy = Decoy::plant(&[real.join("c1")]);
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let bundle = Bundle::new();
    let attempt = |root: &Path, expected: &str| {
        let r = root.to_str().unwrap();
        let bundle_path = bundle.path().to_str().unwrap();
        for args in [
            vec!["--root", r, "kill", "c1", "KILL"],
            vec!["--root", r, "delete", "--force", "c1"],
            vec!["--root", r, "state", "c1"],
            vec!["--root", r, "list"],
            vec!["--root", r, "create", "--bundle", bundle_path, "c2"],
        ] {
            let out = output_via_files(Command::new(BERTH).args(&args));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "berth {args:?} succeeded");
            assert!(err.contains(expected), "berth {args:?}: {err}");
        }
        assert!(!real.join("c2").exists());
    };
    attempt(&link, "is a symlink");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
    attempt(&real, "writable by group or others");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&real, Some(65534), None).unwrap();
    attempt(&real, "owned by uid 65534");
    std::os::unix::fs::chown(&real, Some(0), None).unwrap();
    decoy.assert_untouched();
    // A missing root is made, for berth's user alone.
    let fresh = base.path().join("fresh");
    let berth_out = output_via_files(Command::new(BERTH).arg("--root").arg(&fresh).args([
        "create",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "c3",
    ]));
    let _ = Command::new(BERTH)
        .arg("--root")
        .arg(&fresh)
        .args(["delete", "--force", "c3"])
        .status();
    assert!(berth_out.status.success(), "{berth_out:?}");
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

/// The pid file's temporary is never a file or symlink planted beside it.
#[test]
fn the_pid_file_never_follows_a_planted_symlink() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["true"]);
    let dir = tempfile::Builder::new()
        .prefix("berth-pid-")
        .tempdir()
        .unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join(".pid.tmp")).unwrap();
    let pid_file = dir.path().join("pid");
    let c = Container::create(&berth, &bundle, &["--pid-file", pid_file.to_str().unwrap()]);
    let pid = berth.state(&c.id)["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
}

/// Nothing but procfs is mounted at /proc, and nothing under it but the
/// files lxcfs emulates, wherever the image's symlinks lead the
/// destination.
#[test]
fn nothing_but_procfs_stands_in_for_proc() {
    let host = tempfile::Builder::new()
        .prefix("berth-fakeproc-")
        .tempdir()
        .unwrap();
    std::fs::write(host.path().join("cpuinfo"), "processor\t: fake\n").unwrap();
    let host_dir = host.path().to_str().unwrap().to_string();
    let refused: Vec<(&str, serde_json::Value)> = vec![
        (
            "/proc",
            json!({"destination": "/proc", "type": "bind", "source": host_dir, "options": ["rbind"]}),
        ),
        (
            "/proc/sys",
            json!({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"}),
        ),
        (
            "/proc/sys",
            json!({"destination": "/p/sys", "type": "tmpfs", "source": "tmpfs"}),
        ),
        (
            "/proc",
            json!({"destination": "/p", "type": "bind", "source": host_dir, "options": ["rbind"]}),
        ),
    ];
    for (landing, mount) in refused {
        let mut bundle = Bundle::new();
        std::os::unix::fs::symlink("/proc", bundle.rootfs().join("p")).unwrap();
        bundle.args(&["true"]).edit(|c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            if mount["destination"] == "/proc" {
                mounts.retain(|m| m["destination"] != "/proc");
            }
            mounts.push(mount.clone());
        });
        let index = bundle.config["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .position(|m| *m == mount)
            .unwrap();
        let ran = run(&bundle);
        assert_ne!(ran.code, 0, "{mount} was mounted");
        let expected = format!(
            "mounts[{index}].destination {:?}",
            mount["destination"].as_str().unwrap()
        );
        assert!(
            ran.stderr.contains(&expected) && ran.stderr.contains(&format!("\"{landing}\"")),
            "{mount}: {}",
            ran.stderr
        );
    }
    // What lxcfs does is still allowed.
    let mut bundle = Bundle::new();
    bundle.sh("head -n 1 /proc/cpuinfo").edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/proc/cpuinfo", "type": "bind",
            "source": host.path().join("cpuinfo"), "options": ["bind", "ro"]
        }))
    });
    assert_eq!(run_ok(&bundle), "processor\t: fake\n");
}

/// The bounding set is what the spec lists, whatever the container's
/// /proc/sys/kernel/cap_last_cap says: a mount over it is refused, and an
/// image file there (no procfs mounted) is not believed.
#[test]
fn the_bounding_set_does_not_trust_cap_last_cap() {
    let host = tempfile::Builder::new()
        .prefix("berth-lastcap-")
        .tempdir()
        .unwrap();
    let five = host.path().join("cap_last_cap");
    std::fs::write(&five, "5\n").unwrap();
    let listed = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let expected: u64 = (1 << 0) | (1 << 5) | (1 << 10);
    let with_caps = |c: &mut serde_json::Value| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(listed);
        }
        c["process"]["capabilities"]["inheritable"] = json!([]);
        c["process"]["capabilities"]["ambient"] = json!([]);
    };

    let mut bundle = Bundle::new();
    bundle.args(&["true"]).edit(|c| {
        with_caps(c);
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/proc/sys/kernel/cap_last_cap", "type": "bind",
            "source": five, "options": ["bind"]
        }));
    });
    run_fails_saying(&bundle, "\"/proc/sys/kernel/cap_last_cap\" is inside /proc");

    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let planted = bundle.rootfs().join("proc/sys/kernel/cap_last_cap");
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(&planted, "5\n").unwrap();
    bundle.args(&["sleep", "30"]).edit(|c| {
        with_caps(c);
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/proc");
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
    });
    let c = Container::create(&berth, &bundle, &[]);
    let pid = berth.state(&c.id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(bounding, expected, "CapBnd {bounding:#x}");
}

/// The image's /dev/pts/ptmx (the target of /dev/ptmx when no devpts is
/// mounted on /dev/pts) is a FIFO: berth refuses it as the pty
/// multiplexer, with a clear error, and leaves nothing behind.
#[test]
fn a_fake_ptmx_is_refused() {
    let mut bundle = Bundle::new();
    let pts = bundle.rootfs().join("dev/pts");
    std::fs::create_dir_all(&pts).unwrap();
    let fifo = std::ffi::CString::new(pts.join("ptmx").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) }, 0);
    bundle.args(&["true"]).edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev" && m["destination"] != "/dev/pts");
        c["process"]["terminal"] = json!(true);
    });
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("console.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let berth = Berth::new();
    let id = unique_id("ptmx");
    let err = berth.fails(&[
        "create",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "--console-socket",
        socket.to_str().unwrap(),
        &id,
    ]);
    assert!(err.contains("is not the pty multiplexer"), "{err}");
    assert_nothing_left(&berth, &id, &bundle);
}
