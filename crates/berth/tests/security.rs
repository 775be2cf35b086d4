//! Attacks from inside a container, one per class of runtime CVE, and the
//! rest of the security features: seccomp listeners, LSM refusal.

mod common;

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use common::*;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use serde_json::{json, Value};

/// A seccomp agent: takes the listener from berth, then answers every
/// notification with EROFS. Returns what berth sent with the listener.
fn seccomp_agent(listener: UnixListener) -> std::thread::JoinHandle<Value> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut buf = vec![0u8; 64 * 1024];
        let n = rustix::net::recvmsg(
            &stream,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::empty(),
        )
        .unwrap()
        .bytes;
        let mut fd: Option<OwnedFd> = None;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                fd = fds.next();
            }
        }
        let fd = fd.expect("berth sent the listener");
        // Until the filter has no process left: the listener then polls as
        // hung up (a blocked receive would wait on forever on kernel 6.1).
        loop {
            let mut pollfd = [rustix::event::PollFd::new(
                &fd,
                rustix::event::PollFlags::IN,
            )];
            if rustix::event::poll(&mut pollfd, None).is_err()
                || !pollfd[0].revents().contains(rustix::event::PollFlags::IN)
            {
                break;
            }
            let Ok(req) = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()) else {
                break;
            };
            let resp = libseccomp::ScmpNotifResp::new_error(
                req.id,
                -libc::EROFS,
                libseccomp::ScmpNotifRespFlags::empty(),
            );
            let _ = resp.respond(fd.as_raw_fd());
        }
        serde_json::from_slice(&buf[..n]).unwrap()
    })
}

#[test]
fn seccomp_notify_hands_the_listener_to_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let agent = seccomp_agent(UnixListener::bind(&socket).unwrap());
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": socket,
            "listenerMetadata": "agent-metadata",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    bundle.sh("mkdir /tmp/x 2>&1; echo rc=$?");
    let c = Container::create(&berth, &bundle, &[]);
    let pid = berth.state(&c.id)["pid"].clone();
    let log = bundle.path().join("out");
    berth.ok(&["start", &c.id]);
    berth.wait_status(&c.id, "stopped");
    let _ = log;
    let sent = agent.join().unwrap();
    assert_eq!(sent["fds"], json!(["seccompFd"]));
    assert_eq!(sent["pid"], pid);
    assert_eq!(sent["metadata"], "agent-metadata");
    assert_eq!(sent["state"]["id"], c.id.as_str());
    assert_eq!(sent["state"]["status"], "creating");
}

#[test]
fn seccomp_notify_answers_reach_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let agent = seccomp_agent(UnixListener::bind(&socket).unwrap());
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["process"]["noNewPrivileges"] = json!(true);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": socket,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    bundle.sh("mkdir /tmp/x 2>&1; echo rc=$?");
    let out = run_ok(&bundle);
    assert!(
        out.contains("Read-only file system") && out.contains("rc=1"),
        "{out}"
    );
    agent.join().unwrap();
}

/// CVE-2024-21626: a descriptor of a host directory leaked into berth, and
/// process.cwd pointing through it.
#[test]
fn a_leaked_fd_cannot_become_the_cwd() {
    let leaked = std::fs::File::open("/").unwrap();
    let fd = leaked.as_raw_fd();
    // SAFETY: clearing close-on-exec of our own descriptor.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}")));
    bundle.sh("ls");
    let ran = run(&bundle);
    assert_ne!(
        ran.code, 0,
        "the container ran with a host cwd: {}",
        ran.stdout
    );
    assert!(ran.stderr.contains("process.cwd"), "{}", ran.stderr);

    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let err = berth.fails(&["exec", "--cwd", &format!("/proc/self/fd/{fd}"), &c.id, "ls"]);
    assert!(err.contains("process.cwd"), "{err}");
}

/// CVE-2019-5736: until start, the container's pid 1 is a copy of berth; a
/// process exec'd into the container must not reach berth's binary
/// through /proc/1/exe.
#[test]
fn berth_cannot_be_reached_through_proc_exe() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["true"]);
    let c = Container::create(&berth, &bundle, &[]);
    let before = std::fs::read(BERTH).unwrap();
    let out = berth.run(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "readlink /proc/1/exe; cat /proc/1/exe > /dev/null; echo rc=$?",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains("berth"), "{stdout}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(stdout.contains("rc=1"), "{stdout}");
    assert_eq!(std::fs::read(BERTH).unwrap(), before);
}

