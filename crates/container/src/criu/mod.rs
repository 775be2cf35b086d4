//! Driving CRIU through its RPC interface: `criu swrk <fd>` is started as
//! berth's child with one end of a SOCK_SEQPACKET socketpair, and berth
//! sends it one protobuf request per packet and reads its answers (and,
//! with notify_scripts, its notifications, which berth acknowledges).
//!
//! The messages are declared in [`rpc`] with prost's derive rather than
//! taken from the rust-criu crate: rust-criu wraps each request in a call
//! that waits for the final answer and so cannot answer notifications
//! (setup-namespaces, post-restore, orphan-pts-master), which restore
//! needs, nor receive the pty master CRIU passes with one.

pub mod rpc;

use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use prost::Message;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::{Context, Error, Result};
use rpc::{req_type, Features, Request, Response};

/// The oldest CRIU berth drives: its RPC answers `version` from 3.0 on.
pub const MIN_VERSION: u32 = 30000;

/// The `criu` binary berth runs: the first in PATH, as for runc.
pub fn binary() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("criu"))
        .find(|candidate| {
            rustix::fs::access(candidate, rustix::fs::Access::EXEC_OK).is_ok()
                && candidate.is_file()
        })
        .ok_or_else(|| {
            Error::Message(format!(
                "CRIU is missing: no executable `criu` in PATH ({}); checkpoint and restore need CRIU {}.{} or later",
                path.to_string_lossy(),
                MIN_VERSION / 10000,
                MIN_VERSION / 100 % 100
            ))
        })
}

/// CRIU's version as one number, major*10000 + minor*100 + sublevel (so
/// 3.17.1 is 31701), as runc counts it.
pub fn version() -> Result<u32> {
    let mut swrk = Swrk::start(&[])?;
    let resp = swrk.call(
        &Request {
            r#type: req_type::VERSION,
            ..Default::default()
        },
        &mut |_, _| Ok(()),
    )?;
    // Done with it: dropping it ends it (criu swrk may wait for another
    // request, and fail once the socket closes).
    drop(swrk);
    let v = resp
        .version
        .ok_or_else(|| Error::Message("criu answered `version` without one".into()))?;
    Ok(
        v.major_number as u32 * 10000
            + v.minor_number as u32 * 100
            + v.sublevel.unwrap_or(0) as u32,
    )
}

/// Fails unless CRIU is at least `min`.
pub fn check_version(min: u32) -> Result<u32> {
    let have = version()?;
    if have < min {
        return Err(Error::Message(format!(
            "CRIU {} is too old: berth needs {} or later",
            dotted(have),
            dotted(min)
        )));
    }
    Ok(have)
}

pub fn dotted(v: u32) -> String {
    format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
}

/// Asks CRIU (and through it the kernel) whether it can do what
/// `wanted` asks for; fails naming each feature that is missing.
pub fn check_features(wanted: &Features) -> Result<()> {
    let mut swrk = Swrk::start(&[])?;
    let resp = swrk.call(
        &Request {
            r#type: req_type::FEATURE_CHECK,
            features: Some(wanted.clone()),
            ..Default::default()
        },
        &mut |_, _| Ok(()),
    )?;
    drop(swrk);
    let have = resp.features.unwrap_or_default();
    let mut missing = Vec::new();
    if wanted.mem_track == Some(true) && have.mem_track != Some(true) {
        missing.push("memory tracking (soft-dirty bits, for --pre-dump and --parent-path)");
    }
    if wanted.lazy_pages == Some(true) && have.lazy_pages != Some(true) {
        missing.push("lazy pages (userfaultfd, for --lazy-pages)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Message(format!(
            "CRIU or this kernel lacks {}",
            missing.join(" and ")
        )))
    }
}

/// A running `criu swrk`, killed and reaped if dropped unfinished.
pub struct Swrk {
    socket: OwnedFd,
    child: Option<Child>,
}

