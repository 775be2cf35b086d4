//! The root filesystem: mounts and their options, /dev, masked and
//! read-only paths, the root's own flags, and symlinks that try to escape.

mod common;

use common::*;
use serde_json::json;

/// The mountinfo line of `point` inside the container output `out`.
fn mount_line<'a>(out: &'a str, point: &str) -> &'a str {
    out.lines()
        .find(|l| l.split(' ').nth(4) == Some(point))
        .unwrap_or_else(|| panic!("{point} is not a mount point:\n{out}"))
}

fn push_mount(c: &mut serde_json::Value, mount: serde_json::Value) {
    c["mounts"].as_array_mut().unwrap().push(mount);
}

#[test]
fn the_container_has_its_own_mounts_and_a_read_only_root() {
    let mut bundle = Bundle::new();
    bundle.sh("cat /proc/self/mountinfo; touch /x 2>&1; echo rc=$?");
    let out = run_ok(&bundle);
    let root = mount_line(&out, "/");
    assert!(root.split(' ').nth(5).unwrap().starts_with("ro"), "{root}");
    for point in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ] {
        mount_line(&out, point);
    }
    assert!(out.contains("Read-only file system") && out.contains("rc=1"));
}

#[test]
fn a_writable_root_when_readonly_is_false() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["root"]["readonly"] = json!(false));
    bundle.sh("echo hi > /written && cat /written");
    assert_eq!(run_ok(&bundle), "hi\n");
    assert_eq!(
        std::fs::read_to_string(bundle.rootfs().join("written")).unwrap(),
        "hi\n"
    );
}

#[test]
fn bind_mounts_honour_their_options() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("file"), "from host\n").unwrap();
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        push_mount(c, json!({"destination": "/rw", "type": "bind", "source": host.path(), "options": ["rbind", "rw"]}));
        push_mount(c, json!({"destination": "/ro", "type": "bind", "source": host.path(),
                             "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}));
        push_mount(c, json!({"destination": "/etc/hosted", "type": "none", "source": host.path().join("file"),
                             "options": ["bind", "ro"]}));
    });
    bundle.sh("cat /rw/file; echo new > /rw/new; (echo x > /ro/x) 2>&1; cat /etc/hosted; cat /proc/self/mountinfo");
    let out = run_ok(&bundle);
    assert!(out.starts_with("from host\n"), "{out}");
    assert!(out.contains("Read-only file system"));
    assert_eq!(
        std::fs::read_to_string(host.path().join("new")).unwrap(),
        "new\n"
    );
    let ro = mount_line(&out, "/ro");
    let flags = ro.split(' ').nth(5).unwrap();
    for flag in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(
            flags.split(',').any(|f| f == flag),
            "{flag} missing in {ro}"
        );
    }
    assert!(mount_line(&out, "/etc/hosted")
        .split(' ')
        .nth(5)
        .unwrap()
        .starts_with("ro"));
}

#[test]
fn tmpfs_options_set_mode_size_and_owner() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        push_mount(c, json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "mode=1770", "size=1m", "uid=1000", "gid=1000"]}));
    });
    bundle.sh("stat -c '%a %u %g' /scratch; df -k /scratch | tail -1");
    let out = run_ok(&bundle);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1770 1000 1000");
    assert_eq!(lines[1].split_whitespace().nth(1), Some("1024"), "{out}");
}

#[test]
fn recursive_read_only_reaches_submounts() {
    let host = tempfile::tempdir().unwrap();
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        push_mount(c, json!({"destination": "/tree", "type": "tmpfs", "source": "tmpfs", "options": []}));
        push_mount(c, json!({"destination": "/tree/sub", "type": "bind", "source": host.path(), "options": ["rbind"]}));
        push_mount(c, json!({"destination": "/view", "type": "bind", "source": "/proc/self/root/dev",
                             "options": ["rbind", "rro"]}));
    });
    bundle.sh("grep ' /view' /proc/self/mountinfo | cut -d' ' -f5,6");
    let out = run_ok(&bundle);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() > 1, "the host's /dev has submounts: {out}");
    for line in lines {
        assert!(line.split(' ').nth(1).unwrap().starts_with("ro"), "{line}");
    }
}

