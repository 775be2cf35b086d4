//! The lifecycle operations of the runtime spec, and the queries.

mod create;
mod delete;
mod exec;
mod foreground;
mod kill;
mod query;
mod resources;
mod run;
mod start;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::state::{State, Status};

pub use create::{create, CreateOptions, Created};
pub use delete::delete;
pub use exec::{exec, ExecOptions, ExecRequest};
pub use kill::kill;
pub use query::{list, state};
pub use resources::{events, pause, pids, resume, update, Event};
pub use run::run;
pub use start::start;

/// The state of a container as the runtime spec defines it (what hooks get
/// on stdin), with runc's additions for `state`: rootfs, created, owner.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl OciState {
    /// The state hooks get: the spec's fields only.
    pub fn for_hooks(state: &State, status: Status) -> String {
        let s = OciState {
            oci_version: state.oci_version.clone(),
            id: state.id.clone(),
            status,
            pid: state.pid,
            bundle: state.bundle.clone(),
            rootfs: None,
            created: None,
            owner: None,
            annotations: state.annotations.clone(),
        };
        serde_json::to_string(&s).expect("the state serialises")
    }
}
