//! Bad input: a clear error naming what is wrong, a non-zero exit, and
//! nothing created or left behind.

mod common;

use common::*;
use serde_json::json;

/// Runs `create` of `bundle` as `id`, expects failure, checks nothing was
/// left, and returns stderr.
fn create_fails(bundle: &Bundle, id: &str) -> String {
    let berth = Berth::new();
    let err = berth.fails(&["create", "--bundle", bundle.path().to_str().unwrap(), id]);
    assert_nothing_left(&berth, id, bundle);
    let leftovers: Vec<_> = std::fs::read_dir(berth.root())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "the state root holds {leftovers:?}");
    err
}

#[test]
fn invalid_ids_are_refused() {
    let bundle = Bundle::new();
    let long = "x".repeat(1025);
    for id in ["../x", "/", "a/b", "..", "white space", long.as_str()] {
        let err = create_fails(&bundle, id);
        assert!(err.contains("invalid container id"), "{id}: {err}");
    }
    let berth = Berth::new();
    let err = berth.fails(&["create", "--bundle", bundle.path().to_str().unwrap(), ""]);
    assert!(err.contains("invalid container id"), "{err}");
}

#[test]
fn a_duplicate_id_is_refused_and_the_first_container_is_untouched() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let c = Container::create(&berth, &bundle, &[]);
    let err = berth.fails(&["create", "--bundle", bundle.path().to_str().unwrap(), &c.id]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(berth.status(&c.id), "created");
}

#[test]
fn malformed_config_json_is_reported() {
    let bundle = Bundle::new();
    std::fs::write(bundle.path().join("config.json"), "{\"ociVersion\": ").unwrap();
    let err = create_fails(&bundle, &unique_id("malformed"));
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn a_missing_config_json_is_reported() {
    let bundle = Bundle::new();
    std::fs::remove_file(bundle.path().join("config.json")).unwrap();
    let err = create_fails(&bundle, &unique_id("noconfig"));
    assert!(
        err.contains("config.json: no such file or directory"),
        "{err}"
    );
}

#[test]
fn incomplete_or_wrongly_typed_fields_are_named() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["process"].as_object_mut().unwrap().remove("cwd");
    });
    let err = create_fails(&bundle, &unique_id("nocwd"));
    assert!(err.contains("process") && err.contains("cwd"), "{err}");
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["process"]["capabilities"]["bounding"] = json!([7]));
    let err = create_fails(&bundle, &unique_id("badcap"));
    assert!(err.contains("process.capabilities.bounding[0]"), "{err}");
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["process"]["args"] = json!("sh"));
    let err = create_fails(&bundle, &unique_id("badargs"));
    assert!(err.contains("process.args"), "{err}");
}

#[test]
fn an_unsupported_oci_version_is_refused() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["ociVersion"] = json!("2.0.0"));
    let err = create_fails(&bundle, &unique_id("version"));
    assert!(err.contains("ociVersion") && err.contains("2.0.0"), "{err}");
}

#[test]
fn a_missing_rootfs_is_reported() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["root"]["path"] = json!("no-such-rootfs"));
    let err = create_fails(&bundle, &unique_id("norootfs"));
    assert!(
        err.contains("root.path") && err.contains("no such file or directory"),
        "{err}"
    );
}

#[test]
fn a_missing_executable_is_reported_as_runc_words_it() {
    let mut bundle = Bundle::new();
    bundle.args(&["no-such-program"]);
    let err = create_fails(&bundle, &unique_id("noexec"));
    assert!(
        err.contains("exec: \"no-such-program\": executable file not found in $PATH"),
        "{err}"
    );
    bundle.args(&["/bin/no-such-program"]);
    let err = create_fails(&bundle, &unique_id("noexec"));
    assert!(
        err.contains("stat /bin/no-such-program: no such file or directory"),
        "{err}"
    );
    bundle.args(&["/etc/passwd"]);
    let err = create_fails(&bundle, &unique_id("noexec"));
    assert!(err.contains("permission denied"), "{err}");
}

#[test]
fn a_mount_that_fails_halfway_undoes_everything() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.insert(
            3,
            json!({"destination": "/broken", "type": "no-such-filesystem", "source": "none"}),
        );
    });
    let err = create_fails(&bundle, &unique_id("badmount"));
    assert!(err.contains("mounts[3].destination \"/broken\""), "{err}");
    assert!(err.contains("no such device"), "{err}");
}

#[test]
fn a_bind_mount_of_a_missing_source_names_it() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]}));
    });
    let err = create_fails(&bundle, &unique_id("badbind"));
    assert!(
        err.contains("/no/such/dir") && err.contains("no such file or directory"),
        "{err}"
    );
}

#[test]
fn impossible_namespace_settings_are_refused() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "uts");
    });
    let err = create_fails(&bundle, &unique_id("nouts"));
    assert!(err.contains("hostname"), "{err}");
    // The index is the entry's: `berth spec` lists one namespace more on
    // cgroup v2 hosts.
    let mut bundle = Bundle::new();
    let mut last = 0;
    bundle.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "network", "path": "/no/such/ns"}));
        last = ns.len() - 1;
    });
    let err = create_fails(&bundle, &unique_id("dupns"));
    assert!(err.contains(&format!("linux.namespaces[{last}]")), "{err}");
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "network", "path": "/no/such/ns"}));
        last = ns.len() - 1;
    });
    let err = create_fails(&bundle, &unique_id("nons"));
    assert!(
        err.contains(&format!("linux.namespaces[{last}].path \"/no/such/ns\"")),
        "{err}"
    );
}

#[test]
fn a_namespace_path_of_the_wrong_type_is_refused() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "network", "path": "/proc/self/ns/ipc"}));
    });
    let err = create_fails(&bundle, &unique_id("wrongns"));
    assert!(
        err.contains("setns") && err.contains("invalid argument"),
        "{err}"
    );
}

#[test]
fn a_failing_create_hook_fails_create_and_leaves_nothing() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 7"]}]});
    });
    let err = create_fails(&bundle, &unique_id("hook"));
    assert!(
        err.contains("hooks.createRuntime[0]")
            && err.contains("exit status: 7")
            && err.contains("nope"),
        "{err}"
    );
}

#[test]
fn a_terminal_without_a_console_socket_is_refused() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["process"]["terminal"] = json!(true));
    let err = create_fails(&bundle, &unique_id("tty"));
    assert!(err.contains("process.terminal"), "{err}");
}

#[test]
fn a_bad_cgroups_path_is_refused() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| c["linux"]["cgroupsPath"] = json!("/../../escape"));
    let err = create_fails(&bundle, &unique_id("cgpath"));
    assert!(err.contains("linux.cgroupsPath"), "{err}");
}

#[test]
fn operations_on_a_missing_container_fail() {
    let berth = Berth::new();
    for args in [
        ["start", "nope"],
        ["state", "nope"],
        ["kill", "nope"],
        ["delete", "nope"],
    ] {
        let err = berth.fails(&args);
        assert!(err.contains("\"nope\" does not exist"), "{args:?}: {err}");
    }
}
