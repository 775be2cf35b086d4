//! OCI hooks: order, namespaces, the state on stdin, and failures.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

/// A hook that appends its stage, hostname and stdin to `log`.
fn logging_hook(stage: &str, log: &Path) -> Value {
    let script = format!("echo {stage} $(hostname) $(cat) >> {}", log.display());
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

#[test]
fn hooks_run_in_order_in_their_namespaces_with_the_state_on_stdin() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let shared = tempfile::tempdir().unwrap();
    let host_log = shared.path().join("log");
    // startContainer runs after the root switch: it writes through a bind.
    let inside_log = Path::new("/hooklog/log");
    bundle.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/hooklog", "type": "bind", "source": shared.path(), "options": ["rbind"]}));
        c["hostname"] = json!("in-container");
        c["annotations"] = json!({"org.example.key": "value"});
        c["hooks"] = json!({
            "prestart": [logging_hook("prestart", &host_log)],
            "createRuntime": [logging_hook("createRuntime", &host_log)],
            "createContainer": [logging_hook("createContainer", &host_log)],
            "startContainer": [logging_hook("startContainer", inside_log)],
            "poststart": [logging_hook("poststart", &host_log)],
            "poststop": [logging_hook("poststop", &host_log)],
        });
    });
    bundle.args(&["true"]);
    let c = Container::create(&berth, &bundle, &[]);
    let pid = berth.state(&c.id)["pid"].as_i64().unwrap();
    berth.ok(&["start", &c.id]);
    berth.wait_status(&c.id, "stopped");
    berth.ok(&["delete", &c.id]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let log = std::fs::read_to_string(&host_log).unwrap();
    let lines: Vec<(&str, &str, Value)> = log
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let stage = parts.next().unwrap();
            let hostname = parts.next().unwrap();
            (
                stage,
                hostname,
                serde_json::from_str(parts.next().unwrap()).unwrap(),
            )
        })
        .collect();
    let stages: Vec<&str> = lines.iter().map(|l| l.0).collect();
    assert_eq!(
        stages,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    let want = [
        ("prestart", host.trim(), "created"),
        ("createRuntime", host.trim(), "created"),
        ("createContainer", "in-container", "created"),
        ("startContainer", "in-container", "created"),
        ("poststart", host.trim(), "running"),
        ("poststop", host.trim(), "stopped"),
    ];
    for ((stage, hostname, state), (want_stage, want_host, want_status)) in lines.iter().zip(want) {
        assert_eq!(*stage, want_stage);
        assert_eq!(
            *hostname, want_host,
            "{stage} ran in the wrong uts namespace"
        );
        assert_eq!(state["status"], want_status, "{stage}");
        assert_eq!(state["id"], c.id.as_str());
        assert_eq!(state["pid"], pid, "{stage}");
        assert_eq!(state["bundle"], bundle.path().to_str().unwrap());
        assert_eq!(state["annotations"]["org.example.key"], "value");
    }
}

#[test]
fn a_failing_create_time_hook_fails_create_and_leaves_nothing() {
    for stage in ["prestart", "createRuntime", "createContainer"] {
        let berth = Berth::new();
        let mut bundle = Bundle::new();
        bundle.edit(|c| c["hooks"] = json!({stage: [{"path": "/bin/false"}]}));
        let id = unique_id("hookfail");
        let err = berth.fails(&["create", "-b", bundle.path().to_str().unwrap(), &id]);
        assert!(err.contains(&format!("hooks.{stage}[0]")), "{err}");
        assert_nothing_left(&berth, &id, &bundle);
    }
}

#[test]
fn a_hook_past_its_timeout_fails_create() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]}));
    let id = unique_id("hooktime");
    let err = berth.fails(&["create", "-b", bundle.path().to_str().unwrap(), &id]);
    assert!(err.contains("timed out after 1s"), "{err}");
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn failing_poststart_and_poststop_hooks_are_warnings_and_the_rest_still_run() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    bundle.edit(|c| {
        c["hooks"] = json!({
            "poststart": [{"path": "/bin/false"}, logging_hook("poststart", &log)],
            "poststop": [{"path": "/bin/false"}, logging_hook("poststop", &log)],
        });
    });
    bundle.args(&["true"]);
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    berth.wait_status(&c.id, "stopped");
    berth.ok(&["delete", &c.id]);
    let stages: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(stages, ["poststart", "poststop"]);
}

#[test]
fn socket_activation_hands_on_the_listen_fds() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.sh("echo $LISTEN_FDS $LISTEN_PID; cat <&3; ls /proc/self/fd | wc -l");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("socket-stand-in");
    std::fs::write(&data, "activated\n").unwrap();
    let id = unique_id("listen");
    // LISTEN_PID must be berth's own pid: the shell execs berth in place.
    let script = format!(
        "LISTEN_FDS=1 LISTEN_PID=$$ exec {BERTH} --root {} run -b {} {id} 3<{}",
        berth.root().display(),
        bundle.path().display(),
        data.display()
    );
    let out = output_via_files(std::process::Command::new("sh").args(["-c", &script]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["1 1", "activated", "5"],
        "{out:?}"
    );
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn poststart_hooks_run_once_the_program_has_been_executed() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("comm");
    // The hook reads the init's pid from the state and looks at what runs.
    let script = format!(
        "pid=$(sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/'); cat /proc/$pid/comm > {}",
        log.display()
    );
    bundle.edit(|c| {
        c["hooks"] = json!({"poststart": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]})
    });
    bundle.args(&["sleep", "2"]);
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "sleep");
}

/// With noNewPrivileges the seccomp filter is loaded as late as it can be,
/// but before the startContainer hooks, as runc loads it: a hook runs under
/// the filter the program will, so what the filter forbids it cannot do.
#[test]
fn start_container_hooks_run_under_the_seccomp_filter_with_no_new_privileges() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["process"]["noNewPrivileges"] = json!(true);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        });
        c["hooks"] = json!({"startContainer": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", "mkdir /made-by-hook 2>/dev/null; echo $? > /hook-rc"]
        }]});
    });
    bundle.sh("mkdir /made-by-process 2>/dev/null; echo $?");
    let out = run_ok(&bundle);
    assert_eq!(out, "1\n", "the process itself ran without the filter");
    let rootfs = bundle.rootfs();
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hook-rc")).unwrap(),
        "1\n",
        "the startContainer hook ran before the filter was loaded"
    );
    assert!(!rootfs.join("made-by-hook").exists());
}
