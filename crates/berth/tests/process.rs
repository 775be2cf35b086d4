//! What the process inside sees: namespaces, user, capabilities, limits,
//! environment, and the other process settings of the spec.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;

/// The line of /proc/self/status that starts with `key`, as seen inside.
fn status_line(out: &str, key: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in {out}"))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn the_process_is_pid_1_with_the_spec_hostname_and_domainname() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["hostname"] = json!("inside");
        c["domainname"] = json!("example.org");
    });
    bundle.sh("echo $$; hostname; cat /proc/sys/kernel/domainname; ps -o pid | wc -l");
    let out = run_ok(&bundle);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    assert_eq!(lines[1], "inside");
    assert_eq!(lines[2], "example.org");
    // ps itself, sh and the header line: nothing of the host is visible.
    assert!(lines[3].trim().parse::<u32>().unwrap() <= 4, "{out}");
}

#[test]
fn every_namespace_of_the_spec_is_new() {
    let mut bundle = Bundle::new();
    bundle
        .cgroup_namespace()
        .add_namespace(json!({"type": "time"}));
    bundle.sh("for ns in pid net ipc uts mnt cgroup time; do readlink /proc/self/ns/$ns; done");
    let out = run_ok(&bundle);
    for (ns, inside) in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "time"]
        .iter()
        .zip(out.lines())
    {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(
            host.to_str().unwrap(),
            inside,
            "{ns} namespace is the host's"
        );
    }
    assert_eq!(out.lines().count(), 7);
}

#[test]
fn the_network_namespace_has_only_loopback() {
    let mut bundle = Bundle::new();
    bundle.sh("ls /sys/class/net");
    assert_eq!(run_ok(&bundle).trim(), "lo");
}

#[test]
fn the_cgroup_namespace_makes_the_container_cgroup_the_root() {
    let mut bundle = Bundle::new();
    bundle.cgroup_namespace().sh("cat /proc/self/cgroup");
    let out = run_ok(&bundle);
    for line in out.lines() {
        assert!(line.ends_with(":/"), "{line}");
    }
}

#[test]
fn a_user_namespace_maps_ids_as_the_spec_says() {
    let mut bundle = Bundle::new();
    bundle.user_namespace(100000, 200000);
    bundle.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; ls -ln /bin/busybox");
    let out = run_ok(&bundle);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"]);
    assert_eq!(lines[1], ["0", "200000", "65536"]);
    assert_eq!(lines[2], ["0"]);
    assert_eq!(lines[3], ["0"]);
    // Host root is not mapped: its files show as the overflow id.
    assert_eq!(lines[4][2], "65534", "{out}");
}

#[test]
fn time_namespace_offsets_shift_the_boot_clock() {
    let mut bundle = Bundle::new();
    bundle.add_namespace(json!({"type": "time"})).edit(|c| {
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000, "nanosecs": 0}});
    });
    bundle.sh("cut -d. -f1 /proc/uptime");
    let inside: u64 = run_ok(&bundle).trim().parse().unwrap();
    let host: u64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(inside >= host + 864000 - 5, "inside {inside}, host {host}");
}

#[test]
fn namespaces_are_joined_by_path() {
    let berth = Berth::new();
    let mut first = Bundle::new();
    first.args(&["sleep", "30"]);
    let a = Container::create(&berth, &first, &[]);
    let pid = berth.state(&a.id)["pid"].as_i64().unwrap();
    let mut second = Bundle::new();
    second.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        for n in ns.iter_mut() {
            if n["type"] == "network" || n["type"] == "ipc" || n["type"] == "uts" {
                let name = match n["type"].as_str().unwrap() {
                    "network" => "net",
                    other => other,
                };
                n["path"] = json!(format!("/proc/{pid}/ns/{name}"));
            }
        }
        c.as_object_mut().unwrap().remove("hostname");
    });
    second.sh("for ns in net ipc uts pid; do readlink /proc/self/ns/$ns; done");
    let out = run_ok(&second);
    let inside: Vec<&str> = out.lines().collect();
    for (i, ns) in ["net", "ipc", "uts"].iter().enumerate() {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(inside[i], theirs.to_str().unwrap(), "{ns} was not joined");
    }
    let their_pid_ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_ne!(
        inside[3],
        their_pid_ns.to_str().unwrap(),
        "the pid namespace should be new"
    );
}

