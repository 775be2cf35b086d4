//! CDI devices from a fake vendor: spec files written here whose device
//! nodes are test-made device files, requested by annotation or by
//! NVIDIA_VISIBLE_DEVICES, checked from inside the container; and `berth
//! cdi generate` on a fake NVIDIA host tree.

mod common;

use std::ffi::CString;
use std::path::Path;

use common::*;
use serde_json::json;

/// Spec directories of a test's own: etc (low priority), run (high).
struct SpecDirs {
    dir: tempfile::TempDir,
}

impl SpecDirs {
    fn new() -> SpecDirs {
        SpecDirs {
            dir: tempfile::Builder::new()
                .prefix("berth-cdi-")
                .tempdir()
                .unwrap(),
        }
    }
    fn etc(&self) -> std::path::PathBuf {
        self.dir.path().join("etc")
    }
    fn run(&self) -> std::path::PathBuf {
        self.dir.path().join("run")
    }
    fn flag(&self) -> String {
        format!("{},{}", self.etc().display(), self.run().display())
    }
    fn write(&self, dir: &Path, file: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }
    /// A device file under the test's dir.
    fn node(&self, name: &str, block: bool, major: u32, minor: u32, mode: u32) -> String {
        let path = self.dir.path().join(name);
        let c = CString::new(path.to_str().unwrap()).unwrap();
        let kind = if block { libc::S_IFBLK } else { libc::S_IFCHR };
        let dev = libc::makedev(major, minor);
        assert_eq!(
            unsafe { libc::mknod(c.as_ptr(), kind | mode, dev) },
            0,
            "mknod {name}"
        );
        unsafe { libc::chmod(c.as_ptr(), mode) };
        path.display().to_string()
    }
}

/// `berth --cdi-spec-dirs ... run` of the bundle; nothing may be left.
fn run_with(dirs: &SpecDirs, bundle: &Bundle) -> Ran {
    run_with_flags(bundle, &["--cdi-spec-dirs", &dirs.flag()])
}

fn run_ok_with(dirs: &SpecDirs, bundle: &Bundle) -> String {
    let ran = run_with(dirs, bundle);
    assert_eq!(
        ran.code, 0,
        "the container failed: {}{}",
        ran.stdout, ran.stderr
    );
    ran.stdout
}

fn request(bundle: &mut Bundle, names: &str) {
    bundle.edit(|c| c["annotations"] = json!({"cdi.k8s.io/test": names}));
}

