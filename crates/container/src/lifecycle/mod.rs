//! The lifecycle operations of the runtime spec, and the queries.

mod checkpoint;
mod create;
mod delete;
mod exec;
mod foreground;
mod kill;
mod query;
mod resources;
mod restore;
mod run;
mod start;

pub use crate::state::OciState;
pub use checkpoint::{checkpoint, CgroupsMode, CheckpointOptions, CriuOptions};
pub use create::{create, CreateOptions, Created};
pub use delete::delete;
pub use exec::{exec, ExecOptions, ExecRequest};
pub use kill::kill;
pub use query::{list, state};
pub use resources::{events, pause, pids, resume, update, Event};
pub use restore::{restore, RestoreOptions};
pub use run::run;
pub use start::start;
