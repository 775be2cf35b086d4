//! The state of a container as the runtime spec defines it: what hooks
//! and seccomp agents get, and what `state` prints.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{State, Status};

/// The spec's state, with runc's additions for `state`: rootfs, created,
/// owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    // The fields in runc's order (pid before status, annotations before
    // owner): scripts match `list --format json` as text.
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl OciState {
    /// The state hooks get: the spec's fields only.
    pub fn for_hooks(state: &State, status: Status) -> OciState {
        OciState {
            oci_version: state.oci_version.clone(),
            id: state.id.clone(),
            status,
            pid: state.pid,
            bundle: state.bundle.clone(),
            rootfs: None,
            created: None,
            owner: None,
            annotations: state.annotations.clone(),
        }
    }
}
