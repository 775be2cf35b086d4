//! The lifecycle: create, start, state, kill, delete, run, list.

mod common;

use common::*;
use serde_json::json;

#[test]
fn create_start_and_delete_go_through_every_status() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let pid_file = bundle.path().join("init.pid");
    let c = Container::create(&berth, &bundle, &["--pid-file", pid_file.to_str().unwrap()]);
    let state = berth.state(&c.id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], c.id.as_str());
    assert_eq!(state["bundle"], bundle.path().to_str().unwrap());
    assert_eq!(state["ociVersion"], "1.3.0");
    assert!(state["created"].as_str().unwrap().ends_with('Z'));
    let pid = state["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    // The user's program has not run yet: the init is berth, waiting.
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!cmdline.starts_with("sleep"), "{cmdline}");

    berth.ok(&["start", &c.id]);
    assert_eq!(berth.status(&c.id), "running");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with("sleep"), "{cmdline}");

    berth.ok(&["kill", &c.id, "KILL"]);
    berth.wait_status(&c.id, "stopped");
    assert_eq!(berth.state(&c.id)["pid"], 0);
    berth.ok(&["delete", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
    assert!(berth.fails(&["state", &c.id]).contains("does not exist"));
}

#[test]
fn start_runs_the_program_exactly_once() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["root"]["readonly"] = json!(false));
    bundle.sh("echo ran >> /count");
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    berth.wait_status(&c.id, "stopped");
    let err = berth.fails(&["start", &c.id]);
    assert!(err.contains("is stopped"), "{err}");
    assert_eq!(
        std::fs::read_to_string(bundle.rootfs().join("count")).unwrap(),
        "ran\n"
    );
}

