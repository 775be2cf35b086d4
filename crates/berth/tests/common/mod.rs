//! Helpers for the integration tests: a busybox rootfs built once per test
//! binary, a bundle per test, a private --root per test, unique ids, and
//! checks that nothing was left behind.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::{json, Value};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// The busybox rootfs every bundle copies, built by scripts/mkrootfs.sh.
pub fn template_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        assert!(
            rustix::process::geteuid().is_root(),
            "the integration tests need root"
        );
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join("busybox-rootfs");
        if dir.join("bin/busybox").exists() {
            return dir;
        }
        // Test binaries run side by side: build aside, then rename into place.
        let building = base.join(format!("busybox-rootfs.{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mkrootfs.sh");
        let status = Command::new("sh")
            .arg(&script)
            .arg(&building)
            .status()
            .expect("run mkrootfs.sh");
        assert!(
            status.success(),
            "mkrootfs.sh failed (is busybox-static installed?)"
        );
        if std::fs::rename(&building, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&building);
        }
        dir
    })
}

/// Whether this test can run on this host. When it cannot, it says so on
/// stderr with `reason` (written past the harness's capture, so it shows in
/// every run): a test that returns early in silence would pass having
/// checked nothing.
pub fn runs_here(can: bool, reason: &str) -> bool {
    if !can {
        use std::io::Write;
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
    }
    can
}

/// A pure cgroup v2 host: the cgroup2 hierarchy mounted at /sys/fs/cgroup
/// (tests/vm/suite.sh runs the tests on one), not v1 controllers there.
pub fn host_is_cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Whether the tests drive berth with `--systemd-cgroup`:
/// BERTH_TEST_CGROUP_DRIVER=systemd, as `tests/vm/suite.sh --systemd-cgroup`
/// sets it in its systemd guest. Without it, the cgroupfs driver.
pub fn systemd_driver() -> bool {
    std::env::var_os("BERTH_TEST_CGROUP_DRIVER").is_some_and(|d| d == "systemd")
}

/// A unique container id: the tag, this process and a counter.
pub fn unique_id(tag: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A bundle of its own: a copy of the rootfs and a config.json that starts
/// as `berth spec` writes it, without a terminal.
pub struct Bundle {
    dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    pub fn new() -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .expect("bundle dir");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template_rootfs())
            .arg(dir.path().join("rootfs"))
            .status()
            .expect("cp");
        assert!(status.success());
        let out = Command::new(BERTH)
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "berth spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        let mut bundle = Bundle { dir, config };
        bundle.config["process"]["terminal"] = json!(false);
        bundle.write();
        bundle
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Sets process.args and writes config.json.
    pub fn args(&mut self, args: &[&str]) -> &mut Bundle {
        self.config["process"]["args"] = json!(args);
        self.write();
        self
    }

    /// A shell command as process.args.
    pub fn sh(&mut self, script: &str) -> &mut Bundle {
        self.args(&["sh", "-c", script])
    }

    /// Edits config.json.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Bundle {
        f(&mut self.config);
        self.write();
        self
    }

    /// Adds `namespace` to linux.namespaces.
    /// Adds `namespace`, or replaces the entry of its type.
    pub fn add_namespace(&mut self, namespace: Value) -> &mut Bundle {
        self.edit(|c| {
            let namespaces = c["linux"]["namespaces"].as_array_mut().unwrap();
            namespaces.retain(|n| n["type"] != namespace["type"]);
            namespaces.push(namespace)
        })
    }

    /// A cgroup namespace, which `berth spec` (as `runc spec`) lists on
    /// cgroup v2 hosts only.
    pub fn cgroup_namespace(&mut self) -> &mut Bundle {
        self.add_namespace(json!({"type": "cgroup"}))
    }

    /// A new user namespace whose 65536 ids map to the host's from
    /// `host_uid` and `host_gid`.
    pub fn user_namespace(&mut self, host_uid: u32, host_gid: u32) -> &mut Bundle {
        self.add_namespace(json!({"type": "user"})).edit(|c| {
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": host_uid, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": host_gid, "size": 65536}]);
        })
    }

    pub fn write(&self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }
}

