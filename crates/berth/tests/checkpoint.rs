//! Checkpoint and restore with CRIU. CRIU must be installed and able to
//! dump on this kernel (`criu check` passes); elsewhere these tests say why
//! they skip. The container counts in a shell variable and writes the
//! count to /count of its rootfs: a restored container that goes on from
//! where it was (rather than from 1) had its memory restored.

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Why CRIU cannot checkpoint here, if it cannot.
fn criu_unusable() -> Option<&'static str> {
    static VERDICT: OnceLock<Option<String>> = OnceLock::new();
    VERDICT
        .get_or_init(
            || match std::process::Command::new("criu").arg("check").output() {
                Err(e) => Some(format!("criu is not installed ({e})")),
                Ok(out) if !out.status.success() => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    let first = err.lines().next().unwrap_or_default().to_string();
                    Some(format!(
                        "`criu check` fails, CRIU cannot dump on this kernel: {first}"
                    ))
                }
                Ok(_) => None,
            },
        )
        .as_deref()
}

fn criu_works() -> bool {
    let why = criu_unusable();
    runs_here(why.is_none(), why.unwrap_or_default())
}

/// A bundle whose container counts, writing the count to /count. It
/// starts from the number in /start, if there is one: a restored counter
/// goes on from the count in its image instead.
fn counter() -> Bundle {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["root"]["readonly"] = json!(false));
    bundle.sh("i=$(cat /start 2>/dev/null || echo 0); \
         while true; do i=$((i+1)); echo $i > /count; sleep 0.1; done");
    bundle
}

/// Where a counter started afresh (not restored) would count from.
const FRESH_START: u64 = 1_000_000;

