//! `exec`: a process joins a running container.

mod common;

use common::*;
use serde_json::json;

/// A running container that sleeps.
fn sleeping<'a>(berth: &'a Berth, bundle: &mut Bundle) -> Container<'a> {
    bundle.args(&["sleep", "30"]);
    let c = Container::create(berth, bundle, &[]);
    berth.ok(&["start", &c.id]);
    c
}

#[test]
fn exec_prints_and_exits_with_the_programs_status() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    assert_eq!(berth.ok(&["exec", &c.id, "echo", "hello"]), "hello\n");
    let out = berth.run(&["exec", &c.id, "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
}

#[test]
fn exec_lands_in_the_containers_namespaces_and_cgroup() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.add_namespace(json!({"type": "time"}));
    let c = sleeping(&berth, &mut bundle);
    let init = berth.state(&c.id)["pid"].as_i64().unwrap();
    let script = "for ns in pid mnt net ipc uts cgroup time; do readlink /proc/self/ns/$ns; done; cat /proc/self/cgroup; echo $$";
    let out = berth.ok(&["exec", &c.id, "sh", "-c", script]);
    let lines: Vec<&str> = out.lines().collect();
    for (i, ns) in ["pid", "mnt", "net", "ipc", "uts", "cgroup", "time"]
        .iter()
        .enumerate()
    {
        let theirs = std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap();
        assert_eq!(lines[i], theirs.to_str().unwrap(), "{ns}");
    }
    // Inside the cgroup namespace, the container's own cgroup is /.
    assert!(
        lines[7..lines.len() - 1].iter().all(|l| l.ends_with(":/")),
        "{out}"
    );
    // A new pid in the container's pid namespace (not 1, the init's).
    assert_ne!(lines.last().unwrap(), &"1");
}

#[test]
fn exec_takes_user_cwd_env_groups_and_capabilities() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let out = berth.ok(&[
        "exec",
        "--user",
        "1000:1001",
        "-g",
        "10",
        "--cwd",
        "/tmp",
        "-e",
        "GREETING=hi",
        "-e",
        "PATH=/bin",
        "--cap",
        "CAP_NET_ADMIN",
        &c.id,
        "sh",
        "-c",
        "id -u; id -g; id -G; pwd; echo $GREETING; grep CapBnd /proc/self/status",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..5], ["1000", "1001", "1001 10", "/tmp", "hi"]);
    let bounding = u64::from_str_radix(lines[5].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_ne!(bounding & (1 << 12), 0, "CAP_NET_ADMIN was not added");
    assert_ne!(bounding & (1 << 5), 0, "the container's CAP_KILL was lost");
}

#[test]
fn exec_runs_a_process_json() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let process = bundle.path().join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "echo $FROM_FILE; pwd; grep NoNewPrivs /proc/self/status"],
            "env": ["PATH=/bin", "FROM_FILE=yes"],
            "cwd": "/etc",
            "user": {"uid": 0, "gid": 0},
            "noNewPrivileges": true
        }))
        .unwrap(),
    )
    .unwrap();
    let out = berth.ok(&["exec", "--process", process.to_str().unwrap(), &c.id]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["yes", "/etc", "NoNewPrivs:\t1"]
    );
    std::fs::write(
        &process,
        r#"{"args": ["true"], "cwd": "relative", "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    let err = berth.fails(&["exec", "--process", process.to_str().unwrap(), &c.id]);
    assert!(err.contains("process.cwd"), "{err}");
}

#[test]
fn exec_gets_the_containers_seccomp_filter() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let c = sleeping(&berth, &mut bundle);
    let out = berth.run(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; mkdir /tmp/x",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Seccomp:\t2"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{out:?}"
    );
}

#[test]
fn exec_into_a_user_namespace_container() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.user_namespace(400000, 400000);
    let c = sleeping(&berth, &mut bundle);
    let out = berth.ok(&["exec", &c.id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "400000", "65536"]
    );
}

#[test]
fn exec_detached_writes_the_pid_file_of_a_host_pid() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let pid_file = bundle.path().join("exec.pid");
    berth.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &c.id,
        "sleep",
        "30",
    ]);
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with("sleep"), "{cmdline}");
    let procs: Vec<i32> =
        serde_json::from_str(&berth.ok(&["ps", "--format", "json", &c.id])).unwrap();
    assert!(procs.contains(&pid));
}

#[test]
fn no_fd_of_berth_reaches_the_exec_process() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let out = berth.ok(&["exec", &c.id, "ls", "/proc/self/fd"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["0", "1", "2", "3"]);
}

#[test]
fn exec_into_a_stopped_or_paused_container_fails_clearly() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    berth.ok(&["pause", &c.id]);
    assert!(berth.fails(&["exec", &c.id, "true"]).contains("is paused"));
    berth.ok(&["resume", &c.id]);
    berth.ok(&["kill", &c.id, "KILL"]);
    berth.wait_status(&c.id, "stopped");
    let err = berth.fails(&["exec", &c.id, "true"]);
    assert!(err.contains("is stopped"), "{err}");
    assert!(berth
        .fails(&["exec", "missing", "true"])
        .contains("does not exist"));
}

#[test]
fn exec_of_a_missing_program_is_worded_like_runc() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let err = berth.fails(&["exec", &c.id, "no-such-program"]);
    assert!(
        err.contains("exec: \"no-such-program\": executable file not found in $PATH"),
        "{err}"
    );
}

#[test]
fn exec_into_a_sub_cgroup() {
    if !runs_here(
        std::path::Path::new("/sys/fs/cgroup/pids").is_dir(),
        "needs a cgroup v1 pids hierarchy",
    ) {
        return;
    }
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let sub = std::path::Path::new("/sys/fs/cgroup/pids")
        .join(&c.id)
        .join("sub");
    std::fs::create_dir(&sub).unwrap();
    let out = berth.run(&[
        "exec",
        "--cgroup",
        "pids:sub",
        &c.id,
        "sh",
        "-c",
        "grep pids /proc/self/cgroup",
    ]);
    let _ = berth.run(&["kill", "--all", &c.id, "KILL"]);
    berth.wait_status(&c.id, "stopped");
    std::fs::remove_dir(&sub).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .ends_with(":pids:/sub"),
        "{out:?}"
    );
}