#[test]
fn recursive_atime_options_set_the_mode_of_every_submount() {
    let host = tempfile::tempdir().unwrap();
    let mut bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    // (option, the mode it gives a tree whose mounts are noatime)
    let cases = [
        ("rstrictatime", "strictatime"),
        ("ratime", "relatime"),
        ("rnostrictatime", "relatime"),
        ("rnoatime", "noatime"),
    ];
    bundle.edit(|c| {
        for (i, (option, _)) in cases.iter().enumerate() {
            push_mount(c, json!({"destination": format!("/tree{i}"), "type": "tmpfs", "source": "tmpfs",
                                 "options": ["noatime"]}));
            push_mount(c, json!({"destination": format!("/tree{i}/sub"), "type": "bind", "source": host.path(),
                                 "options": ["rbind", "noatime"]}));
            // The tree as the container's mounts made it, seen from the host's
            // side of the rootfs.
            push_mount(c, json!({"destination": format!("/view{i}"), "type": "bind",
                                 "source": rootfs.join(format!("tree{i}")), "options": ["rbind", option]}));
        }
    });
    bundle.sh("grep ' /view' /proc/self/mountinfo | cut -d' ' -f5,6");
    let out = run_ok(&bundle);
    for (i, (option, mode)) in cases.iter().enumerate() {
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with(&format!("/view{i}")))
            .collect();
        assert_eq!(lines.len(), 2, "{option}: {out}");
        for line in lines {
            let flags: Vec<&str> = line.split(' ').nth(1).unwrap().split(',').collect();
            // mountinfo names no mode for strictatime.
            let shown = ["noatime", "relatime"]
                .into_iter()
                .find(|m| flags.contains(m))
                .unwrap_or("strictatime");
            assert_eq!(shown, *mode, "{option}: {line}");
        }
    }
}

#[test]
fn default_devices_and_links_are_there() {
    let mut bundle = Bundle::new();
    bundle.sh(
        "for d in null zero full random urandom tty; do stat -c '%n %t:%T %a' /dev/$d; done; \
         for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done; \
         echo x > /dev/null && head -c 4 /dev/zero | wc -c",
    );
    let out = run_ok(&bundle);
    let want = [
        "/dev/null 1:3 666",
        "/dev/zero 1:5 666",
        "/dev/full 1:7 666",
        "/dev/random 1:8 666",
        "/dev/urandom 1:9 666",
        "/dev/tty 5:0 666",
        "pts/ptmx",
        "/proc/self/fd",
        "/proc/self/fd/0",
        "/proc/self/fd/1",
        "/proc/self/fd/2",
        "4",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
}

#[test]
fn spec_devices_are_created_with_their_mode_and_owner_and_only_device_rules_allow_them() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/extra/null2", "type": "c", "major": 1, "minor": 3, "fileMode": 384, "uid": 7, "gid": 8},
            {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 438},
            {"path": "/dev/extra/tty0", "type": "c", "major": 4, "minor": 0, "fileMode": 438}
        ]);
        // As runc: a linux.devices node is usable only where
        // resources.devices allows it; letters other than r, w, m are
        // dropped.
        c["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "wa"}));
    });
    // On v1 the rules also show in devices.list; v2's eBPF program shows
    // them only by what it allows.
    let rules = if host_is_cgroup_v2() {
        ""
    } else {
        "; grep -E '^c (1:11|4:0|10:200) ' /sys/fs/cgroup/devices/devices.list"
    };
    bundle.sh(&format!(
        "stat -c '%t:%T %a %u %g' /dev/extra/null2; echo hello > /dev/kmsg && echo writable; \
         (head -c 0 /dev/extra/tty0) 2>&1 || true{rules}"
    ));
    let out = run_ok(&bundle);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1:3 600 7 8", "writable"], "{out}");
    assert!(lines[2].contains("Operation not permitted"), "{out}");
    if !host_is_cgroup_v2() {
        assert_eq!(lines[3..], ["c 1:11 w", "c 10:200 rwm"], "{out}");
    }
}