/// What berth does on a notification: the script's name, the pid it
/// concerns, and the fd CRIU sent with it.
pub type OnNotify<'a> = dyn FnMut(&rpc::Notify, Option<OwnedFd>) -> Result<()> + 'a;

impl Swrk {
    /// Starts `criu swrk`; `keep` are fds it inherits under their own
    /// numbers (berth's stdio is inherited as well).
    pub fn start(keep: &[BorrowedFd]) -> Result<Swrk> {
        let criu = binary()?;
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .ctx(|| "socketpair for criu")?;
        let inherited: Vec<i32> = keep
            .iter()
            .map(|fd| fd.as_raw_fd())
            .chain([theirs.as_raw_fd()])
            .collect();
        let mut cmd = Command::new(&criu);
        cmd.arg("swrk").arg(theirs.as_raw_fd().to_string());
        // SAFETY: only fcntl(2) between fork and exec, on fds this process
        // owns and keeps open until the child is spawned.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &inherited {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .ctx(|| format!("start {} swrk", criu.display()))?;
        drop(theirs);
        Ok(Swrk {
            socket: ours,
            child: Some(child),
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends `req` and reads answers until the one to it, acknowledging
    /// each notification after `on_notify` has handled it.
    pub fn call(&mut self, req: &Request, on_notify: &mut OnNotify) -> Result<Response> {
        let what = req_type::name(req.r#type);
        self.send(req)
            .ctx(|| format!("send the {what} request to criu"))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, fd) = crate::sys::recv_fd(self.socket.as_fd(), &mut buf)
                .ctx(|| format!("read criu's answer to {what}"))?;
            if n == 0 {
                return Err(Error::Message(format!(
                    "criu exited before it answered the {what} request"
                )));
            }
            let resp = Response::decode(&buf[..n])
                .map_err(|e| Error::Message(format!("criu's answer to {what}: {e}")))?;
            if !resp.success {
                let detail = resp
                    .cr_errmsg
                    .clone()
                    .filter(|m| !m.is_empty())
                    .or_else(|| resp.cr_errno.map(crate::errno_text))
                    .unwrap_or_else(|| "no reason given".into());
                return Err(Error::Message(format!("criu {what} failed: {detail}")));
            }
            if resp.r#type != req_type::NOTIFY {
                return Ok(resp);
            }
            let notify = resp.notify.unwrap_or_default();
            on_notify(&notify, fd)?;
            self.send(&Request {
                r#type: req_type::NOTIFY,
                notify_success: Some(true),
                ..Default::default()
            })
            .ctx(|| "acknowledge criu's notification")?;
        }
    }

    fn send(&self, req: &Request) -> rustix::io::Result<()> {
        rustix::net::send(
            &self.socket,
            &req.encode_to_vec(),
            rustix::net::SendFlags::NOSIGNAL,
        )
        .map(drop)
    }

    /// Lets criu exit and reaps it; fails if it did not exit cleanly.
    pub fn finish(mut self) -> Result<()> {
        let _ = rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Write);
        let mut child = self.child.take().expect("finished once");
        let status = child.wait().ctx(|| "wait for criu")?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Message(format!("criu swrk exited with {status}")))
        }
    }
}

impl Drop for Swrk {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last lines of a CRIU log that say "Error", with the log's path, for
/// an error message: CRIU's own answer rarely says more than "failed".
pub fn log_errors(log: &Path) -> String {
    let Ok(file) = std::fs::File::open(log) else {
        return format!("(no log at {})", log.display());
    };
    let errors: Vec<String> = BufReader::new(file)
        .lines()
        .map_while(std::result::Result::ok)
        .filter(|l| l.contains("Error"))
        .collect();
    let tail = &errors[errors.len().saturating_sub(5)..];
    if tail.is_empty() {
        format!("(see {})", log.display())
    } else {
        format!("{} says:\n  {}", log.display(), tail.join("\n  "))
    }
}

/// Opens a directory for CRIU to inherit.
pub(crate) fn open_dir(path: &Path, what: &str) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ctx(|| format!("{what} {}", path.display()))
}