/// CVE-2021-30465: a mount destination swapped between a directory and a
/// symlink to the host while containers are created.
#[test]
fn a_racing_symlink_swap_never_lands_a_mount_on_the_host() {
    let marker = format!("berth-race-{}", std::process::id());
    let host_target = Path::new("/tmp").join(&marker);
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/data/mnt", "type": "tmpfs", "source": "tmpfs"}));
    });
    bundle.args(&["true"]);
    let data = bundle.rootfs().join("data");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_dir_all(&data);
                let _ = std::os::unix::fs::symlink("/tmp", &data);
                let _ = std::fs::remove_file(&data);
                let _ = std::fs::create_dir(&data);
            }
        });
        for _ in 0..20 {
            let berth = Berth::new();
            let id = unique_id("race");
            let _ = berth.run(&["run", "-b", bundle.path().to_str().unwrap(), &id]);
            let _ = berth.run(&["delete", "--force", &id]);
            assert!(!host_target.exists(), "a mount point was made on the host");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(mounts_under(Path::new("/tmp"))
        .iter()
        .all(|m| !m.contains("/mnt")));
}

/// CVE-2025-31133: /dev/null of the image is a symlink to a file the
/// attacker wants bound over a masked path (or written through). berth
/// masks with the host's own, checked /dev/null.
#[test]
fn masking_never_uses_the_images_dev_null() {
    let mut bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    std::fs::write(rootfs.join("secret"), "not for /proc/keys\n").unwrap();
    std::os::unix::fs::symlink("/secret", rootfs.join("dev/null")).unwrap();
    // No /dev tmpfs: the image's /dev is used as it is.
    bundle.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev");
    });
    bundle.sh("cat /proc/keys; echo end");
    let out = run_ok(&bundle);
    assert_eq!(out, "end\n");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("secret")).unwrap(),
        "not for /proc/keys\n"
    );
}

/// CVE-2025-52565: /dev/console of the image is a symlink; binding the
/// pty over it must not follow it.
#[test]
fn the_console_bind_never_follows_the_images_dev_console() {
    let mut bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    std::fs::write(rootfs.join("target"), "untouched\n").unwrap();
    std::os::unix::fs::symlink("/target", rootfs.join("dev/console")).unwrap();
    bundle.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev");
        c["process"]["terminal"] = json!(true);
    });
    bundle.sh(
        "grep -c ' /target ' /proc/self/mountinfo; test -L /dev/console && echo link || echo plain",
    );
    let berth = Berth::new();
    let id = unique_id("console");
    let command = format!(
        "{BERTH} --root {} run -b {} {id}",
        berth.root().display(),
        bundle.path().display()
    );
    let out = output_via_files(std::process::Command::new("script").args([
        "-qec",
        &command,
        "/dev/null",
    ]));
    // The pty may or may not turn \n into \r\n (ONLCR), and script(1)
    // may pass a NUL along, raw or echoed as "^@": only the lines count.
    let text: String = String::from_utf8_lossy(&out.stdout)
        .replace("^@", "")
        .chars()
        .filter(|c| !matches!(c, '\r' | '\0'))
        .collect();
    assert!(text.contains("0\nplain"), "{text:?}");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("target")).unwrap(),
        "untouched\n"
    );
    assert_nothing_left(&berth, &id, &bundle);
}

/// CVE-2019-16884 and kin: /proc in the container is not a procfs (here the
/// image's own /proc directory, with files of the image in it, as no spec
/// mount may stand in for procfs); sysctl and oom_score_adj must still
/// reach the kernel, not files of the image.
#[test]
fn proc_writes_go_to_the_real_procfs() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    let fake = bundle.rootfs().join("proc/sys/net/ipv4/ip_forward");
    std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
    std::fs::write(&fake, "fake\n").unwrap();
    bundle.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/proc");
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["process"]["oomScoreAdj"] = json!(321);
    });
    bundle.args(&["sleep", "30"]);
    let c = Container::create(&berth, &bundle, &[]);
    let pid = berth.state(&c.id)["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .unwrap()
            .trim(),
        "321"
    );
    let inside_net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(inside_net, std::fs::read_link("/proc/self/ns/net").unwrap());
    assert_eq!(std::fs::read_to_string(&fake).unwrap(), "fake\n");
    let out = berth.ok(&["exec", &c.id, "sh", "-c", "ls /proc"]);
    assert_eq!(out.trim(), "sys", "the image's /proc gained files");
}

