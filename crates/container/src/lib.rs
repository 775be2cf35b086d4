//! The container side of berth: bundles and their validation, the state
//! store, the lifecycle operations, and the init process that builds a
//! container (namespaces, rootfs, process setup).
//!
//! The flow of `create`: [`spec::Bundle::load`] (parse, validate) → cgroup
//! ([`berth_cgroups`]) → [`init::spawn`] clones the init into its
//! namespaces → the init builds the rootfs ([`rootfs`]) and the process
//! ([`process`]), then waits on the exec fifo → `start` releases it.

pub mod atomic_file;
pub mod cdi;
pub mod criu;
mod error;
pub mod exe_seal;
pub mod features;
pub mod hooks;
pub mod id;
pub mod init;
pub mod intelrdt;
pub mod lifecycle;
pub mod lsm;
pub mod netdev;
pub mod process;
pub mod rootfs;
pub mod signal;
pub mod spec;
pub mod state;
pub mod sys;

pub use error::{errno_text, Context, Error, Result};

/// The newest runtime-spec version berth implements.
pub const OCI_VERSION: &str = "1.3.0";

/// The default state root.
pub const DEFAULT_ROOT: &str = "/run/berth";
