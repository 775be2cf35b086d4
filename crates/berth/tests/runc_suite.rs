//! What runc's own integration tests (tests/integration/*.bats) check of a
//! runtime, where berth once answered differently: one test per behaviour.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::json;

fn status_field(text: &str, field: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {text}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn unknown_capabilities_are_ignored_with_a_warning() {
    let mut bundle = Bundle::new();
    bundle
        .edit(|c| {
            c["process"]["capabilities"]["bounding"] = json!(["CAP_UNKNOWN", "UNKNOWN_CAP"]);
        })
        .sh("grep -E '^Cap(Bnd|Amb)' /proc/self/status");
    let ran = run(&bundle);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr
            .contains("ignoring unknown or unavailable capabilities: [CAP_UNKNOWN UNKNOWN_CAP]"),
        "{}",
        ran.stderr
    );
    assert_eq!(status_field(&ran.stdout, "CapBnd"), 0, "{}", ran.stdout);
}

#[test]
fn exec_cap_is_ambient_too_when_the_spec_has_inheritable_capabilities() {
    // CAP_CHOWN is 0, CAP_KILL 5, CAP_SYSLOG 34.
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        let caps = &mut c["process"]["capabilities"];
        caps["bounding"] = json!(["CAP_CHOWN", "CAP_KILL", "CAP_SYSLOG"]);
        caps["effective"] = json!(["CAP_CHOWN", "CAP_KILL"]);
        caps["permitted"] = json!(["CAP_CHOWN", "CAP_KILL"]);
        caps["inheritable"] = json!(["CAP_CHOWN", "CAP_SYSLOG"]);
        caps["ambient"] = json!(["CAP_CHOWN"]);
        c["process"]["args"] = json!(["sleep", "100"]);
    });
    let berth = Berth::new();
    let container = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &container.id]);
    let status = berth.ok(&["exec", &container.id, "cat", "/proc/self/status"]);
    assert_eq!(status_field(&status, "CapAmb"), 1, "{status}");
    let status = berth.ok(&[
        "exec",
        "--cap",
        "CAP_SYSLOG",
        &container.id,
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(
        status_field(&status, "CapEff"),
        1 << 34 | 1 << 5 | 1,
        "{status}"
    );
    assert_eq!(status_field(&status, "CapAmb"), 1 << 34 | 1, "{status}");
    let id = container.id.clone();
    drop(container);
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn a_foreground_terminal_passes_newlines_through_unchanged() {
    let mut bundle = Bundle::new();
    bundle
        .edit(|c| c["process"]["terminal"] = json!(true))
        .sh("echo one; echo two");
    let out = run_ok(&bundle);
    assert!(out.contains("one\ntwo\n"), "{out:?}");
    assert!(!out.contains('\r'), "{out:?}");
}

#[test]
fn list_json_is_one_line_with_runcs_field_order() {
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "100"]);
    let berth = Berth::new();
    let container = Container::create(&berth, &bundle, &[]);
    let out = berth.ok(&["list", "--format", "json"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let order: Vec<usize> = [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
    ]
    .iter()
    .map(|k| {
        out.find(&format!("\"{k}\":"))
            .unwrap_or_else(|| panic!("no {k} in {out}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    let pids = berth.ok(&["ps", "--format", "json", &container.id]);
    assert_eq!(pids.lines().count(), 1, "{pids}");
    let id = container.id.clone();
    drop(container);
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn a_repeated_variable_keeps_its_last_value_and_an_empty_home_is_the_users() {
    let mut bundle = Bundle::new();
    bundle
        .edit(|c| {
            c["process"]["env"] = json!(["ONE=two", "PATH=/bin", "ONE=three", "HOME=/x", "HOME="]);
        })
        .args(&["env"]);
    let out = run_ok(&bundle);
    let mut vars: Vec<&str> = out.lines().collect();
    vars.sort();
    assert_eq!(vars, ["HOME=/root", "ONE=three", "PATH=/bin"], "{out}");
}

#[test]
fn a_read_only_dev_takes_the_console() {
    let mut bundle = Bundle::new();
    bundle
        .edit(|c| {
            c["process"]["terminal"] = json!(true);
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["destination"] == "/dev" {
                    m["options"].as_array_mut().unwrap().push(json!("ro"));
                }
            }
        })
        .sh("grep '^tmpfs /dev ' /proc/mounts; test -c /dev/console && echo console");
    let out = run_ok(&bundle);
    assert!(out.contains(" ro,"), "{out}");
    assert!(out.contains("console"), "{out}");
}

#[test]
fn a_symlinked_proc_is_refused_in_runcs_words() {
    let mut bundle = Bundle::new();
    let proc_dir = bundle.rootfs().join("proc");
    std::fs::remove_dir(&proc_dir).unwrap();
    std::os::unix::fs::symlink("/bad-proc", &proc_dir).unwrap();
    bundle.args(&["true"]);
    run_fails_saying(&bundle, "must be mounted on ordinary directory");
}

#[test]
fn start_container_hooks_without_env_inherit_the_process_environment() {
    let mut bundle = Bundle::new();
    let script = bundle.rootfs().join("check-env.sh");
    std::fs::write(&script, "#!/bin/sh -ue\ntest $ONE = two\necho home=$HOME\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bundle
        .edit(|c| {
            c["process"]["env"] = json!(["ONE=two", "PATH=/bin"]);
            c["hooks"] = json!({"startContainer": [{"path": "/check-env.sh"}]});
        })
        .args(&["true"]);
    let ran = run(&bundle);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
}

#[test]
fn a_program_that_cannot_be_executed_is_reported_as_a_shell_would() {
    let mut bundle = Bundle::new();
    let script = bundle.rootfs().join("run.sh");
    std::fs::write(&script, "#!/mmnnttbb foo bar\nsh\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bundle.args(&["/run.sh"]);
    let ran = run(&bundle);
    assert_eq!(ran.code, 127, "{}", ran.stderr);
    assert_eq!(ran.stderr, "exec /run.sh: no such file or directory\n");
}

#[test]
fn a_bind_mount_through_dangling_symlinks_lands_where_they_point_inside_the_root() {
    let mut bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    let _ = std::fs::remove_file(rootfs.join("etc/hosts"));
    std::os::unix::fs::symlink("/tmp/foo/bar", rootfs.join("jump")).unwrap();
    std::os::unix::fs::symlink("/jump/baz/hosts", rootfs.join("etc/hosts")).unwrap();
    let source = bundle.path().join("config.json");
    let source_ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&source).unwrap());
    bundle
        .edit(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "source": source, "destination": "/etc/hosts", "options": ["bind"]
            }));
        })
        .sh("stat -c %i /tmp/foo/bar/baz/hosts; grep -c ' /tmp/foo/bar/baz/hosts ' /proc/self/mounts");
    let out = run_ok(&bundle);
    assert_eq!(out, format!("{source_ino}\n1\n"));
    assert!(!std::path::Path::new("/tmp/foo/bar/baz").exists());
}

#[test]
fn bind_mounts_build_a_tree_from_earlier_mounts_named_by_host_paths_inside_the_root() {
    // runc's mounts.bats "mount order": destinations and sources written as
    // host paths inside the rootfs, sources that only exist once the
    // earlier mounts are made, reached through symlinks.
    let mut bundle = Bundle::new();
    let sources = bundle.path().join("bind-src");
    for sub in ["a/x", "b/y", "c/z"] {
        let dir = sources.join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file"), format!("{sub}\n")).unwrap();
        let top = sub.split('/').next().unwrap();
        std::os::unix::fs::symlink(top, sources.join(format!("sym-{top}"))).unwrap();
    }
    let rootfs = bundle.rootfs();
    std::fs::create_dir_all(rootfs.join("mnt")).unwrap();
    std::fs::create_dir_all(rootfs.join("final")).unwrap();
    let bind = |source: PathBuf, destination: &str, options: &[&str]| json!({"source": source, "destination": destination, "type": "bind", "options": options});
    let in_root = |p: &str| rootfs.join(p).to_str().unwrap().to_string();
    let mounts = [
        bind(sources.join("a"), "/mnt", &["bind", "rprivate"]),
        bind(sources.join("sym-b"), "/mnt/x", &["bind", "rprivate"]),
        bind(sources.join("c"), "/mnt/x/y", &["bind", "rprivate"]),
        bind(sources.join("sym-a"), "/mnt/x/y/z", &["bind", "rprivate"]),
        bind(
            rootfs.join("mnt/x"),
            &in_root("mnt/x/y/z/x"),
            &["rbind", "rprivate"],
        ),
        bind(
            rootfs.join("mnt/x/y"),
            &in_root("mnt/x/y/z"),
            &["rbind", "rprivate"],
        ),
        bind(
            rootfs.join("mnt"),
            &in_root("final"),
            &["rbind", "rprivate"],
        ),
    ];
    bundle
        .edit(|c| c["mounts"].as_array_mut().unwrap().extend(mounts))
        .args(&["cat", "/final/x/y/z/z/x/y/z/x/file"]);
    assert_eq!(run_ok(&bundle), "a/x\n");
    assert_eq!(mounts_under(&rootfs), Vec::<String>::new());
}

/// A bundle for a container in the host's mount namespace (runc's
/// host-mntns.bats): no paths to mask, as the host's are not the
/// container's to cover.
fn host_mount_ns_bundle() -> Bundle {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
        c["root"]["readonly"] = json!(true);
    });
    bundle
}

