//! The raw system calls berth makes that neither libc nor rustix wraps the
//! way berth needs them, in one leaf module that every other uses and that
//! uses none of them: clone3, child processes held by pidfd, fd passing,
//! namespaces and id maps, the mount API (mount_setattr, open_tree), and
//! the rtnetlink requests that move network interfaces.

mod child;
mod clone;
mod fdpass;
mod mount;
pub mod namespace;
pub mod rtnetlink;
pub mod userns;

pub use child::{pidfd_signal, Child};
pub use clone::{clone3, Cloned};
pub use fdpass::{recv_fd, send_fd};
pub use mount::*;
