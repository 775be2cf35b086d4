//! `run`: create and start; in the foreground, also wait (forwarding
//! signals, and being the console of a terminal) and delete.

use std::os::fd::AsFd;

use super::foreground::Foreground;
use super::{create, delete, start, CreateOptions};
use crate::state::Store;
use crate::Result;

/// Runs a container. Detached, returns 0 once it is started; otherwise
/// returns its exit status (128+N for death by signal N), and deletes it
/// unless told to `keep` it (stopped, with its state and cgroup) for
/// `delete`.
pub fn run(store: &Store, id: &str, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    let foreground = if detach {
        None
    } else {
        Some(Foreground::block_signals()?)
    };
    let opts = CreateOptions {
        foreground: !detach,
        ..opts.clone()
    };
    let created = create(store, id, &opts)?;
    // Started as `start` would, without reading back what create wrote;
    // the lock is let go once the program runs.
    let started = start::release(&created.dir, &created.state);
    drop(created.dir);
    if let Err(e) = started {
        let _ = delete(store, id, true);
        return Err(e);
    }
    let Some(foreground) = foreground else {
        return Ok(0);
    };
    let code = foreground.wait(created.pid, created.pidfd.as_fd(), created.console);
    if !keep {
        if let Err(e) = delete(store, id, true) {
            tracing::warn!("delete {id}: {e}");
        }
    }
    code
}