#[test]
fn an_apparmor_profile_without_apparmor_is_refused() {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    if !runs_here(!apparmor, "AppArmor is enabled on this host") {
        return;
    }
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["process"]["apparmorProfile"] = json!("berth-test"));
    let berth = Berth::new();
    let id = unique_id("aa");
    let err = berth.fails(&["create", "-b", bundle.path().to_str().unwrap(), &id]);
    assert!(
        err.contains("process.apparmorProfile") && err.contains("not enabled"),
        "{err}"
    );
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn an_apparmor_profile_confines_the_process_and_an_unloaded_one_is_refused() {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    let parser = Path::new("/sbin/apparmor_parser").exists();
    if !runs_here(
        apparmor && parser,
        "needs AppArmor enabled and apparmor_parser (the systemd guest of tests/vm has both)",
    ) {
        return;
    }
    let name = unique_id("aa-profile");
    let profile = format!(
        "profile {name} flags=(attach_disconnected) {{\n  file,\n  capability,\n  signal,\n}}\n"
    );
    // Loads or (-R) removes the profile.
    let apparmor_parser = |flag: &str, profile: &str| {
        let mut child = std::process::Command::new("apparmor_parser")
            .arg(flag)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), profile.as_bytes()).unwrap();
        child.wait().unwrap().success()
    };
    /// Removes the profile when the test ends, failed or not.
    struct Loaded<F: Fn(&str, &str) -> bool>(F, String);
    impl<F: Fn(&str, &str) -> bool> Drop for Loaded<F> {
        fn drop(&mut self) {
            (self.0)("-R", &self.1);
        }
    }
    // Not loaded yet: refused, naming the field.
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["process"]["apparmorProfile"] = json!(name));
    bundle.args(&["cat", "/proc/self/attr/current"]);
    let berth = Berth::new();
    let id = unique_id("aa");
    let err = berth.fails(&["run", "-b", bundle.path().to_str().unwrap(), &id]);
    assert!(err.contains("process.apparmorProfile"), "{err}");
    assert_nothing_left(&berth, &id, &bundle);
    // Loaded: the container's process runs confined by it.
    assert!(apparmor_parser("-a", &profile), "apparmor_parser -a");
    let loaded = Loaded(apparmor_parser, profile);
    let out = run(&bundle);
    drop(loaded);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), format!("{name} (enforce)"));
}

#[test]
fn an_selinux_label_without_selinux_is_refused_and_a_mount_label_ignored() {
    if !runs_here(
        !Path::new("/sys/fs/selinux/enforce").exists(),
        "SELinux is enabled on this host",
    ) {
        return;
    }
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0"));
    let berth = Berth::new();
    let id = unique_id("selinux");
    let err = berth.fails(&["create", "-b", bundle.path().to_str().unwrap(), &id]);
    assert!(
        err.contains("process.selinuxLabel") && err.contains("not enabled"),
        "{err}"
    );
    assert_nothing_left(&berth, &id, &bundle);
    // A mount label alone is dropped: there is nothing to label with.
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0"));
    bundle.args(&["true"]);
    assert_eq!(run(&bundle).code, 0);
}

/// The processes under `root` (its descendants, by parent pid) that are
/// stopped, with whether each is in this process's mount namespace.
/// Whether process `pid` has a descriptor open on `path`.
fn holds_fd_to(pid: i32, path: &std::path::Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

fn stopped_descendants(root: i32) -> Vec<(i32, bool)> {
    let mut parent_of = std::collections::HashMap::new();
    let mut stopped = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = after.split(' ');
        let state = fields.next().unwrap_or("");
        let ppid: i32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        parent_of.insert(pid, ppid);
        if state == "t" || state == "T" {
            stopped.push(pid);
        }
    }
    let descends = |mut pid: i32| {
        while let Some(&ppid) = parent_of.get(&pid) {
            if ppid == root {
                return true;
            }
            pid = ppid;
        }
        false
    };
    let our_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    stopped
        .into_iter()
        .filter(|&pid| descends(pid))
        .map(|pid| {
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            (pid, ns.as_ref() == Some(&our_ns))
        })
        .collect()
}

