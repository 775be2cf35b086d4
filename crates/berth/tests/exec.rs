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
    bundle
        .cgroup_namespace()
        .add_namespace(json!({"type": "time"}));
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

/// Runs `berth` and asserts it failed with status `code`; returns stderr.
fn fails_with(berth: &Berth, code: i32, args: &[&str]) -> String {
    let out = berth.run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "berth {args:?}: {err}");
    err
}

#[test]
fn exec_into_a_stopped_or_paused_container_fails_clearly() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    berth.ok(&["pause", &c.id]);
    let err = fails_with(&berth, 255, &["exec", &c.id, "true"]);
    assert!(
        err.contains("cannot exec in a paused container (use --ignore-paused to override)"),
        "{err}"
    );
    berth.ok(&["resume", &c.id]);
    berth.ok(&["kill", &c.id, "KILL"]);
    berth.wait_status(&c.id, "stopped");
    let err = fails_with(&berth, 255, &["exec", &c.id, "true"]);
    assert!(err.contains("cannot exec in a stopped container"), "{err}");
    let err = fails_with(&berth, 255, &["exec", "missing", "true"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn exec_failures_exit_255_and_the_process_status_passes_through() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let out = berth.run(&["exec", &c.id, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let err = fails_with(&berth, 255, &["exec", &c.id, "no-such-program"]);
    assert!(err.starts_with("berth: error: "), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("no-such-dir/pid");
    let err = fails_with(
        &berth,
        255,
        &[
            "exec",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &c.id,
            "true",
        ],
    );
    assert!(err.contains("--pid-file"), "{err}");
    let err = fails_with(
        &berth,
        255,
        &["exec", "--preserve-fds", "40", &c.id, "true"],
    );
    assert!(err.contains("--preserve-fds 40"), "{err}");
    // The failed execs left no process behind: only the init is there.
    let pids: Vec<i32> = serde_json::from_str(&berth.ok(&["ps", "-f", "json", &c.id])).unwrap();
    assert_eq!(pids.len(), 1, "{pids:?}");
}

#[test]
fn exec_ignore_paused_runs_once_the_container_is_resumed() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    berth.ok(&["pause", &c.id]);
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut exec = berth.cmd(&["exec", "--ignore-paused", &c.id, "echo", "ok"]);
    exec.stdout(out.reopen().unwrap());
    let mut waiting = Background::spawn(&mut exec);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let child = waiting.0.as_mut().unwrap();
    let early = child.try_wait().unwrap();
    // Resumed before asserting, so that a failure leaves nothing frozen.
    berth.ok(&["resume", &c.id]);
    assert_eq!(early, None, "exec ran in a paused container");
    assert!(waiting.wait().success());
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "ok\n");
}

#[test]
fn exec_process_json_without_user_runs_as_root() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let c = sleeping(&berth, &mut bundle);
    let process = bundle.path().join("process.json");
    std::fs::write(&process, r#"{"args": ["id", "-u"], "cwd": "/"}"#).unwrap();
    let out = berth.ok(&["exec", "--process", process.to_str().unwrap(), &c.id]);
    assert_eq!(out, "0\n");
}

#[test]
fn exec_sends_its_pidfd_to_the_pidfd_socket() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pidfd.sock");
    let pid_file = dir.path().join("pid");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let (pidfd, kind) = ok_receiving_fd(
        &berth,
        &listener,
        &[
            "exec",
            "-d",
            "--pidfd-socket",
            socket.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            &c.id,
            "sleep",
            "10",
        ],
    );
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(kind, "setns");
    assert_eq!(pid_of_pidfd(&pidfd), pid);
    let err = fails_with(
        &berth,
        255,
        &["exec", "--pidfd-socket", "/nonexistent.sock", &c.id, "true"],
    );
    assert!(err.contains("--pidfd-socket /nonexistent.sock"), "{err}");
}

#[test]
fn exec_does_not_inherit_berths_cpu_affinity() {
    if !runs_here(online_cpus() != "0", "needs more than one CPU") {
        return;
    }
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let mut exec = berth.cmd(&[
        "exec",
        &c.id,
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]);
    let out = output_via_files(pin_to_cpu0(&mut exec));
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        line.split_whitespace().nth(1),
        Some(online_cpus().as_str()),
        "{line}"
    );
    // A configured affinity still applies; --debug shows the initial
    // mask, as youki's tests read it.
    let process = bundle.path().join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&json!({
            "args": ["grep", "Cpus_allowed_list", "/proc/self/status"],
            "cwd": "/",
            "execCPUAffinity": {"initial": "0,1", "final": "1"}
        }))
        .unwrap(),
    )
    .unwrap();
    let mut exec = berth.cmd(&["--debug", "exec", "-p", process.to_str().unwrap(), &c.id]);
    let out = output_via_files(pin_to_cpu0(&mut exec));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Cpus_allowed_list:\t1\n"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("affinity: 0x3"), "{stderr}");
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