#[test]
fn a_user_namespace_is_joined_by_path_with_new_namespaces_inside_it() {
    let berth = Berth::new();
    let mut first = Bundle::new();
    first.args(&["sleep", "30"]);
    first.user_namespace(300000, 300000);
    let a = Container::create(&berth, &first, &[]);
    let pid = berth.state(&a.id)["pid"].as_i64().unwrap();
    let mut second = Bundle::new();
    second.add_namespace(json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}));
    second.sh("echo $$; cat /proc/self/uid_map; readlink /proc/self/ns/user");
    let out = run_ok(&second);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "1",
        "a new pid namespace inside the joined user namespace"
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "300000", "65536"]
    );
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_eq!(lines[2], theirs.to_str().unwrap());
}

#[test]
fn env_cwd_user_groups_and_umask_are_the_specs() {
    let mut bundle = Bundle::new();
    std::fs::create_dir_all(bundle.rootfs().join("work/dir")).unwrap();
    bundle.edit(|c| {
        let p = &mut c["process"];
        p["env"] = json!(["PATH=/bin", "GREETING=hi there"]);
        p["cwd"] = json!("/work/dir");
        p["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 63});
    });
    bundle.sh("echo \"$GREETING\"; echo $HOME; pwd; id -u; id -g; id -G; umask");
    let out = run_ok(&bundle);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "hi there",
            "/",
            "/work/dir",
            "1000",
            "1001",
            "1001 10 20",
            "0077"
        ]
    );
}

/// As runc does (a Kubernetes workingDir need not be in the image): made
/// by root, before the root turns read-only, and entered as the user.
#[test]
fn a_missing_cwd_is_made() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["root"]["readonly"] = json!(true);
        c["process"]["cwd"] = json!("/does/not/exist");
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    bundle.sh("pwd; stat -c %u .");
    assert_eq!(
        run_ok(&bundle).lines().collect::<Vec<_>>(),
        ["/does/not/exist", "0"]
    );
}

#[test]
fn a_missing_cwd_is_made_inside_the_root_whatever_the_image_links() {
    let mut bundle = Bundle::new();
    // /tmp/NAME exists in the image, not on the host: the link leads there
    // only if it is followed inside the root.
    let name = unique_id("cwd-link");
    std::fs::create_dir(bundle.rootfs().join("tmp").join(&name)).unwrap();
    let outside = Path::new("/tmp").join(&name);
    std::os::unix::fs::symlink(
        format!("/../../../../tmp/{name}"),
        bundle.rootfs().join("link"),
    )
    .unwrap();
    bundle.edit(|c| c["process"]["cwd"] = json!("/link/made"));
    bundle.sh("pwd -P");
    assert_eq!(run_ok(&bundle).trim(), format!("/tmp/{name}/made"));
    assert!(
        !outside.exists(),
        "{} was made on the host",
        outside.display()
    );
}

#[test]
fn home_comes_from_the_containers_passwd() {
    let mut bundle = Bundle::new();
    bundle.sh("echo $HOME");
    assert_eq!(run_ok(&bundle).trim(), "/root");
}

#[test]
fn rlimits_are_set() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
        ]);
    });
    bundle.sh("ulimit -Sn; ulimit -Hn; ulimit -c");
    assert_eq!(
        run_ok(&bundle).lines().collect::<Vec<_>>(),
        ["100", "200", "0"]
    );
}

#[test]
fn capabilities_are_exactly_the_specs_and_inheritable_stays_empty() {
    let mut bundle = Bundle::new();
    bundle.sh("cat /proc/self/status");
    let out = run_ok(&bundle);
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29).
    let want = format!("{:016x}", (1u64 << 5) | (1 << 10) | (1 << 29));
    for key in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(status_line(&out, key), want, "{key}");
    }
    assert_eq!(status_line(&out, "CapInh:"), "0000000000000000");
    assert_eq!(status_line(&out, "CapAmb:"), "0000000000000000");
    assert_eq!(status_line(&out, "NoNewPrivs:"), "1");
}

