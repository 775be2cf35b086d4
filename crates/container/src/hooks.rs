//! OCI hooks: each is run with the container's state on stdin, its own
//! environment, and an optional timeout. Output is captured for the error.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use rustix::event::{PollFd, PollFlags};

use crate::state::OciState;
use crate::{Context, Error, Result};

/// The most output of a failed hook quoted in its error.
const OUTPUT_LIMIT: usize = 4096;

/// Runs `hooks` in order, each with `state` on its stdin; the first failure
/// stops them and is returned.
pub fn run_all(stage: &str, hooks: &[Hook], state: &OciState) -> Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    let state = serde_json::to_string(state).expect("the state serialises");
    for (i, hook) in hooks.iter().enumerate() {
        run_one(hook, &state).ctx(|| format!("hooks.{stage}[{i}] {:?}", hook.path()))?;
    }
    Ok(())
}

/// Runs `hooks` in order; a failure is logged as a warning and the others
/// still run (poststart and poststop).
pub fn run_all_warn(stage: &str, hooks: &[Hook], state: &OciState) {
    if hooks.is_empty() {
        return;
    }
    let state = serde_json::to_string(state).expect("the state serialises");
    for (i, hook) in hooks.iter().enumerate() {
        if let Err(e) = run_one(hook, &state) {
            tracing::warn!("hooks.{stage}[{i}] {:?}: {e}", hook.path());
        }
    }
}

fn run_one(hook: &Hook, state: &str) -> Result<()> {
    let mut cmd = Command::new(hook.path());
    if let Some((arg0, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for var in hook.env().iter().flatten() {
        if let Some((key, value)) = var.split_once('=') {
            cmd.env(key, value);
        }
    }
    let (out_read, out_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ctx(|| "pipe")?;
    let out_write_2: OwnedFd = out_write.try_clone().ctx(|| "dup")?;
    // Its own process group, so that a timeout ends what it started too.
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(out_write))
        .stderr(Stdio::from(out_write_2))
        .process_group(0);
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut child = cmd.spawn().ctx(|| "start")?;
    // Drop our copies of the write end: only the hook holds it now.
    drop(cmd);
    let group =
        rustix::process::Pid::from_raw(child.id() as i32).expect("a child's pid is positive");
    let pidfd = rustix::process::pidfd_open(group, rustix::process::PidfdFlags::empty())
        .ctx(|| "pidfd_open")?;
    // The state goes in from the poll loop, never blocking: a hook that
    // does not read it must not hold berth before the timeout counts.
    let mut stdin: Option<OwnedFd> = child.stdin.take().map(OwnedFd::from);
    if let Some(fd) = &stdin {
        rustix::io::ioctl_fionbio(fd, true).ctx(|| "make the hook's stdin non-blocking")?;
    }
    let mut unsent = state.as_bytes();
    let mut output = Vec::new();
    let mut out_open = true;
    loop {
        let remaining = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(r) => Some(r),
                None => {
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                    let _ = child.wait();
                    return Err(Error::Message(format!(
                        "timed out after {}s{}",
                        hook.timeout().unwrap_or(0),
                        quote(&output)
                    )));
                }
            },
            None => None,
        };
        if unsent.is_empty() {
            // End of file for the hook.
            stdin = None;
        }
        let mut fds = vec![PollFd::new(&pidfd, PollFlags::IN)];
        if out_open {
            fds.push(PollFd::new(&out_read, PollFlags::IN));
        }
        if let Some(fd) = &stdin {
            fds.push(PollFd::new(fd, PollFlags::OUT));
        }
        let timeout = remaining.map(|r| rustix::time::Timespec {
            tv_sec: r.as_secs() as i64,
            tv_nsec: r.subsec_nanos() as i64,
        });
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).ctx(|| "poll"),
        }
        let exited = !fds[0].revents().is_empty();
        let readable = out_open && !fds[1].revents().is_empty();
        let writable = stdin.is_some() && !fds[fds.len() - 1].revents().is_empty();
        drop(fds);
        if writable {
            if let Some(fd) = &stdin {
                match rustix::io::write(fd, unsent) {
                    Ok(n) => unsent = &unsent[n..],
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                    // A hook that does not read its stdin may close it or
                    // exit first; that is no failure of berth's.
                    Err(_) => unsent = &[],
                }
            }
        }
        if readable {
            out_open = read_some(out_read.as_fd(), &mut output);
        }
        if exited {
            // Take what is already written; a daemon the hook left behind may
            // hold the pipe open, so do not wait for its end.
            rustix::io::ioctl_fionbio(&out_read, true).ok();
            while out_open && read_some(out_read.as_fd(), &mut output) {}
            break;
        }
    }
    let status = child.wait().ctx(|| "wait")?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Message(format!("{status}{}", quote(&output))))
    }
}

