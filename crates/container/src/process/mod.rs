//! Setting up the container's process: capabilities, user and groups,
//! rlimits, scheduling, NUMA memory policy, oom score and LSM labels, seccomp, file
//! descriptors and the final execve.

pub mod caps;
pub mod exec;
pub mod fds;
pub mod mempolicy;
pub mod procfs;
pub mod rlimits;
pub mod sched;
pub mod seccomp;
pub mod setup;
pub mod terminal;
pub mod user;