#[test]
fn every_edit_of_an_annotated_device_is_applied() {
    let dirs = SpecDirs::new();
    let null = dirs.node("null", false, 1, 3, 0o666);
    unsafe { libc::chown(CString::new(null.as_str()).unwrap().as_ptr(), 1234, 2345) };
    // Numbers no default rule allows and no driver serves (1:12, once
    // /dev/oldmem): opening it fails with ENXIO where the cgroup allows it.
    let tun = dirs.node("tun", false, 1, 12, 0o666);
    let shared = dirs.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("file"), "vendor data").unwrap();
    let hook_log = dirs.dir.path().join("hook.log");
    // YAML, spec-level and device-level edits.
    let yaml = format!(
        r#"cdiVersion: 0.7.0
kind: vendor.test/dev
containerEdits:
  env: [COMMON=spec, PATH=/bin:/sbin]
  mounts:
  - {{hostPath: {shared}, containerPath: /vendor/data, options: [ro, bind]}}
  hooks:
  - {{hookName: createRuntime, path: /bin/sh, args: [sh, -c, "cat > {log}"]}}
  additionalGids: [4242, 0]
devices:
- name: a
  containerEdits:
    env: [DEV=a]
    deviceNodes:
    - {{path: /dev/vendor/null, hostPath: {null}}}
    - {{path: /dev/vendor/tun, hostPath: {tun}, permissions: r}}
- name: b
  containerEdits:
    env: [DEV=b]
"#,
        shared = shared.display(),
        log = hook_log.display(),
    );
    dirs.write(&dirs.etc(), "vendor.yaml", &yaml);
    let mut bundle = Bundle::new();
    request(&mut bundle, "vendor.test/dev=a");
    bundle.sh("echo env $COMMON $DEV $PATH; \
         stat -c 'null %t:%T %a %u:%g' /dev/vendor/null; \
         echo x > /dev/vendor/null && echo null writable; \
         stat -c 'tun %F %t:%T' /dev/vendor/tun; \
         cat /dev/vendor/tun 2>&1 | grep -c 'not permitted'; \
         (echo x > /dev/vendor/tun) 2>&1 | grep -c 'not permitted'; \
         cat /vendor/data/file; echo; id -G");
    let out = run_ok_with(&dirs, &bundle);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "env spec a /bin:/sbin", "{out}");
    // Type and numbers, mode and owner come from the host node.
    assert_eq!(lines[1], "null 1:3 666 1234:2345", "{out}");
    assert_eq!(lines[2], "null writable", "{out}");
    assert_eq!(lines[3], "tun character special file 1:c", "{out}");
    // The device cgroup lets the container read it, as permissions say,
    // and not write it.
    assert_eq!(lines[4], "0", "{out}");
    assert_eq!(lines[5], "1", "{out}");
    assert_eq!(lines[6], "vendor data", "{out}");
    assert!(lines[7].split(' ').any(|g| g == "4242"), "{out}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&hook_log).unwrap()).unwrap();
    assert_eq!(
        state["annotations"]["cdi.k8s.io/test"], "vendor.test/dev=a",
        "{state}"
    );
}

#[test]
fn a_later_spec_directory_overrides_an_earlier_one() {
    let dirs = SpecDirs::new();
    let spec = |who: &str| {
        format!(
            r#"{{"cdiVersion":"0.6.0","kind":"vendor.test/dev","devices":[{{"name":"x","containerEdits":{{"env":["WHO={who}"]}}}},{{"name":"{who}-only","containerEdits":{{"env":["ONLY={who}"]}}}}]}}"#
        )
    };
    dirs.write(&dirs.etc(), "a.json", &spec("etc"));
    dirs.write(&dirs.run(), "a.json", &spec("run"));
    let mut bundle = Bundle::new();
    request(&mut bundle, "vendor.test/dev=x,vendor.test/dev=etc-only");
    bundle.sh("echo $WHO $ONLY");
    assert_eq!(run_ok_with(&dirs, &bundle).trim(), "run etc");
}