fn count(bundle: &Bundle) -> u64 {
    std::fs::read_to_string(bundle.rootfs().join("count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the count exceeds `above`; returns it.
fn count_passes(bundle: &Bundle, above: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = count(bundle);
        if now > above {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the count stayed at {now}, never passed {above}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the counter detached under a new id, and waits until it counts.
fn start_counter<'a>(berth: &'a Berth, bundle: &Bundle) -> Container<'a> {
    let c = Container {
        berth,
        id: unique_id("cr"),
    };
    berth.ok(&[
        "run",
        "-d",
        "--bundle",
        bundle.path().to_str().unwrap(),
        &c.id,
    ]);
    count_passes(bundle, 2);
    c
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Restores `id` detached from `images`.
fn restore<'a>(berth: &'a Berth, bundle: &Bundle, images: &Path, id: &str) -> Container<'a> {
    berth.ok(&[
        "restore",
        "-d",
        "--image-path",
        path(images),
        "--bundle",
        path(bundle.path()),
        id,
    ]);
    Container {
        berth,
        id: id.to_string(),
    }
}

#[test]
fn a_restored_counter_goes_on_counting_and_is_an_ordinary_container() {
    if !criu_works() {
        return;
    }
    let berth = Berth::new();
    let bundle = counter();
    let images = tempfile::tempdir().unwrap();
    let c = start_counter(&berth, &bundle);
    let pid_before = berth.state(&c.id)["pid"].as_i64().unwrap();

    berth.ok(&["checkpoint", "--image-path", path(images.path()), &c.id]);
    assert!(images.path().join("inventory.img").exists());
    // Dumped and gone, as with runc: no state, process, cgroup or mount.
    assert_nothing_left(&berth, &c.id, &bundle);
    let at_dump = count(&bundle);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&bundle), at_dump, "the dumped container still counts");

    let pid_file = images.path().join("restored.pid");
    berth.ok(&[
        "restore",
        "-d",
        "--image-path",
        path(images.path()),
        "--bundle",
        path(bundle.path()),
        "--pid-file",
        path(&pid_file),
        &c.id,
    ]);
    let state = berth.state(&c.id);
    assert_eq!(state["status"], "running");
    let pid = state["pid"].as_i64().unwrap();
    assert_ne!(pid, pid_before);
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    // It goes on from the count it had, not from 1.
    let after = count_passes(&bundle, at_dump);
    assert!(after > at_dump, "{after} after {at_dump}");

    // An ordinary container: exec, list, kill, delete.
    let seen = berth.ok(&["exec", &c.id, "cat", "/count"]);
    assert!(seen.trim().parse::<u64>().unwrap() > at_dump, "{seen}");
    assert!(berth.ok(&["list"]).contains(&c.id));
    berth.ok(&["kill", &c.id, "KILL"]);
    berth.wait_status(&c.id, "stopped");
    berth.ok(&["delete", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

#[test]
fn leave_running_keeps_the_container_and_the_image_restores_under_a_new_id() {
    if !criu_works() {
        return;
    }
    let berth = Berth::new();
    let bundle = counter();
    let images = tempfile::tempdir().unwrap();
    let c = start_counter(&berth, &bundle);

    // The image holds a count between these two (the container counts on
    // while criu writes it, which takes seconds in an emulated guest).
    let before_dump = count(&bundle);
    berth.ok(&[
        "checkpoint",
        "--leave-running",
        "--image-path",
        path(images.path()),
        &c.id,
    ]);
    assert_eq!(berth.status(&c.id), "running");
    let after_dump = count(&bundle);
    count_passes(&bundle, after_dump);

    berth.ok(&["delete", "--force", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
    std::fs::remove_file(bundle.rootfs().join("count")).unwrap();
    std::fs::write(bundle.rootfs().join("start"), FRESH_START.to_string()).unwrap();
    let renamed = unique_id("renamed");
    let r = restore(&berth, &bundle, images.path(), &renamed);
    assert_eq!(berth.status(&r.id), "running");
    assert!(berth.fails(&["state", &c.id]).contains("does not exist"));
    // The image holds the count at the dump: it goes on from there (a
    // fresh start would count from FRESH_START).
    let resumed = count_passes(&bundle, 0);
    assert!(
        resumed > before_dump && resumed < FRESH_START,
        "resumed at {resumed}, dumped between {before_dump} and {after_dump}"
    );
    berth.ok(&["delete", "--force", &r.id]);
    assert_nothing_left(&berth, &r.id, &bundle);
}

#[test]
fn a_dump_on_top_of_a_pre_dump_restores() {
    if !criu_works() {
        return;
    }
    let berth = Berth::new();
    let bundle = counter();
    let images = tempfile::tempdir().unwrap();
    let pre = images.path().join("pre");
    let full = images.path().join("full");
    let c = start_counter(&berth, &bundle);

    berth.ok(&[
        "checkpoint",
        "--pre-dump",
        "--image-path",
        path(&pre),
        &c.id,
    ]);
    assert_eq!(berth.status(&c.id), "running");
    count_passes(&bundle, count(&bundle));
    berth.ok(&[
        "checkpoint",
        "--image-path",
        path(&full),
        "--parent-path",
        "../pre",
        &c.id,
    ]);
    assert_nothing_left(&berth, &c.id, &bundle);
    let at_dump = count(&bundle);

    let r = restore(&berth, &bundle, &full, &c.id);
    count_passes(&bundle, at_dump);
    berth.ok(&["delete", "--force", &r.id]);
    assert_nothing_left(&berth, &r.id, &bundle);
}

#[test]
fn a_bad_parent_path_fails_and_leaves_the_container_running() {
    if !criu_works() {
        return;
    }
    let berth = Berth::new();
    let bundle = counter();
    let images = tempfile::tempdir().unwrap();
    let c = start_counter(&berth, &bundle);
    let dir = images.path().join("dump");
    let checkpoint = |parent: &str| {
        berth.fails(&[
            "checkpoint",
            "--image-path",
            path(&dir),
            "--parent-path",
            parent,
            &c.id,
        ])
    };
    std::fs::create_dir(&dir).unwrap();
    let err = checkpoint("../missing");
    assert!(err.contains("--parent-path"), "{err}");
    assert!(err.contains("no such file"), "{err}");
    let err = checkpoint("/abs");
    assert!(err.contains("must be relative to --image-path"), "{err}");
    std::fs::create_dir(images.path().join("empty")).unwrap();
    let err = checkpoint("../empty");
    assert!(err.contains("not a CRIU image"), "{err}");
    assert_eq!(berth.status(&c.id), "running");
    count_passes(&bundle, count(&bundle));
    berth.ok(&["delete", "--force", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

#[test]
fn restoring_a_corrupt_image_fails_and_leaves_nothing() {
    if !criu_works() {
        return;
    }
    let berth = Berth::new();
    let bundle = counter();
    let images = tempfile::tempdir().unwrap();
    let c = start_counter(&berth, &bundle);
    berth.ok(&["checkpoint", "--image-path", path(images.path()), &c.id]);
    // The process tree's image, truncated to nothing.
    std::fs::write(images.path().join("pstree.img"), b"").unwrap();

    let id = unique_id("corrupt");
    let out = berth.run(&[
        "restore",
        "-d",
        "--image-path",
        path(images.path()),
        "--bundle",
        path(bundle.path()),
        &id,
    ]);
    let _guard = Container {
        berth: &berth,
        id: id.clone(),
    };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("criu restore failed"), "{err}");
    assert!(err.contains("restore.log"), "{err}");
    assert_nothing_left(&berth, &id, &bundle);
}

/// Runs without CRIU too: the image is checked before CRIU is asked.
#[test]
fn restoring_a_missing_or_empty_image_directory_fails_and_leaves_nothing() {
    let berth = Berth::new();
    let bundle = counter();
    let images = tempfile::tempdir().unwrap();
    let id = unique_id("noimage");
    let restore = |dir: &Path| {
        berth.fails(&[
            "restore",
            "-d",
            "--image-path",
            path(dir),
            "--bundle",
            path(bundle.path()),
            &id,
        ])
    };
    let missing = images.path().join("missing");
    let err = restore(&missing);
    assert!(err.contains("--image-path"), "{err}");
    assert!(err.contains("no such file"), "{err}");
    let err = restore(images.path());
    assert!(err.contains("not a checkpoint (no inventory.img)"), "{err}");
    assert_nothing_left(&berth, &id, &bundle);
}

/// Runs without CRIU too: berth finds no `criu` in PATH.
#[test]
fn without_criu_checkpoint_and_restore_say_so() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "60"]);
    let c = Container {
        berth: &berth,
        id: unique_id("nocriu"),
    };
    berth.ok(&["run", "-d", "--bundle", path(bundle.path()), &c.id]);
    let images = tempfile::tempdir().unwrap();
    let no_criu = |args: &[&str]| {
        let out = output_via_files(berth.cmd(args).env("PATH", "/nonexistent"));
        assert!(!out.status.success(), "berth {args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    };
    let err = no_criu(&["checkpoint", "--image-path", path(images.path()), &c.id]);
    assert!(err.contains("CRIU is missing"), "{err}");
    assert_eq!(berth.status(&c.id), "running");

    // An image directory that passes berth's own checks.
    std::fs::write(images.path().join("inventory.img"), b"").unwrap();
    std::fs::write(images.path().join("descriptors.json"), b"[]").unwrap();
    let id = unique_id("nocriu");
    let err = no_criu(&[
        "restore",
        "-d",
        "--image-path",
        path(images.path()),
        "--bundle",
        path(bundle.path()),
        &id,
    ]);
    assert!(err.contains("CRIU is missing"), "{err}");
    assert!(berth.fails(&["state", &id]).contains("does not exist"));
    berth.ok(&["delete", "--force", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

/// Checkpoints the running container `c` and restores it under the same
/// id with `flags` given to both; returns the count at the dump.
fn checkpoint_and_restore(berth: &Berth, bundle: &Bundle, c: &Container, flags: &[&str]) -> u64 {
    checkpoint_and_restore_with(berth, bundle, c, flags, || {})
}

/// [`checkpoint_and_restore`], running `between` after the checkpoint.
fn checkpoint_and_restore_with(
    berth: &Berth,
    bundle: &Bundle,
    c: &Container,
    flags: &[&str],
    between: impl FnOnce(),
) -> u64 {
    let images = tempfile::tempdir().unwrap();
    let mut args = vec!["checkpoint", "--image-path", path(images.path())];
    args.extend(flags);
    args.push(&c.id);
    berth.ok(&args);
    assert_nothing_left(berth, &c.id, bundle);
    between();
    let at_dump = count(bundle);
    let mut args = vec!["restore", "-d", "--image-path", path(images.path())];
    args.extend(["--bundle", path(bundle.path())]);
    args.extend(flags);
    args.push(&c.id);
    berth.ok(&args);
    count_passes(bundle, at_dump);
    at_dump
}

#[test]
fn a_bind_mount_whose_destination_is_a_symlink_is_bound_again() {
    if !criu_works() {
        return;
    }
    let berth = Berth::new();
    let mut bundle = counter();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("hello"), "hello").unwrap();
    std::fs::create_dir(bundle.rootfs().join("real")).unwrap();
    std::os::unix::fs::symlink("real", bundle.rootfs().join("link")).unwrap();
    bundle.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/link",
            "type": "bind",
            "source": path(shared.path()),
            "options": ["rbind", "rw"]
        }))
    });
    let c = start_counter(&berth, &bundle);
    checkpoint_and_restore(&berth, &bundle, &c, &[]);
    // The host's directory itself, not a copy: a write inside shows.
    let read = berth.ok(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "cat /real/hello; echo x > /link/new",
    ]);
    assert_eq!(read, "hello");
    assert_eq!(
        std::fs::read_to_string(shared.path().join("new")).unwrap(),
        "x\n"
    );
    berth.ok(&["delete", "--force", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

/// `berth spec` gives a container its own cgroup namespace, which the
/// other tests keep; without one, its cgroup mount is a bind of its
/// cgroup, named external at the dump and bound again at the restore.
#[test]
fn a_container_without_a_cgroup_namespace_restores() {
    if !criu_works() {
        return;
    }
    let berth = Berth::new();
    let mut bundle = counter();
    bundle.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "cgroup")
    });
    let c = start_counter(&berth, &bundle);
    checkpoint_and_restore(&berth, &bundle, &c, &[]);
    // It sees its cgroup by its host path, as before.
    let cgroups = berth.ok(&["exec", &c.id, "cat", "/proc/self/cgroup"]);
    assert!(cgroups.contains(&c.id), "{cgroups}");
    berth.ok(&["delete", "--force", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}

/// A network namespace kept in a file, with its loopback up; unmounted
/// and removed on drop.
struct NetNs(tempfile::TempDir);

impl NetNs {
    fn new() -> NetNs {
        let netns = NetNs(tempfile::tempdir().unwrap());
        std::fs::write(netns.path(), "").unwrap();
        netns.make();
        netns
    }

    fn make(&self) {
        let status = std::process::Command::new("unshare")
            .arg(format!("--net={}", self.path().display()))
            .args(["ip", "link", "set", "lo", "up"])
            .status()
            .expect("unshare");
        assert!(status.success());
    }

    /// A new network namespace at the same path, as an engine makes one
    /// for a restored container: the old one keeps the network lock CRIU
    /// put on it for the dump (its iptables CRIU chain drops every
    /// packet), which the restore, locking and unlocking again, cannot
    /// lift.
    fn renew(&self) {
        rustix::mount::unmount(self.path(), rustix::mount::UnmountFlags::DETACH).unwrap();
        self.make();
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.path().join("net")
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(self.path(), rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn tcp_established_keeps_a_connection_in_a_joined_network_namespace() {
    if !criu_works() {
        return;
    }
    let berth = Berth::new();
    let netns = NetNs::new();
    let mut bundle = counter();
    let ns_path = netns.path();
    bundle.edit(|c| {
        let namespaces = c["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|n| n["type"] != "network");
        namespaces.push(json!({"type": "network", "path": path(&ns_path)}));
    });
    // The counter sends each number over a TCP connection, whose server
    // writes what it receives to /received. The server's stdin stays open
    // (a background job's is /dev/null, at whose end nc hangs up).
    bundle.sh(
        "sleep 100000 | nc -l -p 5555 > /received 2> /server.err & sleep 3; \
         i=0; while true; do i=$((i+1)); echo $i; echo $i > /count; sleep 0.1; done \
         | nc 127.0.0.1 5555 2> /client.err",
    );
    let c = Container {
        berth: &berth,
        id: unique_id("tcp"),
    };
    berth.ok(&["run", "-d", "--bundle", path(bundle.path()), &c.id]);
    let read = |name: &str| std::fs::read_to_string(bundle.rootfs().join(name)).unwrap_or_default();
    // The server gets 3 s to listen; an emulated guest needs more.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&bundle) <= 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        count(&bundle) > 2,
        "the counter does not send: count {}, server: {}, client: {}",
        count(&bundle),
        read("server.err"),
        read("client.err")
    );
    let at_dump = checkpoint_and_restore_with(&berth, &bundle, &c, &["--tcp-established"], || {
        netns.renew()
    });
    count_passes(&bundle, at_dump + 5);
    // Every number arrived, in order, across the checkpoint.
    let received = read("received");
    let numbers: Vec<u64> = received.lines().map(|l| l.parse().unwrap()).collect();
    assert!(numbers.len() as u64 > at_dump, "{received}");
    assert!(
        numbers.iter().enumerate().all(|(i, n)| *n == i as u64 + 1),
        "{received}"
    );
    berth.ok(&["delete", "--force", &c.id]);
    assert_nothing_left(&berth, &c.id, &bundle);
}
