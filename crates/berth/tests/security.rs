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
        while let Ok(req) = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()) {
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
    // The pty passes "\n" through (ONLCR is cleared, as runc does); the
    // outer terminal of `script` may still add "\r".
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.contains("0\nplain"), "{text}");
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