#[test]
fn delete_refuses_a_live_container_without_force() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let c = Container::create(&berth, &bundle, &[]);
    assert!(berth.fails(&["delete", &c.id]).contains("is created"));
    berth.ok(&["start", &c.id]);
    assert!(berth.fails(&["delete", &c.id]).contains("is running"));
    assert_eq!(berth.status(&c.id), "running");
    berth.ok(&["delete", "--force", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

#[test]
fn delete_force_of_a_missing_container_succeeds_and_plain_delete_fails() {
    let berth = Berth::new();
    berth.ok(&["delete", "--force", "never-created"]);
    assert!(berth
        .fails(&["delete", "never-created"])
        .contains("does not exist"));
}

#[test]
fn kill_takes_names_with_and_without_sig_and_numbers() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    // The shell traps USR1 and TERM and says which arrived.
    bundle.edit(|c| c["root"]["readonly"] = json!(false));
    bundle.sh("trap 'echo usr1 >> /log' USR1; trap 'echo term >> /log; exit 0' TERM; echo up > /up; while true; do sleep 0.05; done");
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let up = bundle.rootfs().join("up");
    for _ in 0..200 {
        if up.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    berth.ok(&["kill", &c.id, "SIGUSR1"]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    berth.ok(&["kill", &c.id, "10"]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    berth.ok(&["kill", &c.id]);
    berth.wait_status(&c.id, "stopped");
    assert_eq!(
        std::fs::read_to_string(bundle.rootfs().join("log")).unwrap(),
        "usr1\nusr1\nterm\n"
    );
    let err = berth.fails(&["kill", &c.id, "KILL"]);
    assert!(err.contains("is stopped"), "{err}");
    assert!(berth
        .fails(&["kill", &c.id, "NOTASIGNAL"])
        .contains("invalid signal"));
}

#[test]
fn kill_all_reaches_every_process_of_the_container() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.sh("sleep 30 & sleep 30 & wait");
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    berth.ok(&["kill", "--all", &c.id, "KILL"]);
    berth.wait_status(&c.id, "stopped");
    berth.ok(&["delete", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

/// containerd's runc shim knows a finished or missing container only by
/// runc's words, and sends `kill --all ID 9` after every stop.
#[test]
fn a_stopped_container_takes_kill_all_and_refuses_kill_in_runcs_words() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["true"]);
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    berth.wait_status(&c.id, "stopped");
    let err = berth.fails(&["kill", &c.id, "9"]);
    assert!(err.contains("container not running"), "{err}");
    berth.ok(&["kill", "--all", &c.id, "9"]);
    berth.ok(&["kill", "--all", &c.id, "TERM"]);
    for args in [["kill", "nope", "9"], ["kill", "--all", "nope"]] {
        let err = berth.fails(&args);
        assert!(err.contains("does not exist"), "{args:?}: {err}");
    }
    berth.ok(&["delete", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

#[test]
fn kill_all_reaches_what_a_stopped_container_left_in_its_cgroup() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    // Without a pid namespace of its own, the init's child outlives it.
    bundle.edit(|c| {
        c["root"]["readonly"] = json!(false);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    bundle.sh("sleep 300 & echo $! > /left.pid");
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    berth.wait_status(&c.id, "stopped");
    let pid_file = bundle.rootfs().join("left.pid");
    let left = std::fs::read_to_string(&pid_file).unwrap();
    let left: i32 = left.trim().parse().unwrap();
    let running = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    assert!(running(left), "the init's child {left} is gone already");
    berth.ok(&["kill", "--all", &c.id, "KILL"]);
    for _ in 0..200 {
        if !running(left) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!running(left), "kill --all left pid {left} running");
    berth.ok(&["delete", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

#[test]
fn run_exits_with_the_containers_status() {
    let mut bundle = Bundle::new();
    bundle.sh("exit 3");
    assert_eq!(run(&bundle).code, 3);
    bundle.args(&["true"]);
    assert_eq!(run(&bundle).code, 0);
}

#[test]
fn run_exits_with_128_plus_the_signal_that_killed_the_container() {
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let berth = Berth::new();
    let id = unique_id("sig");
    let runner =
        Background::spawn(&mut berth.cmd(&["run", "-b", bundle.path().to_str().unwrap(), &id]));
    berth.wait_status(&id, "running");
    berth.ok(&["kill", &id, "KILL"]);
    assert_eq!(runner.wait().code(), Some(128 + 9));
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn run_passes_stdio_straight_through() {
    let mut bundle = Bundle::new();
    bundle.sh("echo out; echo err >&2; read line; echo got $line");
    let berth = Berth::new();
    let id = unique_id("stdio");
    let mut child = berth
        .cmd(&["run", "-b", bundle.path().to_str().unwrap(), &id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\ngot hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn run_forwards_signals_to_the_container() {
    let mut bundle = Bundle::new();
    bundle.sh("trap 'exit 42' TERM; while true; do sleep 0.05; done");
    let berth = Berth::new();
    let id = unique_id("fwd");
    let runner =
        Background::spawn(&mut berth.cmd(&["run", "-b", bundle.path().to_str().unwrap(), &id]));
    berth.wait_status(&id, "running");
    std::thread::sleep(std::time::Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(runner.pid(), libc::SIGTERM) };
    assert_eq!(runner.wait().code(), Some(42));
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn run_detached_leaves_a_running_container() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let id = unique_id("detach");
    berth.ok(&["run", "-d", "-b", bundle.path().to_str().unwrap(), &id]);
    let _guard = Container {
        berth: &berth,
        id: id.clone(),
    };
    assert_eq!(berth.status(&id), "running");
}

#[test]
fn list_shows_containers_in_table_json_and_quiet_form() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let a = Container::create(&berth, &bundle, &[]);
    let b = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &b.id]);
    let quiet = berth.ok(&["list", "-q"]);
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort();
    let mut want = vec![a.id.as_str(), b.id.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let json: serde_json::Value =
        serde_json::from_str(&berth.ok(&["list", "--format", "json"])).unwrap();
    let statuses: Vec<_> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(statuses.contains(&(a.id.clone(), "created".into())));
    assert!(statuses.contains(&(b.id.clone(), "running".into())));
    let table = berth.ok(&["list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&a.id) && table.contains("created"));
}

#[test]
fn of_concurrent_creates_of_one_id_exactly_one_wins() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let id = unique_id("race");
    let path = bundle.path().to_str().unwrap().to_string();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..6)
            .map(|_| s.spawn(|| berth.run(&["create", "-b", &path, &id])))
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let winners = outcomes.iter().filter(|o| o.status.success()).count();
    assert_eq!(winners, 1);
    for loser in outcomes.iter().filter(|o| !o.status.success()) {
        assert!(String::from_utf8_lossy(&loser.stderr).contains("already exists"));
    }
    assert_eq!(berth.status(&id), "created");
    berth.ok(&["delete", "--force", &id]);
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn a_reused_pid_never_looks_like_the_container() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["true"]);
    let c = Container::create(&berth, &bundle, &[]);
    // Point the state at a live process that is not the init: this test
    // process, with the init's recorded start time.
    let state_path = berth.root().join(&c.id).join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let real_pid = state["pid"].clone();
    state["pid"] = json!(std::process::id());
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    assert_eq!(berth.status(&c.id), "stopped");
    state["pid"] = real_pid;
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    assert_eq!(berth.status(&c.id), "created");
}

#[test]
fn create_without_a_process_then_start_fails_and_stops_it() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c.as_object_mut().unwrap().remove("process");
    });
    let c = Container::create(&berth, &bundle, &[]);
    assert_eq!(berth.status(&c.id), "created");
    assert!(berth.fails(&["start", &c.id]).contains("no process"));
    berth.wait_status(&c.id, "stopped");
    berth.ok(&["delete", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

#[test]
fn run_keep_leaves_a_stopped_container_and_its_cgroup_until_delete() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["true"]);
    let id = unique_id("keep");
    let out = berth.run(&["run", "--keep", "-b", bundle.path().to_str().unwrap(), &id]);
    let _guard = Container {
        berth: &berth,
        id: id.clone(),
    };
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(berth.status(&id), "stopped");
    // Under the systemd driver the scope goes with its last process:
    // systemd removes it, not delete.
    if !systemd_driver() {
        assert_ne!(cgroups_named(&id), Vec::<std::path::PathBuf>::new());
    }
    // ps of a stopped container: the header, nothing else, success.
    let table = berth.ok(&["ps", &id]);
    assert_eq!(table.lines().count(), 1, "{table}");
    assert!(table.contains("PID"), "{table}");
    assert_eq!(berth.ok(&["ps", "-f", "json", &id]).trim(), "[]");
    berth.ok(&["delete", &id]);
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn kill_with_signal_0_only_checks_that_the_init_exists() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    berth.ok(&["kill", &c.id, "0"]);
    berth.ok(&["kill", "--all", &c.id, "0"]);
    assert_eq!(berth.status(&c.id), "running");
}

#[test]
fn create_sends_the_inits_pidfd_to_the_pidfd_socket() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pidfd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let id = unique_id("pidfd");
    let (pidfd, kind) = ok_receiving_fd(
        &berth,
        &listener,
        &[
            "create",
            "--pidfd-socket",
            socket.to_str().unwrap(),
            "-b",
            bundle.path().to_str().unwrap(),
            &id,
        ],
    );
    let _guard = Container {
        berth: &berth,
        id: id.clone(),
    };
    assert_eq!(kind, "standard");
    assert_eq!(i64::from(pid_of_pidfd(&pidfd)), berth.state(&id)["pid"]);
    drop(_guard);
    // A socket nobody listens on fails create before anything is made.
    let id = unique_id("pidfd");
    let err = berth.fails(&[
        "run",
        "--pidfd-socket",
        "/nonexistent.sock",
        "-b",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    assert!(err.contains("--pidfd-socket /nonexistent.sock"), "{err}");
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn the_init_does_not_inherit_berths_cpu_affinity() {
    if !runs_here(online_cpus() != "0", "needs more than one CPU") {
        return;
    }
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["grep", "Cpus_allowed_list", "/proc/self/status"]);
    let id = unique_id("affinity");
    let mut run = berth.cmd(&["run", "-b", bundle.path().to_str().unwrap(), &id]);
    let out = output_via_files(pin_to_cpu0(&mut run));
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        line.split_whitespace().nth(1),
        Some(online_cpus().as_str()),
        "{line}"
    );
    assert_nothing_left(&berth, &id, &bundle);
}

/// A cgroup made by a test (in every v1 hierarchy, or on cgroup2), thawed
/// and removed even when the test fails.
struct OwnCgroup {
    name: String,
    freezer: std::path::PathBuf,
}

impl OwnCgroup {
    fn frozen(name: &str) -> OwnCgroup {
        let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let (freezer, file, value) = if unified {
            (
                std::path::Path::new("/sys/fs/cgroup").join(name),
                "cgroup.freeze",
                "1",
            )
        } else {
            (
                std::path::Path::new("/sys/fs/cgroup/freezer").join(name),
                "freezer.state",
                "FROZEN",
            )
        };
        std::fs::create_dir(&freezer).unwrap();
        let cgroup = OwnCgroup {
            name: name.to_string(),
            freezer,
        };
        std::fs::write(cgroup.freezer.join(file), value).unwrap();
        cgroup
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.freezer.join("cgroup.freeze"), "0");
        let _ = std::fs::write(self.freezer.join("freezer.state"), "THAWED");
        for dir in cgroups_named(&self.name) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn create_refuses_a_frozen_cgroup_at_once() {
    if !runs_here(
        !systemd_driver(),
        "names a cgroupfs path; a systemd unit's cgroup is systemd's to make",
    ) {
        return;
    }
    let name = unique_id("frozen");
    let cgroup = OwnCgroup::frozen(&name);
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("/{name}")));
    let id = unique_id("frozen");
    let started = std::time::Instant::now();
    let err = berth.fails(&["create", "-b", bundle.path().to_str().unwrap(), &id]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        err.contains("container's cgroup unexpectedly frozen"),
        "{err}"
    );
    assert!(err.starts_with("berth: error: "), "{err}");
    assert!(!berth.root().join(&id).exists());
    // The frozen cgroup is someone else's: it stays; what create made goes.
    assert_eq!(cgroups_named(&name), vec![cgroup.freezer.clone()]);
}

#[test]
fn create_refuses_a_cgroup_that_holds_processes() {
    if !runs_here(
        !systemd_driver(),
        "names a cgroupfs path; a systemd unit's cgroup is systemd's to make",
    ) {
        return;
    }
    let name = unique_id("busy");
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    bundle.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("/{name}")));
    let first = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &first.id]);
    let id = unique_id("busy");
    let err = berth.fails(&["create", "-b", bundle.path().to_str().unwrap(), &id]);
    assert!(
        err.contains("container's cgroup is not empty: 1 process(es) found"),
        "{err}"
    );
    assert!(!berth.root().join(&id).exists());
    // The first container keeps its cgroup.
    let pids: Vec<i32> = serde_json::from_str(&berth.ok(&["ps", "-f", "json", &first.id])).unwrap();
    assert_eq!(pids.len(), 1);
    berth.ok(&["delete", "--force", &first.id]);
    assert_eq!(cgroups_named(&name), Vec::<std::path::PathBuf>::new());
}

/// `create` killed with SIGKILL at any moment (here at 20 points spread
/// over the time a whole create takes on this machine) leaves nothing that
/// `delete --force` of its id cannot remove: the cgroup is noted in the
/// state dir before it is made.
#[test]
fn a_create_killed_midway_is_removed_by_delete_force() {
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "60"]);
    let whole = {
        let berth = Berth::new();
        let started = std::time::Instant::now();
        let c = Container::create(&berth, &bundle, &[]);
        let took = started.elapsed();
        drop(c);
        took
    };
    let mut made_cgroup = false;
    // Past the measured time too: one create can take longer than another
    // (an emulated guest varies by 2x), and a late kill still checks delete.
    for delay in (0..30).map(|i| whole * i / 20) {
        let berth = Berth::new();
        let id = unique_id("killed");
        let mut create = berth.cmd(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
        create
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = create.spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        made_cgroup |= !cgroups_named(&id).is_empty();
        berth.ok(&["delete", "--force", &id]);
        // The init of a create killed before it was placed in the cgroup
        // goes away by itself once it finds berth gone.
        for _ in 0..200 {
            if processes_rooted_in(&bundle.rootfs()).is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_nothing_left(&berth, &id, &bundle);
    }
    assert!(
        made_cgroup,
        "no create was killed after it made its cgroup: the test checked nothing"
    );
}