/// Sub-cgroups made by a test, removed (deepest first) even when it fails.
struct SubCgroups(Vec<std::path::PathBuf>);

impl Drop for SubCgroups {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The v1 hierarchy (its mount point) that holds `controller`.
fn v1_hierarchy(controller: &str) -> Option<std::path::PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .ok()?
        .flatten()
        .find(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.split(',').any(|c| c == controller))
        })
        .map(|e| e.path())
}

#[test]
fn exec_into_sub_cgroups_of_named_controllers() {
    let hierarchies: Option<Vec<_>> = ["memory", "cpu", "cpuacct"]
        .iter()
        .map(|c| v1_hierarchy(c))
        .collect();
    if !runs_here(
        hierarchies.is_some(),
        "needs cgroup v1 memory, cpu and cpuacct hierarchies",
    ) {
        return;
    }
    let hierarchies = hierarchies.unwrap();
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let mut dirs = vec![hierarchies[0].join(&c.id).join("submem")];
    for h in &hierarchies[1..] {
        let dir = h.join(&c.id).join("subcpu");
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let subs = SubCgroups(dirs);
    for dir in &subs.0 {
        std::fs::create_dir(dir).unwrap();
    }
    let out = berth.ok(&[
        "exec",
        "--cgroup",
        "memory:submem",
        "--cgroup",
        "cpu,cpuacct:subcpu",
        &c.id,
        "cat",
        "/proc/self/cgroup",
    ]);
    assert!(line_ends(&out, "memory", "/submem"), "{out}");
    assert!(line_ends(&out, "cpu", "/subcpu"), "{out}");
    assert!(line_ends(&out, "cpuacct", "/subcpu"), "{out}");
    assert!(!line_ends(&out, "pids", "/submem"), "{out}");
    // `/` is the container's cgroup itself, in every hierarchy.
    let out = berth.ok(&["exec", "--cgroup", "/", &c.id, "cat", "/proc/self/cgroup"]);
    assert!(!line_ends(&out, "memory", "/submem"), "{out}");
    for (arg, want) in [
        ("whaaat:/", "unknown controller whaaat"),
        ("..", "bad sub cgroup path"),
        ("nonexistent", " adding pid "),
        ("memory:nonexistent", "No such file or directory"),
    ] {
        let err = fails_with(&berth, 255, &["exec", "--cgroup", arg, &c.id, "true"]);
        assert!(err.contains(want), "--cgroup {arg}: {err}");
    }
    let err = fails_with(
        &berth,
        255,
        &["exec", "--cgroup", "a", "--cgroup", "b", &c.id, "true"],
    );
    assert!(err.contains("must be the only --cgroup"), "{err}");
    berth.ok(&["kill", &c.id, "KILL"]);
    berth.wait_status(&c.id, "stopped");
    drop(subs);
}

#[test]
fn exec_into_a_sub_cgroup_on_cgroup_v2() {
    if !runs_here(host_is_cgroup_v2(), "needs a pure cgroup v2 host") {
        return;
    }
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let c = sleeping(&berth, &mut bundle);
    let pid = berth.state(&c.id)["pid"].as_i64().unwrap();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = own.trim().strip_prefix("0::/").expect("a v2 cgroup line");
    // The one hierarchy's sub-cgroup is named alone, without controllers.
    let subs = SubCgroups(vec![std::path::Path::new("/sys/fs/cgroup")
        .join(path)
        .join("sub")]);
    std::fs::create_dir(&subs.0[0]).unwrap();
    let cgroup_of_exec = |arg: &str| {
        berth.ok(&[
            "exec",
            "--cgroup",
            arg,
            &c.id,
            "sh",
            "-c",
            "cat /proc/self/cgroup",
        ])
    };
    assert!(cgroup_of_exec("sub").trim().ends_with("/sub"));
    assert!(!cgroup_of_exec("/").trim().ends_with("/sub"));
    berth.ok(&["kill", &c.id, "KILL"]);
    berth.wait_status(&c.id, "stopped");
    drop(subs);
}

/// Whether the /proc/<pid>/cgroup line of `controller` ends with `suffix`.
fn line_ends(cgroup: &str, controller: &str, suffix: &str) -> bool {
    cgroup.lines().any(|l| {
        l.split(':')
            .nth(1)
            .is_some_and(|cs| cs.split(',').any(|c| c == controller))
            && l.ends_with(suffix)
    })
}
