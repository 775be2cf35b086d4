//! Behaviours where berth does what runc does, and an engine or a user can
//! tell: process start (capabilities, stdio ownership, hook cwd, I/O
//! priority) and the rootfs (read-only /dev, bind sources of a user
//! namespace container, relative masked paths, symlinked /proc).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use common::*;
use serde_json::json;

fn status_field(text: &str, field: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {text}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn capabilities_berth_lacks_are_dropped_with_a_warning() {
    const CAP_SYS_MODULE: u64 = 16;
    let mut bundle = Bundle::new();
    bundle
        .edit(|c| {
            let all = json!(["CAP_SYS_MODULE", "CAP_CHOWN", "CAP_KILL"]);
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set] = all.clone();
            }
        })
        .sh("grep -E '^Cap(Bnd|Eff)' /proc/self/status");
    let berth = Berth::new();
    let id = unique_id("capbnd");
    let mut cmd = berth.cmd(&["run", "-b", bundle.path().to_str().unwrap(), &id]);
    // SAFETY: prctl in the child before exec; no allocation.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_MODULE, 0, 0, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output_via_files(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("CAP_SYS_MODULE") || stderr.contains("SYS_MODULE"),
        "{stderr}"
    );
    // CAP_CHOWN is 0, CAP_KILL 5.
    let want: u64 = 1 << 0 | 1 << 5;
    assert_eq!(status_field(&stdout, "CapBnd"), want, "{stdout}");
    assert_eq!(status_field(&stdout, "CapEff"), want, "{stdout}");
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn stdio_is_given_to_the_user_but_dev_null_is_not() {
    let mut bundle = Bundle::new();
    bundle
        .edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}))
        .sh("stat -L -c %u /proc/self/fd/1; stat -L -c %u /proc/self/fd/0");
    let out = run_ok(&bundle);
    // stdout is the test's file, now the user's; stdin is /dev/null.
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1000", "0"], "{out}");
    let st = std::fs::metadata("/dev/null").unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&st), 0);
}

#[test]
fn create_container_hooks_start_in_the_rootfs() {
    let mut bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    bundle
        .edit(|c| {
            c["hooks"]["createContainer"] =
                json!([{"path": "/bin/sh", "args": ["sh", "-c", "pwd > hook-cwd"]}]);
        })
        .args(&["true"]);
    run_ok(&bundle);
    let cwd = std::fs::read_to_string(rootfs.join("hook-cwd")).unwrap();
    assert_eq!(Path::new(cwd.trim()), rootfs.canonicalize().unwrap());
}

#[test]
fn a_realtime_io_priority_is_set_before_privileges_go() {
    let mut bundle = Bundle::new();
    bundle
        .edit(|c| {
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_RT", "priority": 3});
        })
        .sh("ionice -p $$");
    let out = run_ok(&bundle);
    assert!(out.contains("realtime") && out.contains('3'), "{out}");
}

#[test]
fn a_read_only_dev_is_filled_then_made_read_only() {
    let mut bundle = Bundle::new();
    bundle
        .edit(|c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            let dev = mounts.iter_mut().find(|m| m["destination"] == "/dev").unwrap();
            dev["options"].as_array_mut().unwrap().push(json!("ro"));
        })
        .sh("ls /dev/null /dev/zero /dev/urandom; awk '$5 == \"/dev\" {print $6}' /proc/self/mountinfo");
    let out = run_ok(&bundle);
    assert!(out.contains("/dev/urandom"), "{out}");
    assert!(
        out.lines().last().unwrap().split(',').any(|o| o == "ro"),
        "{out}"
    );
}

#[test]
fn a_user_namespace_container_binds_sources_only_root_can_reach() {
    let private = tempfile::Builder::new()
        .prefix("berth-0700-")
        .tempdir()
        .unwrap();
    std::fs::create_dir(private.path().join("data")).unwrap();
    std::fs::write(private.path().join("data/file"), "secret\n").unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut bundle = Bundle::new();
    // The mount point exists: the container's root (host uid 100000) may
    // not write to the root-owned image.
    std::fs::create_dir(bundle.rootfs().join("data")).unwrap();
    bundle
        .user_namespace(100000, 100000)
        .edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/data", "type": "bind",
                "source": private.path().join("data"), "options": ["rbind", "ro"]
            }));
        })
        .args(&["sleep", "30"]);
    let berth = Berth::new();
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let out = berth.ok(&["exec", &c.id, "cat", "/data/file"]);
    assert_eq!(out, "secret\n");
    let id = c.id.clone();
    drop(c);
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn relative_masked_and_readonly_paths_are_taken_from_the_root() {
    let mut bundle = Bundle::new();
    std::fs::write(bundle.rootfs().join("etc/secret"), "hidden\n").unwrap();
    bundle
        .edit(|c| {
            c["linux"]["maskedPaths"] = json!(["etc/secret"]);
            c["linux"]["readonlyPaths"] = json!(["tmp"]);
        })
        .sh("cat /etc/secret; echo .; touch /tmp/x 2>&1 || echo refused");
    let out = run_ok(&bundle);
    assert!(out.starts_with(".\n"), "{out}");
    assert!(out.contains("refused"), "{out}");
}

#[test]
fn a_symlinked_proc_is_refused_naming_the_symlink() {
    let mut bundle = Bundle::new();
    let proc_dir = bundle.rootfs().join("proc");
    std::fs::remove_dir(&proc_dir).unwrap();
    std::os::unix::fs::symlink("/tmp/fakeproc", &proc_dir).unwrap();
    bundle.args(&["true"]);
    let berth = Berth::new();
    let id = unique_id("procln");
    let err = berth.fails(&["run", "-b", bundle.path().to_str().unwrap(), &id]);
    assert!(
        err.contains("/proc is a symlink") && err.contains("/tmp/fakeproc"),
        "{err}"
    );
    assert!(!bundle.rootfs().join("tmp/fakeproc").exists());
    assert_nothing_left(&berth, &id, &bundle);
}
