//! Applying CDI containerEdits to the OCI config, as the CDI reference
//! implementation does: env replaces a variable of the same name, device
//! nodes are completed from the host node and get a device-cgroup allow
//! rule, mounts replace one at the same destination and are then ordered
//! by depth, hooks are appended, additional gids added (0 ignored).

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use oci_spec::runtime::{
    HookBuilder, Hooks, LinuxBuilder, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType,
    LinuxIntelRdtBuilder, LinuxResourcesBuilder, MountBuilder, Spec,
};

use super::spec::{ContainerEdits, DeviceNode, Hook};
use crate::{Error, Result};

/// One source of edits: the spec file and device they come from, for the
/// errors.
pub struct Source<'a> {
    pub what: String,
    pub edits: &'a ContainerEdits,
}

/// Applies `sources` in order. Two device nodes at one path with different
/// numbers (from two devices, or a device and linux.devices) are an error.
pub fn apply(spec: &mut Spec, sources: &[Source]) -> Result<()> {
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for dev in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
    {
        owners.insert(dev.path().display().to_string(), "linux.devices".into());
    }
    for source in sources {
        apply_one(spec, source, &mut owners)?;
    }
    Ok(())
}

fn apply_one(
    spec: &mut Spec,
    source: &Source,
    owners: &mut BTreeMap<String, String>,
) -> Result<()> {
    let e = source.edits;
    let field = |what: &str| format!("CDI {}: {what}", source.what);
    if !e.net_devices.is_empty() {
        return Err(Error::spec(
            field("netDevices"),
            "moving network interfaces (linux.netDevices) is not supported by berth yet",
        ));
    }
    if !e.env.is_empty() {
        let process = spec.process_mut().get_or_insert_with(Default::default);
        let mut env = process.env().clone().unwrap_or_default();
        for var in &e.env {
            let name = var.split('=').next().unwrap_or_default();
            match env.iter().position(|v| v.split('=').next() == Some(name)) {
                Some(i) => env[i] = var.clone(),
                None => env.push(var.clone()),
            }
        }
        process.set_env(Some(env));
    }
    for (i, node) in e.device_nodes.iter().enumerate() {
        let at = field(&format!("deviceNodes[{i}] {:?}", node.path));
        let dev = complete(node).map_err(|m| Error::spec(&at, m))?;
        add_device(spec, dev, node, &source.what, owners).map_err(|m| Error::spec(&at, m))?;
    }
    if !e.mounts.is_empty() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for (i, m) in e.mounts.iter().enumerate() {
            mounts.retain(|old| old.destination().to_str() != Some(m.container_path.as_str()));
            let mut b = MountBuilder::default()
                .destination(&m.container_path)
                .source(&m.host_path)
                .options(m.options.clone());
            if let Some(t) = &m.typ {
                b = b.typ(t);
            }
            mounts.push(
                b.build()
                    .map_err(|err| Error::spec(field(&format!("mounts[{i}]")), err.to_string()))?,
            );
        }
        // Shallower destinations first, so a mount never hides a deeper one.
        mounts.sort_by_key(|m| depth(m.destination()));
        spec.set_mounts(Some(mounts));
    }
    if !e.hooks.is_empty() {
        let mut hooks = spec.hooks().clone().unwrap_or_default();
        for (i, h) in e.hooks.iter().enumerate() {
            add_hook(&mut hooks, h).map_err(|m| Error::spec(field(&format!("hooks[{i}]")), m))?;
        }
        spec.set_hooks(Some(hooks));
    }
    if let Some(rdt) = &e.intel_rdt {
        let mut b = LinuxIntelRdtBuilder::default();
        if let Some(v) = &rdt.clos_id {
            b = b.clos_id(v);
        }
        if let Some(v) = &rdt.l3_cache_schema {
            b = b.l3_cache_schema(v);
        }
        if let Some(v) = &rdt.mem_bw_schema {
            b = b.mem_bw_schema(v);
        }
        if let Some(v) = &rdt.schemata {
            b = b.schemata(v.clone());
        }
        if let Some(v) = rdt.enable_monitoring {
            b = b.enable_monitoring(v);
        }
        let rdt = b
            .build()
            .map_err(|err| Error::spec(field("intelRdt"), err.to_string()))?;
        linux_mut(spec).set_intel_rdt(Some(rdt));
    }
    if !e.additional_gids.is_empty() {
        let process = spec.process_mut().get_or_insert_with(Default::default);
        let user = process.user_mut();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        for &gid in &e.additional_gids {
            if gid != 0 && !gids.contains(&gid) {
                gids.push(gid);
            }
        }
        user.set_additional_gids(Some(gids));
    }
    Ok(())
}

fn depth(path: &std::path::Path) -> usize {
    path.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .count()
}

fn linux_mut(spec: &mut Spec) -> &mut oci_spec::runtime::Linux {
    spec.linux_mut()
        .get_or_insert_with(|| LinuxBuilder::default().build().expect("an empty linux"))
}

