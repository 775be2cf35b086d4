//! Many lifecycles at once: on distinct ids every one must succeed; on one
//! shared id the operations race, and the state must stay consistent.
//! Either way nothing may be left behind.

mod common;

use common::*;

#[test]
fn concurrent_lifecycles_on_distinct_ids_all_succeed() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    // Long enough to outlive a slow lifecycle: under emulation (tests/vm)
    // a start can come half a minute before its kill.
    bundle.args(&["sleep", "600"]);
    let path = bundle.path().to_str().unwrap().to_string();
    let ids: Vec<String> = (0..24).map(|_| unique_id("many")).collect();
    std::thread::scope(|s| {
        for chunk in ids.chunks(4) {
            let (berth, path) = (&berth, &path);
            s.spawn(move || {
                for id in chunk {
                    berth.ok(&["create", "-b", path, id]);
                    berth.ok(&["start", id]);
                    assert_eq!(berth.status(id), "running");
                    berth.ok(&["kill", id, "KILL"]);
                    berth.wait_status(id, "stopped");
                    berth.ok(&["delete", id]);
                }
            });
        }
    });
    for id in &ids {
        assert_nothing_left(&berth, id, &bundle);
    }
}

#[test]
fn racing_operations_on_one_id_keep_the_state_consistent() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let path = bundle.path().to_str().unwrap().to_string();
    let id = unique_id("shared");
    let ops: [&[&str]; 5] = [
        &["create", "-b", &path, &id],
        &["start", &id],
        &["kill", &id, "KILL"],
        &["delete", &id],
        &["delete", "--force", &id],
    ];
    std::thread::scope(|s| {
        for worker in 0..6 {
            let (berth, ops) = (&berth, &ops);
            s.spawn(move || {
                for round in 0..30 {
                    let out = berth.run(ops[(worker + round) % ops.len()]);
                    // Failures are expected (wrong state, taken id); a
                    // crash or a garbled message is not.
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(out.status.code().is_some(), "berth was killed: {stderr}");
                    assert!(
                        out.status.success() || stderr.starts_with("berth: "),
                        "{stderr}"
                    );
                }
            });
        }
    });
    // Whatever state it ended in, state and the processes agree.
    let state = berth.run(&["state", &id]);
    if state.status.success() {
        let value: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
        let pid = value["pid"].as_i64().unwrap();
        match value["status"].as_str().unwrap() {
            "stopped" => assert_eq!(pid, 0),
            "created" | "running" => {
                assert!(std::path::Path::new(&format!("/proc/{pid}")).exists())
            }
            other => panic!("unexpected status {other}"),
        }
    }
    berth.ok(&["delete", "--force", &id]);
    assert_nothing_left(&berth, &id, &bundle);
}
