//! linux.netDevices: host network interfaces moved into the container's
//! network namespace, as runtime-spec 1.3 asks and runc 1.3 does.
//!
//! Every interface is checked first (it is on the host, its name in the
//! container is free there), so that bad input moves nothing. Then each goes
//! down on the host, moves and takes its new name in one request, gets back
//! its permanent global addresses (the kernel drops addresses on a move;
//! host- and link-scoped or dynamic ones mean nothing elsewhere) and comes
//! up. Nothing moves them back: the runtime-spec forbids it ("the runtime
//! MUST NOT attempt to move the interface out of the namespace before
//! deletion"), runc does not, and youki's tests expect them gone. When the
//! container's own namespace dies the kernel returns physical interfaces to
//! the host and deletes virtual ones (dummy, veth and its peer); in a
//! namespace joined by path they stay there.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;

use oci_spec::runtime::LinuxNetDevice;
use rustix::fs::{Mode, OFlags};

use crate::sys::rtnetlink::Route;
use crate::{Context, Error, Result};

/// Whether `name` can name a network interface (what the kernel's
/// dev_valid_name takes).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// The spec field of the interface the host knows as `host_name`.
fn field(host_name: &str) -> String {
    format!("linux.netDevices[{host_name:?}]")
}

/// A name with `%d` is a template: the kernel picks a free name from it.
fn is_template(name: &str) -> bool {
    name.contains("%d")
}

/// Checks linux.netDevices against the spec: valid names, and a network
/// namespace to move them into (runc's words for its absence).
pub fn validate(devices: &HashMap<String, LinuxNetDevice>, has_netns: bool) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    if !has_netns {
        return Err(Error::spec(
            "linux.netDevices",
            "unable to move network devices without a NET namespace (linux.namespaces has no network namespace)",
        ));
    }
    for (host_name, device) in devices {
        if !valid_name(host_name) {
            return Err(Error::spec(
                field(host_name),
                format!("invalid network device name {host_name:?}"),
            ));
        }
        if let Some(name) = device.name().as_deref().filter(|n| !n.is_empty()) {
            if !valid_name(name) {
                return Err(Error::spec(
                    format!("{}.name", field(host_name)),
                    format!("invalid network device name {name:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// One interface to move: its host name and index, its name inside.
struct Move<'a> {
    host_name: &'a str,
    index: i32,
    new_name: &'a str,
}

/// Moves `devices` into the network namespace of process `pid`, after
/// checking that every one can move.
pub fn move_into(pid: i32, devices: &HashMap<String, LinuxNetDevice>) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{pid}/ns/net");
    let netns = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .ctx(|| format!("linux.netDevices: open {path}"))?;
    let mut host = Route::open()?;
    let mut inside = Route::open_in(netns.as_fd())?;
    let moves = plan(&mut host, &mut inside, devices)?;
    for m in &moves {
        let fail = |what: &str, e: Error| Error::spec(field(m.host_name), format!("{what}: {e}"));
        host.set_up(m.index, false)
            .map_err(|e| fail("set the interface down", e))?;
        let addresses = host
            .addresses(m.index)
            .map_err(|e| fail("list the interface's addresses", e))?;
        let before = inside
            .links()
            .map_err(|e| fail("list the container's interfaces", e))?;
        host.move_to(m.index, netns.as_fd(), m.new_name)
            .map_err(|e| fail(&format!("move into the container as {:?}", m.new_name), e))?;
        // The kernel may give the interface another index there, and a
        // template another name: it is the one that was not there before.
        let index = inside
            .links()
            .map_err(|e| fail("list the container's interfaces", e))?
            .into_iter()
            .find(|link| !before.contains(link))
            .map(|(index, _)| index)
            .ok_or_else(|| fail("find it in the container", Error::Message("gone".into())))?;
        for address in addresses.iter().filter(|a| a.is_global_and_permanent()) {
            inside
                .add_address(index, address)
                .map_err(|e| fail(&format!("add address {address}"), e))?;
        }
        inside
            .set_up(index, true)
            .map_err(|e| fail("set the interface up", e))?;
    }
    Ok(())
}

/// The moves, in host-name order (so that a failure is the same from run
/// to run), once every interface is found on the host and no name it is to
/// take is taken in the container, by another interface or by another move.
fn plan<'a>(
    host: &mut Route,
    inside: &mut Route,
    devices: &'a HashMap<String, LinuxNetDevice>,
) -> Result<Vec<Move<'a>>> {
    let taken: HashSet<String> = inside
        .links()
        .ctx(|| "linux.netDevices: list the container's interfaces")?
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    let mut names: Vec<&String> = devices.keys().collect();
    names.sort();
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    let mut moves = Vec::with_capacity(names.len());
    for host_name in names {
        let new_name = devices[host_name]
            .name()
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(host_name);
        let index = host.link_index(host_name).map_err(|e| {
            Error::spec(
                field(host_name),
                format!("no network interface {host_name:?} on the host: {e}"),
            )
        })?;
        if !is_template(new_name) {
            if taken.contains(new_name) {
                return Err(Error::spec(
                    field(host_name),
                    format!("the container's network namespace already has an interface named {new_name:?}"),
                ));
            }
            if let Some(other) = claimed.insert(new_name, host_name) {
                return Err(Error::spec(
                    field(host_name),
                    format!("{other:?} is to be named {new_name:?} in the container too"),
                ));
            }
        }
        moves.push(Move {
            host_name,
            index,
            new_name,
        });
    }
    Ok(moves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_the_kernel_checks_them() {
        for good in ["eth0", "dummy-1", "a234567890abcde", "eth0.100", "ctr%d"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a:1", "a b", "a234567890abcdef"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn devices_need_a_network_namespace_and_good_names() {
        let devices =
            |json: &str| -> HashMap<String, LinuxNetDevice> { serde_json::from_str(json).unwrap() };
        let err = validate(&devices(r#"{"eth1":{}}"#), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "linux.netDevices: unable to move network devices without a NET namespace"
            ),
            "{err}"
        );
        let err = validate(&devices(r#"{"eth1":{"name":"a/b"}}"#), true)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(r#"linux.netDevices["eth1"].name"#), "{err}");
        let err = validate(&devices(r#"{"a b":{}}"#), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(r#"linux.netDevices["a b"]: invalid"#),
            "{err}"
        );
        validate(&devices(r#"{"eth1":{"name":"ctr0"}}"#), true).unwrap();
    }
}