/// The OCI device for a CDI node: what the spec leaves out (type, numbers,
/// mode, owner) is read from the host node.
fn complete(node: &DeviceNode) -> std::result::Result<LinuxDevice, String> {
    let host = PathBuf::from(node.host_path.as_deref().unwrap_or(&node.path));
    let stat = std::fs::metadata(&host);
    let minimal =
        node.typ.is_some() && (node.major.unwrap_or(0) != 0 || node.typ.as_deref() == Some("p"));
    let stat = match stat {
        Ok(s) => Some(s),
        Err(_) if minimal => None,
        Err(e) => return Err(format!("host device {}: {e}", host.display())),
    };
    let host_type = stat.as_ref().map(|s| {
        let ft = s.file_type();
        if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else if ft.is_fifo() {
            "p"
        } else {
            "not a device"
        }
    });
    let typ = match (node.typ.as_deref(), host_type) {
        (Some(t), Some(h)) if !minimal && t != h && !(t == "u" && h == "c") => {
            return Err(format!(
                "the spec says type {t} but host {} is {h}",
                host.display()
            ))
        }
        (Some(t), _) => t,
        (None, Some("not a device")) => {
            return Err(format!("host {} is not a device node", host.display()))
        }
        (None, Some(h)) => h,
        (None, None) => unreachable!("a node without a type needs its host node"),
    };
    let (mut major, mut minor) = (node.major.unwrap_or(0), node.minor.unwrap_or(0));
    if let Some(s) = &stat {
        if typ != "p" && major == 0 && node.major.is_none() {
            major = i64::from(rustix::fs::major(s.rdev()));
            minor = i64::from(rustix::fs::minor(s.rdev()));
        }
    }
    let mut b = LinuxDeviceBuilder::default()
        .path(&node.path)
        .typ(match typ {
            "b" => LinuxDeviceType::B,
            "u" => LinuxDeviceType::U,
            "p" => LinuxDeviceType::P,
            _ => LinuxDeviceType::C,
        })
        .major(major)
        .minor(minor);
    if let Some(mode) = node.file_mode.or(stat.as_ref().map(|s| s.mode() & 0o7777)) {
        b = b.file_mode(mode);
    }
    if let Some(uid) = node.uid.or(stat.as_ref().map(|s| s.uid())) {
        b = b.uid(uid);
    }
    if let Some(gid) = node.gid.or(stat.as_ref().map(|s| s.gid())) {
        b = b.gid(gid);
    }
    b.build().map_err(|e| e.to_string())
}

fn add_device(
    spec: &mut Spec,
    dev: LinuxDevice,
    node: &DeviceNode,
    owner: &str,
    owners: &mut BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    let linux = linux_mut(spec);
    let mut devices = linux.devices().clone().unwrap_or_default();
    let path = dev.path().display().to_string();
    if let Some(old) = devices.iter().find(|d| *d.path() == *dev.path()) {
        let same =
            old.typ() == dev.typ() && old.major() == dev.major() && old.minor() == dev.minor();
        if !same {
            let other = owners.get(&path).cloned().unwrap_or_default();
            return Err(format!(
                "conflicting device node: {other} puts {:?} {}:{} there, {owner} {:?} {}:{}",
                old.typ(),
                old.major(),
                old.minor(),
                dev.typ(),
                dev.major(),
                dev.minor()
            ));
        }
        devices.retain(|d| *d.path() != *dev.path());
    }
    owners.insert(path, owner.to_string());
    let rule = crate::rootfs::devices::cgroup_rule_for(&dev);
    devices.push(dev);
    linux.set_devices(Some(devices));
    if let Some(mut rule) = rule {
        let access = match node.permissions.as_deref() {
            None | Some("") => "rwm",
            Some("none") => "",
            Some(p) => p,
        };
        rule.set_access(Some(access.into()));
        let resources = linux.resources_mut().get_or_insert_with(|| {
            LinuxResourcesBuilder::default()
                .build()
                .expect("empty resources")
        });
        let mut rules = resources.devices().clone().unwrap_or_default();
        rules.push(rule);
        resources.set_devices(Some(rules));
    }
    Ok(())
}

fn add_hook(hooks: &mut Hooks, h: &Hook) -> std::result::Result<(), String> {
    let mut b = HookBuilder::default().path(&h.path);
    if !h.args.is_empty() {
        b = b.args(h.args.clone());
    }
    if !h.env.is_empty() {
        b = b.env(h.env.clone());
    }
    if let Some(t) = h.timeout {
        b = b.timeout(t);
    }
    let hook = b.build().map_err(|e| e.to_string())?;
    #[allow(deprecated)] // prestart is deprecated in the runtime spec, still run
    let list = match h.hook_name.as_str() {
        "prestart" => hooks.prestart_mut(),
        "createRuntime" => hooks.create_runtime_mut(),
        "createContainer" => hooks.create_container_mut(),
        "startContainer" => hooks.start_container_mut(),
        "poststart" => hooks.poststart_mut(),
        "poststop" => hooks.poststop_mut(),
        other => return Err(format!("unknown hookName {other:?}")),
    };
    list.get_or_insert_with(Vec::new).push(hook);
    Ok(())
}
