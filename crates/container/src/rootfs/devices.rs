//! /dev: the default device nodes, linux.devices, and the usual links.

use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};
use rustix::fs::FileType;

use super::resolve::RootDir;
use super::target;
use crate::sys;
use crate::{Context, Error, Result};

/// The nodes every container gets: (name, major, minor).
pub const DEFAULT_NODES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The device cgroup rules added after the spec's own, as runc adds them,
/// so that a spec that denies everything (as podman's does) still has
/// working default devices, ptys and /dev/net/tun: mknod of any node, the
/// default nodes but those `devices` (linux.devices) puts at the same path
/// (its node replaces the default one, and only resources.devices allows
/// it), /dev/pts/*, /dev/ptmx, and /dev/net/tun (which runc still allows
/// for engines that cannot add a rule). /dev/console is a bound pty slave.
pub fn default_cgroup_rules(devices: &[LinuxDevice]) -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.to_string()));
        r
    };
    let mut rules = vec![
        rule(LinuxDeviceType::C, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
    ];
    for (name, major, minor) in DEFAULT_NODES {
        let path = Path::new("/dev").join(name);
        if devices.iter().any(|d| *d.path() == path) {
            continue;
        }
        rules.push(rule(
            LinuxDeviceType::C,
            Some(i64::from(*major)),
            Some(i64::from(*minor)),
            "rwm",
        ));
    }
    rules.push(rule(LinuxDeviceType::C, Some(136), None, "rwm")); // /dev/pts/*
    rules.push(rule(LinuxDeviceType::C, Some(5), Some(2), "rwm")); // /dev/ptmx
    rules.push(rule(LinuxDeviceType::C, Some(10), Some(200), "rwm")); // /dev/net/tun
    rules
}

/// The allow rule for a device node (CDI adds one for each node it
/// injects, as the CDI reference implementation does).
pub fn cgroup_rule_for(device: &LinuxDevice) -> Option<LinuxDeviceCgroup> {
    let typ = match device.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => LinuxDeviceType::C,
        LinuxDeviceType::B => LinuxDeviceType::B,
        _ => return None,
    };
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(typ));
    r.set_major(Some(device.major()));
    r.set_minor(Some(device.minor()));
    r.set_access(Some("rwm".into()));
    Some(r)
}

/// Creates the spec's devices, then the default ones the spec did not
/// replace, then /dev's links and directories.
pub fn populate(root: &RootDir, devices: &[LinuxDevice], in_userns: bool) -> Result<()> {
    for (i, d) in devices.iter().enumerate() {
        create(root, d, in_userns).ctx(|| format!("linux.devices[{i}].path {:?}", d.path()))?;
    }
    for (name, major, minor) in DEFAULT_NODES {
        let mut d = LinuxDevice::default();
        d.set_path(Path::new("/dev").join(name));
        d.set_typ(LinuxDeviceType::C);
        d.set_major(i64::from(*major));
        d.set_minor(i64::from(*minor));
        d.set_file_mode(Some(0o666));
        create(root, &d, in_userns).ctx(|| format!("/dev/{name}"))?;
    }
    for dir in ["dev/pts", "dev/shm"] {
        target::mount_point_dir(root, Path::new(dir))?;
    }
    let mut links = vec![
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("dev/core", "/proc/kcore"));
    }
    for (link, target) in links {
        symlink(root, link, target)?;
    }
    // /dev/ptmx must be the devpts instance's own multiplexer.
    match root.remove_file(Path::new("dev/ptmx")) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e).ctx(|| "remove /dev/ptmx"),
    }
    symlink(root, "dev/ptmx", "pts/ptmx")
}

fn symlink(root: &RootDir, link: &str, target: &str) -> Result<()> {
    match root.symlink(Path::new(link), target) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("symlink /{link} -> {target}")),
    }
}

/// Makes one device node; an existing one is kept. In a user namespace,
/// where mknod is not allowed, the host's node of the same path is bound.
fn create(root: &RootDir, d: &LinuxDevice, in_userns: bool) -> Result<()> {
    let path = target::in_root(d.path());
    if in_userns {
        let point = target::mount_point_file(root, &path)?;
        let host = sys::open_path(d.path())?;
        return sys::bind(host.as_fd(), point.as_fd(), false);
    }
    let mode = d.file_mode().unwrap_or(0o666) & 0o7777;
    let dev = rustix::fs::makedev(d.major() as u32, d.minor() as u32);
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
        LinuxDeviceType::B => FileType::BlockDevice,
        LinuxDeviceType::P => FileType::Fifo,
        LinuxDeviceType::A => {
            return Err(Error::Message(
                "type \"a\" is not a device node type".into(),
            ));
        }
    };
    match root.mknod(&path, kind, mode, dev) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Ok(()),
        Err(e) => return Err(e).ctx(|| "mknod"),
    }
    let uid = d.uid().unwrap_or(0);
    let gid = d.gid().unwrap_or(0);
    if uid != 0 || gid != 0 {
        let node = root
            .resolve_nofollow(&path)
            .ctx(|| "resolve the new node")?;
        rustix::fs::chownat(
            &node,
            "",
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            rustix::fs::AtFlags::EMPTY_PATH,
        )
        .ctx(|| format!("chown to {uid}:{gid}"))?;
    }
    Ok(())
}
