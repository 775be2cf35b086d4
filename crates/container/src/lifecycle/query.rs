//! `state` and `list`.

use crate::state::{Container, OciState, Status, Store};
use crate::Result;

fn describe(c: &Container) -> Result<OciState> {
    let status = c.status();
    let Some(state) = &c.state else {
        // Still being created (or its creator died): nothing is known yet
        // but the id.
        return Ok(OciState {
            oci_version: crate::OCI_VERSION.to_string(),
            id: c.id.clone(),
            status,
            pid: 0,
            bundle: Default::default(),
            rootfs: None,
            created: None,
            owner: Some(String::new()),
            annotations: Default::default(),
        });
    };
    Ok(OciState {
        oci_version: state.oci_version.clone(),
        id: state.id.clone(),
        status,
        pid: if status == Status::Stopped {
            0
        } else {
            state.pid
        },
        bundle: state.bundle.clone(),
        rootfs: Some(state.rootfs.clone()),
        created: Some(state.created.clone()),
        owner: Some(String::new()),
        annotations: state.annotations.clone(),
    })
}

/// The state of one container, as `state` prints it.
pub fn state(store: &Store, id: &str) -> Result<OciState> {
    crate::id::validate(id)?;
    describe(&store.load(id)?)
}

/// Every container under the root.
pub fn list(store: &Store) -> Result<Vec<OciState>> {
    store.list()?.iter().map(describe).collect()
}