#[test]
fn a_read_only_root_in_the_host_mount_namespace_runs_and_leaves_no_mount() {
    let mut bundle = host_mount_ns_bundle();
    bundle.args(&["echo", "hello"]);
    let berth = Berth::new();
    let id = unique_id("hostmnt");
    let out = berth.ok(&["run", "-b", bundle.path().to_str().unwrap(), &id]);
    assert_eq!(out, "hello\n");
    assert_nothing_left(&berth, &id, &bundle);
}

/// The mount points at `path` in this (the host's) mount namespace.
fn mounts_at(path: &std::path::Path) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
        .count()
}

/// The rootfs is no mount point of berth's there (runc binds it onto
/// itself after making the host's / a slave, which berth leaves alone;
/// on a shared /, as under systemd, such a bind would propagate back
/// under an engine's own mount at the rootfs and take it along when
/// detached): an engine's mount stays as it was.
#[test]
fn a_container_in_the_host_mount_namespace_leaves_an_engines_mount_at_its_rootfs() {
    let mut bundle = host_mount_ns_bundle();
    bundle.args(&["sleep", "100"]);
    let rootfs = bundle.rootfs();
    let berth = Berth::new();
    let engine_bind = std::process::Command::new("mount")
        .args(["--bind"])
        .arg(&rootfs)
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(engine_bind.success());
    let engines = mounts_at(&rootfs);
    let c = Container::create(&berth, &bundle, &[]);
    let with_container = mounts_at(&rootfs);
    berth.ok(&["delete", "--force", &c.id]);
    let left = mounts_at(&rootfs);
    for _ in 0..engines {
        let _ = std::process::Command::new("umount").arg(&rootfs).status();
    }
    assert_eq!(with_container, engines);
    assert_eq!(left, engines, "the engine's mount is gone");
    assert_eq!(mounts_at(&rootfs), 0);
}

