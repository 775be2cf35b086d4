//! The command line itself: version, spec, features, logs.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn version_prints_runc_style_lines() {
    let out = std::process::Command::new(BERTH)
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("berth version "), "{text}");
    assert!(lines[1].starts_with("commit: "));
    assert_eq!(lines[2], "spec: 1.3.0");
}

#[test]
fn spec_writes_a_config_once_and_a_rootless_one_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let berth = Berth::new();
    berth.ok(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["ociVersion"], "1.3.0");
    assert_eq!(config["process"]["args"][0], "sh");
    let err = berth.fails(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert!(err.contains("config.json"), "{err}");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    berth.ok(&[
        "spec",
        "--rootless",
        "--bundle",
        dir.path().to_str().unwrap(),
    ]);
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let types: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"user") && !types.contains(&"network"));
}

#[test]
fn features_describe_what_is_supported() {
    let features: Value = serde_json::from_str(&Berth::new().ok(&["features"])).unwrap();
    assert_eq!(features["ociVersionMax"], "1.3.0");
    let hooks: Vec<&str> = features["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert_eq!(hooks.len(), 6);
    let namespaces = features["linux"]["namespaces"].as_array().unwrap();
    assert!(namespaces.iter().any(|n| n == "time"));
    assert!(features["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "rro"));
    assert_eq!(features["linux"]["cgroup"]["systemd"], true);
    assert!(features["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "CAP_SYS_ADMIN"));
    let annotations = &features["annotations"];
    assert_eq!(annotations["io.github.berth.checkpoint.enabled"], "true");
    // CRIU's version where it is installed, else why it is unavailable.
    let criu = annotations["io.github.berth.checkpoint.criu"]
        .as_str()
        .unwrap();
    assert!(
        criu.starts_with("unavailable: ") || criu.starts_with('3') || criu.starts_with('4'),
        "{criu}"
    );
}

#[test]
fn errors_go_to_the_json_log_as_engines_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let berth = Berth::new();
    let err = berth.fails(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        "missing",
    ]);
    assert!(err.contains("does not exist"));
    let text = std::fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container \"missing\" does not exist");
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn preserve_fds_must_name_open_descriptors() {
    let bundle = Bundle::new();
    let berth = Berth::new();
    let err = berth.fails(&[
        "create",
        "--preserve-fds",
        "40",
        "-b",
        bundle.path().to_str().unwrap(),
        "pfd",
    ]);
    assert!(err.contains("--preserve-fds 40: fd"), "{err}");
}

#[test]
fn errors_on_stderr_carry_the_word_error() {
    let berth = Berth::new();
    let err = berth.fails(&["state", "missing"]);
    assert_eq!(err, "berth: error: container \"missing\" does not exist\n");
    // JSON logging without a log file: the error is a JSON line on stderr.
    let err = berth.fails(&["--log-format", "json", "state", "missing"]);
    let line: Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container \"missing\" does not exist");
}

#[test]
fn rootless_takes_runcs_values() {
    let berth = Berth::new();
    for value in ["auto", "true", "false", "1", "FALSE"] {
        let err = berth.fails(&["--rootless", value, "state", "missing"]);
        assert!(err.contains("does not exist"), "--rootless {value}: {err}");
    }
    let err = berth.fails(&["--rootless", "maybe", "state", "missing"]);
    assert!(err.contains("is not true, false or auto"), "{err}");
    let mut bundle = Bundle::new();
    bundle.args(&["true"]);
    for value in ["true", "false"] {
        let ran = run_with_flags(&bundle, &["--rootless", value]);
        assert_eq!(ran.code, 0, "--rootless {value}: {}", ran.stderr);
    }
}

#[test]
fn debug_log_names_the_setup_stages_as_runc_does() {
    let mut bundle = Bundle::new();
    bundle.args(&["true"]);
    let ran = run_with_flags(&bundle, &["--debug"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    for stage in [
        "level=debug",
        "nsexec container setup",
        "child process in init()",
        "init: closing the pipe to signal completion",
    ] {
        assert!(
            ran.stderr.contains(stage),
            "{stage:?} missing: {}",
            ran.stderr
        );
    }
    let ran = run_with_flags(&bundle, &[]);
    assert!(!ran.stderr.contains("level=debug"), "{}", ran.stderr);
    let berth = Berth::new();
    bundle.args(&["sleep", "100"]);
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let out = berth.run(&["--debug", "exec", &c.id, "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("setns_init: about to exec"), "{stderr}");
}