/// berth with a private state root.
pub struct Berth {
    root: tempfile::TempDir,
    binary: PathBuf,
}

impl Berth {
    pub fn new() -> Berth {
        Berth::with_binary(Path::new(BERTH))
    }

    /// A berth run from `binary` (a copy an attack may damage).
    pub fn with_binary(binary: &Path) -> Berth {
        Berth {
            root: tempfile::Builder::new()
                .prefix("berth-root-")
                .tempdir()
                .expect("root dir"),
            binary: binary.to_path_buf(),
        }
    }

    /// A berth whose state root is `parent/berth`, the default root of a
    /// berth whose XDG_RUNTIME_DIR is `parent`.
    pub fn with_root_in(parent: &Path) -> Berth {
        Berth {
            root: tempfile::Builder::new()
                .prefix("berth")
                .rand_bytes(0)
                .tempdir_in(parent)
                .expect("root dir"),
            binary: PathBuf::from(BERTH),
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(self.root.path());
        // Tests of the driver itself name it already.
        if systemd_driver() && !args.contains(&"--systemd-cgroup") {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs berth to completion. Its stdout and stderr go to files, not
    /// pipes: a created container inherits them, so a pipe would not reach
    /// end-of-file while the container lives.
    pub fn run(&self, args: &[&str]) -> Output {
        output_via_files(&mut self.cmd(args))
    }

    /// Runs `berth` and asserts it succeeded; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `berth` and asserts it failed; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "berth {args:?} unexpectedly succeeded"
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Runs `berth` with `input` on stdin and asserts it failed; returns
    /// stderr.
    pub fn fails_with_stdin(&self, args: &[&str], input: &str) -> String {
        let mut input_file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut input_file, input.as_bytes()).unwrap();
        std::io::Seek::rewind(&mut input_file).unwrap();
        let out = output_via_files(self.cmd(args).stdin(input_file));
        assert!(
            !out.status.success(),
            "berth {args:?} unexpectedly succeeded"
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// The `state` of a container, parsed.
    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Waits until the container exists and reaches `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        let mut last = String::new();
        for _ in 0..500 {
            let out = self.run(&["state", id]);
            if out.status.success() {
                let state: Value = serde_json::from_slice(&out.stdout).unwrap();
                last = state["status"].as_str().unwrap_or_default().to_string();
                if last == status {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{id} never became {status}; it is {last:?}");
    }
}

/// Like `Command::output`, but through temporary files.
pub fn output_via_files(cmd: &mut Command) -> Output {
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let status = cmd
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .expect("run berth");
    use std::io::{Read, Seek};
    let read = |f: &mut std::fs::File| {
        let mut v = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}

/// The outcome of `berth run` in the foreground.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the bundle in the foreground under a fresh id and root, checks that
/// nothing is left behind, and returns what the container printed.
pub fn run(bundle: &Bundle) -> Ran {
    run_with_flags(bundle, &[])
}

/// `run`, with global flags before the verb.
pub fn run_with_flags(bundle: &Bundle, flags: &[&str]) -> Ran {
    let berth = Berth::new();
    let id = unique_id("run");
    let mut args = flags.to_vec();
    args.extend(["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let out = berth.run(&args);
    let ran = Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_nothing_left(&berth, &id, bundle);
    ran
}

/// Runs the bundle and asserts that it failed, saying `text` on stderr.
pub fn run_fails_saying(bundle: &Bundle, text: &str) {
    let ran = run(bundle);
    assert_ne!(ran.code, 0, "{}", ran.stdout);
    assert!(ran.stderr.contains(text), "{}", ran.stderr);
}

/// Runs the bundle and asserts it exited 0; returns its stdout.
pub fn run_ok(bundle: &Bundle) -> String {
    let ran = run(bundle);
    assert_eq!(
        ran.code, 0,
        "the container failed: {}{}",
        ran.stdout, ran.stderr
    );
    ran.stdout
}

/// A created container, force-deleted when dropped (also when a test fails).
pub struct Container<'a> {
    pub berth: &'a Berth,
    pub id: String,
}

impl<'a> Container<'a> {
    pub fn create(berth: &'a Berth, bundle: &Bundle, extra: &[&str]) -> Container<'a> {
        let c = Container {
            berth,
            id: unique_id("ctr"),
        };
        let mut args = vec!["create", "--bundle", bundle.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(&c.id);
        berth.ok(&args);
        c
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.berth.run(&["delete", "--force", &self.id]);
    }
}

/// A berth process running in the background (a foreground `run`), killed
/// if the test fails before it ends.
pub struct Background(pub Option<std::process::Child>);

impl Background {
    pub fn spawn(cmd: &mut Command) -> Background {
        Background(Some(cmd.spawn().expect("spawn berth")))
    }

    pub fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }

    pub fn wait(mut self) -> std::process::ExitStatus {
        self.0.take().unwrap().wait().unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Cgroup directories of container `id` anywhere under /sys/fs/cgroup:
/// named `id` (cgroupfs driver) or `<prefix>-<id>.scope` (systemd driver).
pub fn cgroups_named(id: &str) -> Vec<PathBuf> {
    let scope = format!("-{id}.scope");
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let name = e.file_name();
                if name == id || name.to_str().is_some_and(|n| n.ends_with(&scope)) {
                    found.push(path.clone());
                }
                stack.push(path);
            }
        }
    }
    found
}

/// Mount points under `dir` in this (the host's) mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// Processes whose root directory is inside `dir`.
pub fn processes_rooted_in(dir: &Path) -> Vec<i32> {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/root"))
                .is_ok_and(|root| root.starts_with(&canonical))
        })
        .collect()
}

/// Asserts that no state, cgroup, mount or process of container `id` (from
/// `bundle`) remains.
pub fn assert_nothing_left(berth: &Berth, id: &str, bundle: &Bundle) {
    let is_a_name = !id.is_empty() && !id.contains('/') && id != "." && id != "..";
    if is_a_name {
        assert!(
            !berth.root().join(id).exists(),
            "state of {id} left in {}",
            berth.root().display()
        );
    }
    assert_eq!(
        cgroups_named(id),
        Vec::<PathBuf>::new(),
        "cgroups of {id} left"
    );
    assert_eq!(
        mounts_under(bundle.path()),
        Vec::<String>::new(),
        "mounts of {id} left"
    );
    assert_eq!(
        processes_rooted_in(&bundle.rootfs()),
        Vec::<i32>::new(),
        "processes of {id} left"
    );
}

/// Accepts one connection on `listener` and takes the one fd sent over it
/// (SCM_RIGHTS), with the message's data.
pub fn receive_fd(listener: &std::os::unix::net::UnixListener) -> (std::os::fd::OwnedFd, String) {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let (stream, _) = listener.accept().unwrap();
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut data = [0u8; 64];
    let got = rustix::net::recvmsg(
        &stream,
        &mut [std::io::IoSliceMut::new(&mut data)],
        &mut control,
        RecvFlags::empty(),
    )
    .unwrap();
    let text = String::from_utf8_lossy(&data[..got.bytes]).into_owned();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message {
            return (fds.next().unwrap(), text);
        }
    }
    panic!("no fd came over the socket");
}

/// `berth args`, which must succeed, while another thread takes the fd
/// berth sends to `listener` (a console or pidfd socket), with its data.
pub fn ok_receiving_fd(
    berth: &Berth,
    listener: &std::os::unix::net::UnixListener,
    args: &[&str],
) -> (std::os::fd::OwnedFd, String) {
    std::thread::scope(|s| {
        let receiver = s.spawn(|| receive_fd(listener));
        berth.ok(args);
        receiver.join().unwrap()
    })
}

/// The pid a pidfd refers to, from its fdinfo.
pub fn pid_of_pidfd(pidfd: &std::os::fd::OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .expect("a pidfd's fdinfo has a Pid line")
        .trim()
        .parse()
        .unwrap()
}

/// The CPUs this host has online, as /proc/<pid>/status lists them.
pub fn online_cpus() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .unwrap()
        .trim()
        .to_string()
}

/// Makes `cmd` start pinned to CPU 0, as a pinned engine's child would.
pub fn pin_to_cpu0(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: sched_setaffinity on the child itself, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