#[test]
fn a_failed_create_in_the_host_mount_namespace_detaches_its_mounts() {
    let mut bundle = host_mount_ns_bundle();
    bundle.args(&["/no-such-program"]);
    let berth = Berth::new();
    let id = unique_id("hostmntfail");
    let err = berth.fails(&["create", "-b", bundle.path().to_str().unwrap(), &id]);
    assert!(err.contains("no-such-program"), "{err}");
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn a_tmpfs_takes_the_mode_of_the_directory_it_covers_unless_told_otherwise() {
    let mut bundle = Bundle::new();
    let rootfs = bundle.rootfs();
    std::fs::create_dir(rootfs.join("covered")).unwrap();
    std::fs::set_permissions(
        rootfs.join("covered"),
        std::os::unix::fs::PermissionsExt::from_mode(0o3777 | 0o4000),
    )
    .unwrap();
    std::fs::create_dir(rootfs.join("told")).unwrap();
    bundle
        .edit(|c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            for (dest, options) in [
                ("/covered", json!(["nosuid"])),
                ("/told", json!(["mode=710"])),
                ("/made", json!([])),
            ] {
                mounts.push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}));
            }
        })
        .sh("stat -c %a /covered /told /made");
    assert_eq!(run_ok(&bundle), "7777\n710\n1777\n");
}

#[test]
fn unified_resources_a_v1_host_cannot_set_are_an_invalid_configuration() {
    if !runs_here(
        std::path::Path::new("/sys/fs/cgroup/memory").is_dir(),
        "needs a cgroup v1 memory hierarchy (memory.min is then no v2 file)",
    ) {
        return;
    }
    let mut bundle = Bundle::new();
    bundle
        .edit(|c| c["linux"]["resources"]["unified"] = json!({"memory.min": "131072"}))
        .args(&["true"]);
    run_fails_saying(&bundle, "invalid configuration");
}

