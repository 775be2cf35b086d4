//! Terminals: the pty made inside the container, handed over a console
//! socket, and berth as the console of an interactive `run` and `exec`.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Reads from the pty master until `want` appears (or panics after 10 s).
fn read_until(master: &mut std::fs::File, want: &str) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    while !seen.contains(want) {
        assert!(
            Instant::now() < deadline,
            "never saw {want:?}; saw {seen:?}"
        );
        match master.read(&mut buf) {
            Ok(0) => panic!("the pty closed before {want:?}; saw {seen:?}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) => panic!("reading the pty: {e}; saw {seen:?}"),
        }
    }
    seen
}

#[test]
fn the_console_socket_receives_a_pty_made_inside_the_container() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    });
    bundle.sh("tty; stty size; readlink /proc/self/fd/0; read line; echo got:$line");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("console.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let id = unique_id("console");
    let receiver = ok_receiving_fd(
        &berth,
        &listener,
        &[
            "create",
            "--console-socket",
            socket.to_str().unwrap(),
            "-b",
            bundle.path().to_str().unwrap(),
            &id,
        ],
    )
    .0;
    let _guard = Container {
        berth: &berth,
        id: id.clone(),
    };
    let mut master = std::fs::File::from(receiver);
    berth.ok(&["start", &id]);
    let seen = read_until(&mut master, "/dev/pts/0\r\n30 100\r\n/dev/pts/0");
    assert!(seen.starts_with("/dev/pts/0"), "{seen:?}");
    master.write_all(b"typed\n").unwrap();
    read_until(&mut master, "got:typed");
    berth.wait_status(&id, "stopped");
}

#[test]
fn an_interactive_run_works_from_a_real_terminal() {
    let mut bundle = Bundle::new();
    bundle.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!(["sh"]);
    });
    let berth = Berth::new();
    let id = unique_id("script");
    let command = format!(
        "{BERTH} --root {} run -b {} {id}",
        berth.root().display(),
        bundle.path().display()
    );
    let mut script = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    script
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo inside $(hostname) on $(tty); exit 5\n")
        .unwrap();
    let out = script.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("inside berth on /dev/pts/0"), "{text}");
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert_nothing_left(&berth, &id, &bundle);
}

#[test]
fn exec_gets_a_pty_of_its_own() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("exec.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let master = ok_receiving_fd(
        &berth,
        &listener,
        &[
            "exec",
            "-t",
            "-d",
            "--console-socket",
            socket.to_str().unwrap(),
            &c.id,
            "sh",
            "-c",
            "tty; read x; echo got:$x",
        ],
    )
    .0;
    let mut master = std::fs::File::from(master);
    read_until(&mut master, "/dev/pts/");
    master.write_all(b"hi\n").unwrap();
    read_until(&mut master, "got:hi");
}

#[test]
fn exec_tty_takes_the_process_console_size() {
    let berth = Berth::new();
    let mut bundle = Bundle::new();
    bundle.args(&["sleep", "30"]);
    let c = Container::create(&berth, &bundle, &[]);
    berth.ok(&["start", &c.id]);
    let dir = tempfile::tempdir().unwrap();
    let process = dir.path().join("process.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&json!({
            "terminal": true,
            "consoleSize": {"height": 25, "width": 90},
            "args": ["sh", "-c", "stty size; read x"],
            "cwd": "/"
        }))
        .unwrap(),
    )
    .unwrap();
    let socket = dir.path().join("exec.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let master = ok_receiving_fd(
        &berth,
        &listener,
        &[
            "exec",
            "-d",
            "--console-socket",
            socket.to_str().unwrap(),
            "-p",
            process.to_str().unwrap(),
            &c.id,
        ],
    )
    .0;
    let mut master = std::fs::File::from(master);
    read_until(&mut master, "25 90");
    master.write_all(b"\n").unwrap();
}