#[test]
fn ambient_capabilities_survive_the_switch_to_a_user() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        let caps = json!(["CAP_NET_BIND_SERVICE"]);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps
        });
    });
    bundle.sh("cat /proc/self/status");
    let out = run_ok(&bundle);
    let want = format!("{:016x}", 1u64 << 10);
    for key in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:"] {
        assert_eq!(status_line(&out, key), want, "{key}");
    }
}

#[test]
fn without_no_new_privileges_the_flag_is_off() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["process"]["noNewPrivileges"] = json!(false));
    bundle.sh("grep NoNewPrivs /proc/self/status");
    assert!(run_ok(&bundle).trim().ends_with('0'));
}

#[test]
fn oom_score_adj_is_set() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["process"]["oomScoreAdj"] = json!(123));
    bundle.sh("cat /proc/self/oom_score_adj");
    assert_eq!(run_ok(&bundle).trim(), "123");
}

#[test]
fn sysctls_are_written_in_the_containers_namespaces() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"})
    });
    bundle.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni");
    assert_eq!(run_ok(&bundle).lines().collect::<Vec<_>>(), ["1", "1234"]);
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmni")
            .unwrap()
            .trim(),
        "1234"
    );
}

#[test]
fn seccomp_blocks_what_the_profile_says() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"}
            ]
        });
        c["root"]["readonly"] = json!(false);
    });
    bundle.sh("grep Seccomp: /proc/self/status; mkdir /x 2>&1; echo rc=$?");
    let out = run_ok(&bundle);
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(
        out.contains("Operation not permitted") && out.contains("rc=1"),
        "{out}"
    );
}

#[test]
fn seccomp_is_loaded_after_no_new_privs_when_asked() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["process"]["noNewPrivileges"] = json!(true);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    bundle.sh("grep -E 'Seccomp:|NoNewPrivs:' /proc/self/status");
    let out = run_ok(&bundle);
    assert!(
        out.contains("Seccomp:\t2") && out.contains("NoNewPrivs:\t1"),
        "{out}"
    );
}

#[test]
fn personality_scheduler_and_io_priority_are_applied() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    });
    // uname -m under LINUX32; stat field 19 is nice, 41 the policy.
    bundle.sh("uname -m; cut -d' ' -f19,41 /proc/self/stat; ionice -p $$");
    let out = run_ok(&bundle);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "i686");
    assert_eq!(lines[1], "5 3");
    assert!(
        lines[2].contains("best-effort") && lines[2].contains('6'),
        "{out}"
    );
}

#[test]
fn no_host_fd_reaches_the_container() {
    let mut bundle = Bundle::new();
    bundle.sh("ls /proc/self/fd");
    let berth = Berth::new();
    let id = unique_id("fds");
    // A stray descriptor of the caller, as engines leave them.
    let stray = std::fs::File::open("/").unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stray);
    // SAFETY: clearing close-on-exec of our own descriptor.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let out = berth.run(&["run", "-b", bundle.path().to_str().unwrap(), &id]);
    let fds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    // ls itself opens the directory it lists (fd 3).
    assert_eq!(fds, ["0", "1", "2", "3"], "{:?}", out);
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn preserve_fds_hands_on_exactly_the_asked_descriptors() {
    use std::os::unix::process::CommandExt;
    let mut bundle = Bundle::new();
    bundle.sh("cat <&3; ls /proc/self/fd | wc -l");
    let berth = Berth::new();
    let id = unique_id("pfd");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, "passed on\n").unwrap();
    let file = std::fs::File::open(&data).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut cmd = berth.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "-b",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    // SAFETY: dup2 in the child before exec, onto fd 3.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output_via_files(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "passed on", "{out:?}");
    // 0, 1, 2, 3 and the directory ls reads.
    assert_eq!(lines[1].trim(), "5");
    assert_nothing_left(&berth, &id, &bundle);
}
