//! A new time namespace: berth unshares it for its children before the
//! clone, because its offsets can only be written before any process is
//! inside.

use std::collections::HashMap;

use oci_spec::runtime::Linux;
use rustix::thread::UnshareFlags;

use crate::{Context, Result};

/// Unshares a time namespace for berth's children and writes the offsets.
pub fn unshare(linux: &Linux) -> Result<()> {
    // SAFETY: berth is single-threaded; a time namespace only affects its
    // future children.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWTIME) }
        .ctx(|| "unshare the time namespace")?;
    let offsets: HashMap<_, _> = linux.time_offsets().clone().unwrap_or_default();
    if offsets.is_empty() {
        return Ok(());
    }
    let text: String = offsets
        .iter()
        .map(|(clock, o)| {
            format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect();
    std::fs::write("/proc/self/timens_offsets", text)
        .ctx(|| "linux.timeOffsets: write /proc/self/timens_offsets")
}