#[test]
fn help_starts_with_a_name_section_named_as_berth_was_invoked() {
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("my-runtime");
    std::os::unix::fs::symlink(BERTH, &renamed).unwrap();
    for (berth, name) in [
        (Berth::new(), "berth"),
        (Berth::with_binary(&renamed), "my-runtime"),
    ] {
        let top = berth.ok(&["--help"]);
        assert!(top.starts_with(&format!("NAME:\n   {name} - ")), "{top}");
        // The verbs and their descriptions, as the top help lists them.
        let verbs: Vec<(String, String)> = top
            .lines()
            .skip_while(|l| *l != "Commands:")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.trim().split_once(' '))
            .map(|(verb, about)| {
                let about = about.trim().split(" [alias").next().unwrap();
                (verb.to_string(), about.to_string())
            })
            .filter(|(verb, _)| verb != "help")
            .collect();
        assert!(verbs.len() > 15, "{top}");
        for (verb, about) in &verbs {
            for flag in ["-h", "--help"] {
                let help = berth.ok(&[verb, flag]);
                let lines: Vec<&str> = help.lines().collect();
                assert_eq!(lines[0], "NAME:", "{help}");
                // Its own description, not that of a struct of options.
                assert_eq!(lines[1], format!("   {name} {verb} - {about}"), "{help}");
            }
        }
        let out = berth.run(&["foo", "-h"]);
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr).contains("No help topic for 'foo'"));
    }
}

/// A tmpfs on the host whose mount (not its superblock, which no bind
/// could change) has `flags`, unmounted when dropped.
struct HostTmpfs(tempfile::TempDir);

impl HostTmpfs {
    fn mount(flags: &str) -> HostTmpfs {
        let host = HostTmpfs(
            tempfile::Builder::new()
                .prefix("berth-host-tmpfs-")
                .tempdir()
                .unwrap(),
        );
        let mount = |args: &[&str]| {
            let ok = std::process::Command::new("mount")
                .args(args)
                .arg(host.0.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "mount {args:?}");
        };
        mount(&["-t", "tmpfs", "tmpfs"]);
        mount(&["--bind", "-o", &format!("remount,{flags}")]);
        host
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_bind_naming_flags_gets_exactly_those_and_keeps_locked_ones_in_a_user_namespace() {
    let source = HostTmpfs::mount("ro,noexec,nosymfollow");
    let mount_options = |bundle: &mut Bundle, options: serde_json::Value| {
        // Made here: root of a user namespace may not write the image.
        let _ = std::fs::create_dir(bundle.rootfs().join("mnt"));
        bundle
            .edit(|c| {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "source": source.0.path(), "destination": "/mnt", "type": "bind",
                    "options": options
                }));
            })
            .sh("awk '$2 == \"/mnt\" { print $4 }' /proc/self/mounts");
    };
    let flags_of = |out: &str| -> Vec<String> { out.trim().split(',').map(String::from).collect() };
    // A bind naming no flag keeps the source's.
    let mut bundle = Bundle::new();
    mount_options(&mut bundle, json!(["bind"]));
    let flags = flags_of(&run_ok(&bundle));
    assert!(
        flags.contains(&"ro".into()) && flags.contains(&"noexec".into()),
        "{flags:?}"
    );
    // Naming one clears the others.
    let mut bundle = Bundle::new();
    mount_options(&mut bundle, json!(["bind", "dev"]));
    let flags = flags_of(&run_ok(&bundle));
    assert!(flags.contains(&"rw".into()), "{flags:?}");
    assert!(!flags.contains(&"noexec".into()) && !flags.contains(&"nosymfollow".into()));
    // In a user namespace the lockable ones stay (nosymfollow is not one).
    let mut bundle = Bundle::new();
    bundle.user_namespace(100000, 100000);
    mount_options(&mut bundle, json!(["bind", "dev"]));
    let flags = flags_of(&run_ok(&bundle));
    assert!(
        flags.contains(&"ro".into()) && flags.contains(&"noexec".into()),
        "{flags:?}"
    );
    assert!(!flags.contains(&"nosymfollow".into()), "{flags:?}");
    // And clearing one there is refused, naming the option.
    let mut bundle = Bundle::new();
    bundle.user_namespace(100000, 100000);
    mount_options(&mut bundle, json!(["bind", "rw"]));
    run_fails_saying(&bundle, "\"rw\": operation not permitted");
}