#[test]
fn the_device_cgroup_denies_what_the_spec_does_not_allow() {
    let mut bundle = Bundle::new();
    // A node the image brings, which no rule allows.
    let node = bundle.rootfs().join("tty0");
    let c_path = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
    // SAFETY: mknod with a valid path.
    assert_eq!(
        unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(4, 0)) },
        0
    );
    if host_is_cgroup_v2() {
        // The rules are an eBPF program: only a device's use shows them.
        bundle.sh("(head -c 0 /tty0) 2>&1; head -c 0 /dev/null && echo null-ok");
        let out = run_ok(&bundle);
        assert!(out.contains("Operation not permitted"), "{out}");
        assert!(out.contains("null-ok"), "{out}");
        return;
    }
    bundle.sh("(head -c 0 /tty0) 2>&1; cat /sys/fs/cgroup/devices/devices.list");
    let out = run_ok(&bundle);
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(
        out.contains("c 1:3 rwm") && !out.contains("a *:* rwm"),
        "{out}"
    );
}

#[test]
fn masked_paths_hide_files_and_directories() {
    let mut bundle = Bundle::new();
    // The default spec masks /proc/keys (a file) and /proc/acpi (a directory).
    bundle.sh("wc -c < /proc/keys; ls /proc/acpi | wc -l; grep -cE ' /proc/keys | /proc/acpi ' /proc/self/mountinfo");
    assert_eq!(run_ok(&bundle).lines().collect::<Vec<_>>(), ["0", "0", "2"]);
}

#[test]
fn readonly_paths_cannot_be_written() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
    });
    bundle.sh("(echo 1 > /proc/sys/kernel/domainname) 2>&1; echo rc=$?");
    let out = run_ok(&bundle);
    assert!(
        out.contains("Read-only file system") && out.contains("rc=1"),
        "{out}"
    );
}

#[test]
fn mount_destinations_cannot_escape_through_symlinks() {
    let mut bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    // Absolute and climbing symlinks: both must resolve inside the rootfs.
    std::os::unix::fs::symlink("/etc", rootfs.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../tmp", rootfs.join("climb")).unwrap();
    let marker = format!("berth-escape-{}", std::process::id());
    bundle.edit(|c| {
        push_mount(
            c,
            json!({"destination": format!("/abs/{marker}"), "type": "tmpfs", "source": "tmpfs"}),
        );
        push_mount(
            c,
            json!({"destination": format!("/climb/{marker}"), "type": "tmpfs", "source": "tmpfs"}),
        );
    });
    bundle.sh("true");
    run_ok(&bundle);
    assert!(
        !std::path::Path::new("/etc").join(&marker).exists(),
        "a mount point was made in the host's /etc"
    );
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "a mount point was made in the host's /tmp"
    );
    assert!(rootfs.join("etc").join(&marker).is_dir());
    assert!(rootfs.join("tmp").join(&marker).is_dir());
}

#[test]
fn proc_is_never_mounted_over_a_symlink() {
    let mut bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    std::fs::remove_dir(rootfs.join("proc")).unwrap();
    std::os::unix::fs::symlink("/tmp", rootfs.join("proc")).unwrap();
    bundle.sh("true");
    run_fails_saying(&bundle, "mounts[0].destination \"/proc\"");
}

#[test]
fn no_pivot_enters_the_root_by_moving_it() {
    let mut bundle = Bundle::new();
    bundle.sh("ls / | head -3; grep -c . /proc/self/mountinfo");
    let berth = Berth::new();
    let id = unique_id("nopivot");
    let out = berth.run(&[
        "run",
        "--no-pivot",
        "-b",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("bin\ndev\netc\n"));
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn the_cgroup_mount_shows_the_containers_own_cgroups() {
    let mut bundle = Bundle::new();
    // v1: a directory per controller; v2: the container's cgroup itself,
    // with the controllers' files.
    let (procs, entries) = if host_is_cgroup_v2() {
        (
            "/sys/fs/cgroup/cgroup.procs",
            [
                "cpu.max",
                "memory.max",
                "pids.max",
                "cgroup.freeze",
                "io.max",
            ],
        )
    } else {
        (
            "/sys/fs/cgroup/pids/cgroup.procs",
            ["cpu", "memory", "pids", "devices", "freezer"],
        )
    };
    bundle.sh(&format!("ls /sys/fs/cgroup; cat {procs}"));
    let out = run_ok(&bundle);
    for entry in entries {
        assert!(out.lines().any(|l| l == entry), "{entry} missing:\n{out}");
    }
    // Only the container's processes: sh and cat.
    let pids: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert!(pids.len() <= 2 && pids.contains(&"1"), "{out}");
}

#[test]
fn shared_rootfs_propagation_makes_the_root_shared() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["linux"]["rootfsPropagation"] = json!("rshared"));
    bundle.sh("awk '$5 == \"/\"' /proc/self/mountinfo");
    let out = run_ok(&bundle);
    assert!(out.contains("shared:"), "{out}");
}