/// A fake NVIDIA host: two GPUs, control nodes, a library, nvidia-smi.
fn fake_nvidia_host(dirs: &SpecDirs) -> std::path::PathBuf {
    let root = dirs.dir.path().join("host");
    for d in [
        "dev",
        "usr/bin",
        "usr/local/nvidia/lib64",
        "proc/driver/nvidia/gpus/0000:01:00.0",
        "proc/driver/nvidia/gpus/0000:02:00.0",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for (name, minor) in [
        ("nvidia0", 3),
        ("nvidia1", 5),
        ("nvidiactl", 7),
        ("nvidia-uvm", 9),
    ] {
        // Numbers of harmless host devices (null, zero, full, urandom).
        dirs.node(&format!("host/dev/{name}"), false, 1, minor, 0o666);
    }
    for (pci, minor, uuid) in [
        ("0000:01:00.0", 0, "GPU-aaaa"),
        ("0000:02:00.0", 1, "GPU-bbbb"),
    ] {
        std::fs::write(
            root.join(format!("proc/driver/nvidia/gpus/{pci}/information")),
            format!("Model: \t\t Fake H100\nIRQ:   \t\t 42\nGPU UUID: \t {uuid}\nDevice Minor: \t {minor}\n"),
        )
        .unwrap();
    }
    std::fs::write(
        root.join("usr/local/nvidia/lib64/libnvidia-ml.so.1"),
        "fake library",
    )
    .unwrap();
    std::fs::write(
        root.join("usr/local/nvidia/lib64/libfoo.so.1"),
        "not the driver's",
    )
    .unwrap();
    let smi = root.join("usr/bin/nvidia-smi");
    std::fs::write(
        &smi,
        "#!/bin/sh\necho GPU 0: Fake H100; ls /dev | grep nvidia | tr '\\n' ' '\n",
    )
    .unwrap();
    std::fs::set_permissions(&smi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    root
}

#[test]
fn generate_then_request_gpus_by_annotation_and_by_env() {
    let dirs = SpecDirs::new();
    let host = fake_nvidia_host(&dirs);
    let berth = Berth::new();
    let output = dirs.run().join("nvidia.yaml");
    berth.ok(&[
        "cdi",
        "generate",
        "--host-root",
        host.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let flag = dirs.flag();
    let listed = berth.ok(&["--cdi-spec-dirs", &flag, "cdi", "list"]);
    let names: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "nvidia.com/gpu=0",
            "nvidia.com/gpu=1",
            "nvidia.com/gpu=GPU-aaaa",
            "nvidia.com/gpu=GPU-bbbb",
            "nvidia.com/gpu=all"
        ],
        "{listed}"
    );
    let spec = std::fs::read_to_string(&output).unwrap();
    assert!(!spec.contains("libfoo"), "{spec}");

    let script = "nvidia-smi; cat /usr/local/nvidia/lib64/libnvidia-ml.so.1";
    let mut bundle = Bundle::new();
    request(&mut bundle, "nvidia.com/gpu=all");
    bundle.sh(script);
    assert_eq!(
        run_ok_with(&dirs, &bundle),
        "GPU 0: Fake H100\nnvidia-uvm nvidia0 nvidia1 nvidiactl fake library"
    );

    for (visible, nodes) in [
        ("1", "nvidia-uvm nvidia1 nvidiactl "),
        ("GPU-aaaa", "nvidia-uvm nvidia0 nvidiactl "),
    ] {
        let mut bundle = Bundle::new();
        bundle.edit(|c| {
            c["process"]["env"]
                .as_array_mut()
                .unwrap()
                .push(json!(format!("NVIDIA_VISIBLE_DEVICES={visible}")))
        });
        bundle.sh("nvidia-smi | tail -1");
        assert_eq!(
            run_ok_with(&dirs, &bundle).trim_end_matches('\n'),
            nodes,
            "{visible}"
        );
    }

    // Without a request: no GPU, no driver files.
    let mut bundle = Bundle::new();
    bundle.sh("ls /dev | grep -c nvidia; test -e /usr/bin/nvidia-smi || echo no smi");
    let ran = run_with(&dirs, &bundle);
    assert_eq!(ran.stdout, "0\nno smi\n", "{}", ran.stderr);
}

#[test]
fn nvidia_env_on_a_host_without_gpus_injects_nothing() {
    // NVIDIA's images set NVIDIA_VISIBLE_DEVICES=all; on a host with no
    // GPU and no spec for one they still run (this VM has no GPU).
    assert!(!Path::new("/dev/nvidiactl").exists());
    let dirs = SpecDirs::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("NVIDIA_VISIBLE_DEVICES=all"))
    });
    bundle.sh("echo ran");
    assert_eq!(run_ok_with(&dirs, &bundle), "ran\n");
}

