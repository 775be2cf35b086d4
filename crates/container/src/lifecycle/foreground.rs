//! Waiting in the foreground for a container's process (`run`, `exec`):
//! every signal berth gets is forwarded to it, other children are reaped,
//! and with a terminal berth is the console between its own tty and the
//! container's pty.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::event::{PollFd, PollFlags};
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::termios::{self, OptionalActions};

use crate::{Context, Error, Result};

/// All signals blocked and taken through a signalfd, from before the
/// process exists, so none is lost.
pub struct Foreground {
    signals: OwnedFd,
}

impl Foreground {
    pub fn block_signals() -> Result<Foreground> {
        // SAFETY: signal-set calls on local values; signalfd returns a new
        // descriptor that is owned here.
        unsafe {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigfillset(&mut set);
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) < 0 {
                return Err(std::io::Error::last_os_error()).ctx(|| "sigprocmask");
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).ctx(|| "signalfd");
            }
            Ok(Foreground {
                signals: OwnedFd::from_raw_fd(fd),
            })
        }
    }

    /// Waits until `pid` exits, forwarding signals through `pidfd`, and with
    /// `console` copying between berth's stdio and the pty master. Returns
    /// the exit status (128+N for death by signal N).
    pub fn wait(&self, pid: i32, pidfd: BorrowedFd, console: Option<OwnedFd>) -> Result<i32> {
        let _raw = console
            .as_ref()
            .and_then(|_| RawMode::enter(rustix::stdio::stdin()));
        if let Some(master) = &console {
            copy_window_size(master.as_fd());
        }
        let mut stdin_open = console.is_some();
        let mut master_open = console.is_some();
        loop {
            if let Some(code) = reap(pid)? {
                if let Some(master) = &console {
                    drain(master.as_fd());
                }
                return Ok(code);
            }
            let mut fds = vec![PollFd::new(&self.signals, PollFlags::IN)];
            let stdin = rustix::stdio::stdin();
            if let Some(master) = &console {
                fds.push(PollFd::new(
                    master,
                    if master_open {
                        PollFlags::IN
                    } else {
                        PollFlags::empty()
                    },
                ));
                fds.push(PollFd::new(
                    &stdin,
                    if stdin_open {
                        PollFlags::IN
                    } else {
                        PollFlags::empty()
                    },
                ));
            }
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e).ctx(|| "poll"),
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            if ready[0] {
                self.forward(pidfd, console.as_ref().map(|m| m.as_fd()))?;
            }
            if let Some(master) = &console {
                if ready[1] && master_open {
                    master_open = copy(master.as_fd(), rustix::stdio::stdout());
                }
                if ready[2] && stdin_open {
                    stdin_open = copy(rustix::stdio::stdin(), master.as_fd());
                }
            }
        }
    }

    /// Reads the pending signals: SIGCHLD is left to `reap`, SIGWINCH
    /// resizes the pty, the rest go to the process.
    fn forward(&self, pidfd: BorrowedFd, console: Option<BorrowedFd>) -> Result<()> {
        loop {
            let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
            match rustix::io::read(&self.signals, &mut info) {
                Ok(n) if n == info.len() => {}
                Ok(_) | Err(rustix::io::Errno::AGAIN) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e).ctx(|| "read the signalfd"),
            }
            // SAFETY: the kernel wrote a whole signalfd_siginfo.
            let info: libc::signalfd_siginfo =
                unsafe { std::ptr::read_unaligned(info.as_ptr().cast()) };
            match info.ssi_signo as i32 {
                libc::SIGCHLD => {}
                libc::SIGWINCH if console.is_some() => copy_window_size(console.expect("checked")),
                signal => {
                    let _ = crate::sys::pidfd_signal(pidfd, signal);
                }
            }
        }
    }
}

/// Reaps every exited child; `pid`'s exit status once it is among them.
fn reap(pid: i32) -> Result<Option<i32>> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on any child, without blocking.
        let reaped = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if reaped == 0 {
            return Ok(None);
        }
        if reaped < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ECHILD) {
                return Err(Error::Message(
                    "the container's process is not a child of berth".into(),
                ));
            }
            return Err(err).ctx(|| "waitpid");
        }
        if reaped == pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            return Ok(Some(code));
        }
    }
}

/// Copies what is readable from `from` to `to`; `false` at end of input.
fn copy(from: BorrowedFd, to: BorrowedFd) -> bool {
    let mut buf = [0u8; 8192];
    match rustix::io::read(from, &mut buf) {
        Ok(0) => false,
        Ok(n) => write_all(to, &buf[..n]),
        Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => true,
        // EIO: the pty's last slave is closed.
        Err(_) => false,
    }
}

fn write_all(to: BorrowedFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match rustix::io::write(to, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// What the process printed before it exited.
fn drain(master: BorrowedFd) {
    let _ = rustix::io::ioctl_fionbio(master, true);
    while copy(master, rustix::stdio::stdout()) {
        let mut probe = [PollFd::new(&master, PollFlags::IN)];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if !matches!(rustix::event::poll(&mut probe, Some(&zero)), Ok(n) if n > 0) {
            break;
        }
    }
}

/// Gives the pty the size of berth's own terminal.
fn copy_window_size(master: BorrowedFd) {
    if let Ok(size) = termios::tcgetwinsize(rustix::stdio::stdin()) {
        let _ = termios::tcsetwinsize(master, size);
    }
}

/// berth's own terminal in raw mode while it is the console, restored after.
struct RawMode {
    saved: termios::Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(fd, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// A socket pair for receiving a pty master from the init or an exec'd
/// process, when berth itself is the console.
pub struct ConsoleSocket {
    pub ours: OwnedFd,
    pub theirs: OwnedFd,
}

impl ConsoleSocket {
    pub fn pair() -> Result<ConsoleSocket> {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .ctx(|| "socketpair for the console")?;
        Ok(ConsoleSocket { ours, theirs })
    }

    /// The pty master the other side sent.
    pub fn receive(&self) -> Result<OwnedFd> {
        let mut name = [0u8; 256];
        let (_, fd) =
            crate::sys::recv_fd(self.ours.as_fd(), &mut name).ctx(|| "receive the pty master")?;
        let master =
            fd.ok_or_else(|| Error::Message("no pty master came over the console socket".into()))?;
        // The container's output reaches berth's stdout as it wrote it: no
        // "\n" turned into "\r\n" by the pty (runc clears ONLCR too, and
        // scripts compare the lines they read).
        if let Ok(mut attrs) = termios::tcgetattr(&master) {
            attrs.output_modes.remove(termios::OutputModes::ONLCR);
            let _ = termios::tcsetattr(&master, OptionalActions::Now, &attrs);
        }
        Ok(master)
    }
}