#[test]
fn idmapped_bind_mounts_shift_ownership() {
    // On-disk ids are read as the mapping's containerIDs and shown as its
    // hostIDs, as runc does: a root-owned file shows as 100000 here, and
    // root (unmapped in the mount) cannot create files on it.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("owned"), "x").unwrap();
    let idmapped = |c: &mut serde_json::Value| {
        push_mount(
            c,
            json!({"destination": "/data", "type": "bind", "source": host.path(), "options": ["rbind", "idmap"],
                             "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                             "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}),
        );
    };
    let mut bundle = Bundle::new();
    bundle.edit(idmapped);
    bundle.sh("stat -c '%u %g' /data/owned; (touch /data/made) 2>&1; true");
    let out = run_ok(&bundle);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "100000 100000");
    assert!(lines[1].contains("Value too large"), "{out}");

    // In a user namespace with the same mapping, the file is root's, and
    // what root writes is stored as 0 on disk.
    let mut bundle = Bundle::new();
    // The rootfs is the host root's: the container's root cannot make the
    // mount point.
    std::fs::create_dir(bundle.rootfs().join("data")).unwrap();
    bundle.edit(idmapped);
    bundle.user_namespace(100000, 100000);
    bundle.sh("stat -c '%u %g' /data/owned; touch /data/made && stat -c '%u %g' /data/made");
    assert_eq!(run_ok(&bundle).lines().collect::<Vec<_>>(), ["0 0", "0 0"]);
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(host.path().join("made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (0, 0));
}

#[test]
fn an_idmapped_source_inside_the_rootfs_is_what_earlier_mounts_made_it() {
    // runc's mounts.bats "mount order, container idmap source": the source
    // is a rootfs path that earlier mounts of the container fill, one of
    // them idmapped already; "idmap" maps only the top of an rbind.
    let (top, below) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(top.path().join("owned"), "top\n").unwrap();
    std::fs::write(below.path().join("owned"), "below\n").unwrap();
    let maps = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let mut bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    bundle.edit(|c| {
        push_mount(c, json!({"destination": "/mnt", "type": "bind", "source": top.path(), "options": ["rbind"]}));
        push_mount(c, json!({"destination": "/mnt/below", "type": "bind", "source": below.path(),
                             "options": ["rbind", "idmap"], "uidMappings": maps, "gidMappings": maps}));
        push_mount(c, json!({"destination": "/final", "type": "bind", "source": rootfs.join("mnt"),
                             "options": ["rbind", "idmap"], "uidMappings": maps, "gidMappings": maps}));
    });
    bundle.sh("cd /final; cat owned below/owned; stat -c '%u %g' owned below/owned");
    assert_eq!(
        run_ok(&bundle),
        "top\nbelow\n100000 100000\n100000 100000\n"
    );
}

#[test]
fn idmapped_mounts_need_a_bind_and_both_maps() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                             "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                             "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}),
        );
    });
    let ran = run(&bundle);
    assert!(
        ran.stderr.contains("only bind mounts can be idmapped"),
        "{}",
        ran.stderr
    );
}

#[test]
fn tmpcopyup_fills_the_tmpfs_with_what_was_there() {
    let mut bundle = Bundle::new();
    let etc = bundle.rootfs().join("etc");
    std::fs::create_dir(etc.join("sub")).unwrap();
    std::fs::write(etc.join("sub/file"), "copied\n").unwrap();
    std::os::unix::fs::symlink("/outside", etc.join("link")).unwrap();
    std::os::unix::fs::chown(etc.join("sub/file"), Some(7), Some(8)).unwrap();
    bundle.edit(|c| {
        push_mount(
            c,
            json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                             "options": ["nosuid", "nodev", "mode=755", "size=1m", "tmpcopyup"]}),
        );
    });
    bundle.sh("grep ' /etc ' /proc/self/mounts | cut -d' ' -f1,3; cat /etc/sub/file; stat -c '%u %g' /etc/sub/file; readlink /etc/link; head -1 /etc/passwd");
    let out = run_ok(&bundle);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "tmpfs tmpfs",
            "copied",
            "7 8",
            "/outside",
            "root:x:0:0:root:/root:/bin/sh"
        ]
    );
}