/// Reads what is available; `false` at end of file (or on error).
fn read_some(fd: std::os::fd::BorrowedFd, output: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    match rustix::io::read(fd, &mut buf) {
        Ok(0) => false,
        Ok(n) => {
            if output.len() < OUTPUT_LIMIT {
                output.extend_from_slice(&buf[..n.min(OUTPUT_LIMIT - output.len())]);
            }
            true
        }
        Err(rustix::io::Errno::INTR) => true,
        Err(_) => false,
    }
}

fn quote(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    fn state() -> OciState {
        serde_json::from_str(
            r#"{"ociVersion":"1.2.0","id":"x","status":"created","pid":1,"bundle":"/b"}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_hook_reads_the_state_and_sees_only_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {0}; echo \"$FOO\" >> {0}"],"env":["FOO=bar"]}}"#,
            out.display()
        ));
        run_all("prestart", &[h], &state()).unwrap();
        let want = serde_json::to_string(&state()).unwrap() + "bar\n";
        assert_eq!(std::fs::read_to_string(out).unwrap(), want);
    }

    #[test]
    fn a_failing_hook_reports_status_and_output() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo broken >&2; exit 3"]}"#);
        let err = run_all("createRuntime", &[h], &state())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("hooks.createRuntime[0] \"/bin/sh\": exit status: 3: broken"),
            "{err}"
        );
    }

    /// A state of more than a pipe's buffer (1 MiB of annotation).
    fn large_state() -> OciState {
        let mut big = state();
        big.annotations.insert("x".into(), "x".repeat(1 << 20));
        big
    }

    #[test]
    fn a_slow_hook_times_out() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 5"],"timeout":1}"#);
        let started = Instant::now();
        let err = run_all("prestart", &[h], &state()).unwrap_err().to_string();
        assert!(err.contains("timed out after 1s"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn a_hook_that_does_not_read_a_large_state_still_times_out() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 5"],"timeout":1}"#);
        let started = Instant::now();
        let err = run_all("prestart", &[h], &large_state())
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out after 1s"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_timeout_ends_what_the_hook_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","sleep 60 & echo $! > {}; wait"],"timeout":1}}"#,
            pid_file.display()
        ));
        let err = run_all("prestart", &[h], &state()).unwrap_err().to_string();
        assert!(err.contains("timed out after 1s"), "{err}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let started = Instant::now();
        // Killed; once its parent is gone it is reaped by whoever adopts it.
        while std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the hook's child {} lives on",
                pid.trim()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_large_state_reaches_a_hook_that_reads_it() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","test $(wc -c) -gt 1048576"]}"#);
        run_all("prestart", &[h], &large_state()).unwrap();
    }

    #[test]
    fn a_hook_that_ignores_stdin_is_fine() {
        let h = hook(r#"{"path":"/bin/true"}"#);
        let mut big = state();
        big.annotations.insert("x".into(), "x".repeat(100_000));
        run_all("poststop", &[h], &big).unwrap();
    }
}