#[test]
fn bad_cdi_input_fails_create_naming_the_file_or_device() {
    let dirs = SpecDirs::new();
    let null = dirs.node("null", false, 1, 3, 0o666);
    let good = format!(
        r#"{{"cdiVersion":"0.6.0","kind":"vendor.test/dev","devices":[
            {{"name":"a","containerEdits":{{"deviceNodes":[{{"path":"/dev/vendor/x","hostPath":"{null}"}}]}}}},
            {{"name":"b","containerEdits":{{"deviceNodes":[{{"path":"/dev/vendor/x","type":"c","major":1,"minor":5}}]}}}},
            {{"name":"c","containerEdits":{{"deviceNodes":[{{"path":"/dev/vendor/y","hostPath":"/nonexistent/node"}}]}}}}]}}"#
    );
    dirs.write(&dirs.etc(), "good.json", &good);
    // (requested names, an extra spec file, what the error must say)
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: Vec<Case> = vec![
        (
            "vendor.test/dev=nope",
            None,
            &["vendor.test/dev=nope", "no CDI spec"],
        ),
        (
            "vendor.test/dev=a,vendor.test/dev=b",
            None,
            &[
                "conflicting device node",
                "/dev/vendor/x",
                "vendor.test/dev=b",
            ],
        ),
        (
            "vendor.test/dev=c",
            None,
            &["/nonexistent/node", "vendor.test/dev=c"],
        ),
        (
            "vendor.test/dev",
            None,
            &["cdi.k8s.io/test", "not a CDI device name"],
        ),
        (
            "vendor.test/dev=a",
            Some(("broken.json", "{\"cdiVersion\": ")),
            &["broken.json", "malformed JSON"],
        ),
        (
            "vendor.test/dev=a",
            Some((
                "twice.json",
                r#"{"cdiVersion":"0.6.0","kind":"vendor.test/dev","devices":[{"name":"a"}]}"#,
            )),
            &["vendor.test/dev=a", "good.json", "twice.json"],
        ),
    ];
    for (names, extra, expected) in cases {
        if let Some((file, text)) = extra {
            dirs.write(&dirs.etc(), file, text);
        }
        let mut bundle = Bundle::new();
        request(&mut bundle, names);
        bundle.sh("true");
        let ran = run_with(&dirs, &bundle);
        assert_ne!(ran.code, 0, "{names} ran");
        for e in expected {
            assert!(
                ran.stderr.contains(e),
                "{names}: {e:?} not in {}",
                ran.stderr
            );
        }
        if let Some((file, _)) = extra {
            std::fs::remove_file(dirs.etc().join(file)).unwrap();
        }
    }
}

#[test]
fn spec_keys_match_in_any_case_and_null_is_absent_as_in_the_reference() {
    let dirs = SpecDirs::new();
    // As Go's encoding/json decodes: keys in any case, null for nothing;
    // and a YAML document in a .json file.
    dirs.write(
        &dirs.etc(),
        "a.json",
        r#"{"CdiVersion":"0.6.0","KIND":"vendor.test/dev","Devices":[{"Name":"x",
            "ContainerEdits":{"Env":["FROM=json"],"hooks":null}}]}"#,
    );
    dirs.write(
        &dirs.etc(),
        "b.json",
        "cdiversion: 0.6.0\nkind: vendor.test/yaml\ndevices:\n- name: y\n  containeredits:\n    ENV: [FROM2=yaml]\n",
    );
    let mut bundle = Bundle::new();
    request(&mut bundle, "vendor.test/dev=x,vendor.test/yaml=y");
    bundle.sh("echo $FROM $FROM2");
    assert_eq!(run_ok_with(&dirs, &bundle).trim(), "json yaml");
    // An unknown key is still an error, naming the file.
    dirs.write(
        &dirs.run(),
        "c.json",
        r#"{"cdiVersion":"0.6.0","kind":"vendor.test/bad","devices":[{"name":"z","bogus":1}]}"#,
    );
    request(&mut bundle, "vendor.test/bad=z");
    let ran = run_with(&dirs, &bundle);
    assert_ne!(ran.code, 0);
    assert!(ran.stderr.contains("c.json"), "{}", ran.stderr);
    assert!(ran.stderr.contains("unknown field"), "{}", ran.stderr);
}
