//! The socket between berth and a child it cloned into a container (the
//! init, or an exec'd process): one SOCK_SEQPACKET pair carrying small typed
//! messages (JSON), errors included as values.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::state::OciState;
use crate::{sys, Context, Error, Result};

/// From berth to the child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// The id maps are written (and for an exec'd process, it is in its
    /// cgroup): the child may go on. (The init's cgroup may still be getting
    /// ready meanwhile: see `CgroupReady`.)
    Go,
    /// The init is in its cgroup and the limits are written. The init
    /// waits for this before the create hooks and anything of the user's.
    CgroupReady,
    /// The runtime-namespace create hooks ran; `state` is what the init's own
    /// create hooks get on stdin.
    HooksDone { state: OciState },
    /// The container is recorded as created. `state` is for the
    /// startContainer hooks.
    Committed { state: OciState },
}

/// From the child to berth.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromChild {
    /// A second fork was needed; this is the real init (in berth's pid
    /// namespace), and the process berth cloned is about to exit.
    Forked {
        pid: i32,
    },
    /// The mounts are done: run prestart and createRuntime hooks.
    RunHooks,
    /// The seccomp listener (SCMP_ACT_NOTIFY) comes with this message, for
    /// berth to hand to linux.seccomp.listenerPath.
    SeccompListener,
    /// Everything is set up; the init waits for `start`.
    Ready,
    Failed(Error),
}

pub struct Channel {
    socket: OwnedFd,
    /// An fd that came with the last message received.
    received_fd: std::cell::RefCell<Option<OwnedFd>>,
}

impl Channel {
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .ctx(|| "socketpair")?;
        let channel = |socket| Channel {
            socket,
            received_fd: Default::default(),
        };
        Ok((channel(a), channel(b)))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    pub fn send<T: Serialize>(&self, message: &T) -> Result<()> {
        let bytes = serde_json::to_vec(message)
            .map_err(|e| Error::Message(format!("encode message: {e}")))?;
        // MSG_NOSIGNAL: a peer that died must give EPIPE, not SIGPIPE.
        rustix::net::send(&self.socket, &bytes, SendFlags::NOSIGNAL)
            .ctx(|| "send to the other side")?;
        Ok(())
    }

    /// Sends a message with an fd attached (SCM_RIGHTS).
    pub fn send_with_fd<T: Serialize>(&self, message: &T, fd: BorrowedFd) -> Result<()> {
        let bytes = serde_json::to_vec(message)
            .map_err(|e| Error::Message(format!("encode message: {e}")))?;
        sys::send_fd(self.socket.as_fd(), fd, &bytes).ctx(|| "send an fd to the other side")
    }

    /// The fd that came with the last message, if one did.
    pub fn take_fd(&self) -> Option<OwnedFd> {
        self.received_fd.borrow_mut().take()
    }

    /// The next message, or `None` when the other side has closed.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        // A message's size, without taking it (MSG_TRUNC gives a packet's
        // whole length): most are a few bytes, and zeroing a buffer for the
        // largest (64 KiB) cost every receive a memset and page faults.
        //
        // ECONNRESET: the other side closed with a message of ours unread
        // (the init failing before it reads CgroupReady). The kernel
        // reports that once, before what is still queued: the other side's
        // last message (its Failed, say) follows on the next call.
        let size = loop {
            let mut none: [u8; 0] = [];
            match rustix::net::recv(
                &self.socket,
                &mut none[..],
                RecvFlags::PEEK | RecvFlags::TRUNC,
            ) {
                Ok((_, size)) => break size,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNRESET) => continue,
                Err(e) => return Err(e).ctx(|| "receive from the other side"),
            }
        };
        let mut buf = vec![0u8; size.max(1)];
        let n = loop {
            match sys::recv_fd(self.socket.as_fd(), &mut buf) {
                Ok((n, fd)) => {
                    if fd.is_some() {
                        *self.received_fd.borrow_mut() = fd;
                    }
                    break n;
                }
                Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNRESET) => continue,
                Err(e) => return Err(e).ctx(|| "receive from the other side"),
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| Error::Message(format!("decode message: {e}")))
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