/// Issue 16, item 5: a mount's flags must land on the mount berth made,
/// even when its destination is swapped for a symlink meanwhile (another
/// container writing to a shared volume). berth used to mount, then look
/// the destination up again to remount it read-only: a symlink swapped in
/// between sent `ro` elsewhere and left the volume writable.
///
/// The race is made deterministic with strace: it stops berth's init with
/// SIGSTOP right after the init's first mount_setattr (the one that gives
/// this mount, listed first, its flags; the mount point is resolved by
/// then and the mount not yet attached). While it is stopped the test
/// moves the mount point away and puts a symlink to /target in its place,
/// then lets it go on. The host directory must stay unwritable from the
/// container, wherever the mount ended up. (berth's own first
/// mount_setattr, which seals its binary, also stops: it is in the host's
/// mount namespace and is simply continued.)
#[test]
fn mount_flags_land_on_the_mount_made_when_its_path_is_swapped() {
    let has_strace = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs_here(
        has_strace,
        "strace is not installed: it stops berth's init between resolving a mount point and attaching the mount",
    ) {
        return;
    }
    let volume = tempfile::tempdir().unwrap();
    std::fs::write(volume.path().join("file"), "host data\n").unwrap();
    let mut bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    std::fs::create_dir(rootfs.join("vol")).unwrap();
    std::fs::create_dir(rootfs.join("target")).unwrap();
    bundle.edit(|c| {
        c["mounts"].as_array_mut().unwrap().insert(
            0,
            json!({"destination": "/vol", "type": "bind",
                   "source": volume.path(), "options": ["bind", "ro"]}),
        );
        c["linux"]["readonlyPaths"] = json!([]);
        c["root"]["readonly"] = json!(false);
    });
    bundle.sh(
        "for d in /vol /vol.moved /target; do echo x > $d/new 2>/dev/null && echo wrote $d; done; \
         cat /vol.moved/file; grep -c ' /vol.moved ' /proc/self/mountinfo",
    );
    let berth = Berth::new();
    let id = unique_id("swap");
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut strace = Background::spawn(
        std::process::Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null"])
            .args(["-e", "trace=mount_setattr"])
            .args(["-e", "inject=mount_setattr:signal=SIGSTOP:when=1"])
            .arg(BERTH)
            .arg("--root")
            .arg(berth.root())
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(&id)
            .stdin(std::process::Stdio::null())
            .stdout(out.reopen().unwrap())
            .stderr(std::process::Stdio::null()),
    );
    let strace_pid = strace.pid();
    let mut swapped = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !swapped && std::time::Instant::now() < deadline {
        for (pid, in_host_ns) in stopped_descendants(strace_pid) {
            // strace's own stops (at any syscall) look the same: the init
            // must hold the mount point already, which it opens before the
            // mount_setattr that stops it.
            if !in_host_ns && !swapped && holds_fd_to(pid, &rootfs.join("vol")) {
                std::fs::rename(rootfs.join("vol"), rootfs.join("vol.moved")).unwrap();
                std::os::unix::fs::symlink("/target", rootfs.join("vol")).unwrap();
                swapped = true;
            }
            // SAFETY: kill(2) of a process of this test's tree.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        swapped,
        "berth's init never stopped after its first mount_setattr"
    );
    // A stop seen above may have been strace's own (state t) with the
    // injected SIGSTOP still to come: whatever stops later is continued
    // too, until berth is done.
    let status = loop {
        if let Some(status) = strace.0.as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(60),
            "berth run under strace did not finish"
        );
        for (pid, _) in stopped_descendants(strace_pid) {
            // SAFETY: kill(2) of a process of this test's tree.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let printed = std::fs::read_to_string(out.path()).unwrap();
    assert!(status.success(), "berth run under strace failed: {printed}");
    // /vol is the symlink to /target now; the volume sits at /vol.moved.
    assert_eq!(printed, "wrote /vol\nwrote /target\nhost data\n1\n");
    assert!(!volume.path().join("new").exists());
    assert_nothing_left(&berth, &id, &bundle);
}
