//! CDI spec files (versions 0.3.0 to 1.1.0, JSON or YAML): their types,
//! and loading with the checks the CDI spec asks for (unknown fields,
//! names, and fields newer than the file's `cdiVersion` are errors).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::names::{parse_kind, validate_device_name};

/// The versions berth reads, oldest first.
pub const VERSIONS: &[&str] = &[
    "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0",
];

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CdiSpec {
    pub cdi_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub devices: Vec<CdiDevice>,
    #[serde(default, skip_serializing_if = "ContainerEdits::is_empty")]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CdiDevice {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "ContainerEdits::is_empty")]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<IntelRdt>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net_devices: Vec<NetDevice>,
}

impl ContainerEdits {
    pub fn is_empty(&self) -> bool {
        self.env.is_empty()
            && self.device_nodes.is_empty()
            && self.hooks.is_empty()
            && self.mounts.is_empty()
            && self.intel_rdt.is_none()
            && self.additional_gids.is_empty()
            && self.net_devices.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceNode {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    /// cgroup access, some of "rwm"; empty means "rwm", "none" means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hook {
    pub hook_name: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// linux.intelRdt as CDI writes it (0.7: enableCMT/enableMBM; 1.1:
/// schemata/enableMonitoring).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntelRdt {
    #[serde(default, rename = "closID", skip_serializing_if = "Option::is_none")]
    pub clos_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l3_cache_schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_bw_schema: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemata: Vec<String>,
    #[serde(default, rename = "enableCMT", skip_serializing_if = "Option::is_none")]
    pub enable_cmt: Option<bool>,
    #[serde(default, rename = "enableMBM", skip_serializing_if = "Option::is_none")]
    pub enable_mbm: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_monitoring: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetDevice {
    pub host_interface_name: String,
    pub name: String,
}

/// A spec file as loaded: where it was and its directory's priority (a
/// later spec directory overrides an earlier one).
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub path: PathBuf,
    pub priority: usize,
    pub vendor: String,
    pub class: String,
    pub spec: CdiSpec,
}

/// Reads and checks one spec file; the error says what is wrong, the
/// caller adds the path.
pub fn load(path: &Path, priority: usize) -> std::result::Result<LoadedSpec, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let spec = parse(path, &bytes)?;
    let (vendor, class) = parse_kind(&spec.kind)?;
    check(&spec)?;
    Ok(LoadedSpec {
        path: path.to_path_buf(),
        priority,
        vendor,
        class,
        spec,
    })
}

fn parse(path: &Path, bytes: &[u8]) -> std::result::Result<CdiSpec, String> {
    let yaml = path.extension().is_some_and(|e| e == "yaml");
    if yaml {
        serde_yaml_ng::from_slice(bytes).map_err(|e| format!("malformed YAML: {e}"))
    } else {
        serde_json::from_slice(bytes).map_err(|e| format!("malformed JSON: {e}"))
    }
}

/// Writes a spec as JSON, or as YAML when `path` ends in .yaml.
pub fn serialize(spec: &CdiSpec, path: &Path) -> std::result::Result<Vec<u8>, String> {
    if path.extension().is_some_and(|e| e == "yaml") {
        serde_yaml_ng::to_string(spec)
            .map(String::into_bytes)
            .map_err(|e| e.to_string())
    } else {
        let mut out = serde_json::to_vec_pretty(spec).map_err(|e| e.to_string())?;
        out.push(b'\n');
        Ok(out)
    }
}

fn version_index(version: &str) -> Option<usize> {
    let v = version.strip_prefix('v').unwrap_or(version);
    VERSIONS.iter().position(|&known| known == v)
}

/// The checks beyond the schema: a known version recent enough for the
/// fields used, valid names, no device twice, and well-formed edits.
fn check(spec: &CdiSpec) -> std::result::Result<(), String> {
    let version = version_index(&spec.cdi_version).ok_or_else(|| {
        format!(
            "cdiVersion {:?} is not one berth reads ({})",
            spec.cdi_version,
            VERSIONS.join(", ")
        )
    })?;
    let needed = minimum_version(spec);
    if needed > version {
        return Err(format!(
            "cdiVersion {} is too old for the fields it uses (they need {})",
            spec.cdi_version, VERSIONS[needed]
        ));
    }
    if spec.devices.is_empty() {
        return Err("no devices".into());
    }
    check_edits(&spec.container_edits).map_err(|e| format!("containerEdits: {e}"))?;
    let mut seen = std::collections::BTreeSet::new();
    for (i, dev) in spec.devices.iter().enumerate() {
        validate_device_name(&dev.name).map_err(|e| format!("devices[{i}]: {e}"))?;
        if !seen.insert(&dev.name) {
            return Err(format!(
                "devices[{i}]: device {:?} is defined twice",
                dev.name
            ));
        }
        check_edits(&dev.container_edits)
            .map_err(|e| format!("devices[{i}] ({}).containerEdits: {e}", dev.name))?;
    }
    Ok(())
}

/// The oldest version that has every field `spec` uses.
fn minimum_version(spec: &CdiSpec) -> usize {
    let at = |v: &str| version_index(v).expect("a known version");
    let edits = std::iter::once(&spec.container_edits)
        .chain(spec.devices.iter().map(|d| &d.container_edits));
    let mut needed = 0;
    for e in edits {
        if !e.net_devices.is_empty()
            || e.intel_rdt
                .as_ref()
                .is_some_and(|r| !r.schemata.is_empty() || r.enable_monitoring.is_some())
        {
            needed = needed.max(at("1.1.0"));
        }
        if e.intel_rdt.is_some() || !e.additional_gids.is_empty() {
            needed = needed.max(at("0.7.0"));
        }
        if e.device_nodes.iter().any(|d| d.host_path.is_some()) {
            needed = needed.max(at("0.5.0"));
        }
        if e.mounts.iter().any(|m| m.typ.is_some()) {
            needed = needed.max(at("0.4.0"));
        }
    }
    let annotated =
        !spec.annotations.is_empty() || spec.devices.iter().any(|d| !d.annotations.is_empty());
    if annotated
        || spec
            .kind
            .split_once('/')
            .is_some_and(|(_, class)| class.contains('.'))
    {
        needed = needed.max(at("0.6.0"));
    }
    if spec
        .devices
        .iter()
        .any(|d| d.name.starts_with(|c: char| c.is_ascii_digit()))
    {
        needed = needed.max(at("0.5.0"));
    }
    needed
}

const HOOK_NAMES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

fn check_edits(e: &ContainerEdits) -> std::result::Result<(), String> {
    for (i, env) in e.env.iter().enumerate() {
        if !env.contains('=') || env.starts_with('=') {
            return Err(format!("env[{i}] {env:?} is not NAME=VALUE"));
        }
    }
    for (i, d) in e.device_nodes.iter().enumerate() {
        let at = format!("deviceNodes[{i}] ({})", d.path);
        if !d.path.starts_with('/') {
            return Err(format!("{at}: path is not absolute"));
        }
        if let Some(t) = &d.typ {
            if !["b", "c", "u", "p"].contains(&t.as_str()) {
                return Err(format!("{at}: type {t:?} is none of b, c, u, p"));
            }
        }
        if let Some(p) = d.permissions.as_deref().filter(|p| *p != "none") {
            if p.chars().any(|c| !"rwm".contains(c)) {
                return Err(format!(
                    "{at}: permissions {p:?} are not some of \"rwm\" (or \"none\")"
                ));
            }
        }
    }
    for (i, h) in e.hooks.iter().enumerate() {
        if !HOOK_NAMES.contains(&h.hook_name.as_str()) {
            return Err(format!(
                "hooks[{i}]: hookName {:?} is none of {}",
                h.hook_name,
                HOOK_NAMES.join(", ")
            ));
        }
        if !h.path.starts_with('/') {
            return Err(format!("hooks[{i}]: path {:?} is not absolute", h.path));
        }
        if h.timeout.is_some_and(|t| t <= 0) {
            return Err(format!("hooks[{i}]: timeout must be positive"));
        }
    }
    for (i, m) in e.mounts.iter().enumerate() {
        if m.host_path.is_empty() || !m.container_path.starts_with('/') {
            return Err(format!(
                "mounts[{i}]: needs a hostPath and an absolute containerPath (got {:?}, {:?})",
                m.host_path, m.container_path
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_json(version: &str, device: &str) -> String {
        format!(r#"{{"cdiVersion":"{version}","kind":"vendor.com/dev","devices":[{device}]}}"#)
    }

    fn load_str(name: &str, text: &str) -> std::result::Result<LoadedSpec, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        load(&path, 0)
    }

    #[test]
    fn loads_json_and_yaml() {
        let json = spec_json("0.6.0", r#"{"name":"a","containerEdits":{"env":["A=1"]}}"#);
        let s = load_str("a.json", &json).unwrap();
        assert_eq!((s.vendor.as_str(), s.class.as_str()), ("vendor.com", "dev"));
        let yaml = "cdiVersion: 0.8.0\nkind: vendor.com/dev\ndevices:\n- name: a\n  containerEdits:\n    deviceNodes:\n    - path: /dev/a\n      type: c\n      major: 1\n      minor: 3\n";
        let s = load_str("a.yaml", yaml).unwrap();
        assert_eq!(
            s.spec.devices[0].container_edits.device_nodes[0].major,
            Some(1)
        );
    }

    #[test]
    fn rejects_what_the_cdi_spec_rejects() {
        let cases = [
            (spec_json("0.2.0", r#"{"name":"a"}"#), "cdiVersion"),
            (
                spec_json("0.6.0", r#"{"name":"a","bogus":1}"#),
                "unknown field",
            ),
            (spec_json("0.4.0", r#"{"name":"0a"}"#), "too old"),
            (
                spec_json(
                    "0.6.0",
                    r#"{"name":"a","containerEdits":{"additionalGids":[5]}}"#,
                ),
                "need 0.7.0",
            ),
            (
                spec_json("0.6.0", r#"{"name":"a"},{"name":"a"}"#),
                "defined twice",
            ),
            (
                spec_json(
                    "0.6.0",
                    r#"{"name":"a","containerEdits":{"env":["NOEQUALS"]}}"#,
                ),
                "NAME=VALUE",
            ),
            (
                spec_json(
                    "0.6.0",
                    r#"{"name":"a","containerEdits":{"hooks":[{"hookName":"later","path":"/x"}]}}"#,
                ),
                "hookName",
            ),
            (
                spec_json(
                    "0.6.0",
                    r#"{"name":"a","containerEdits":{"deviceNodes":[{"path":"/dev/a","permissions":"rx"}]}}"#,
                ),
                "permissions",
            ),
            (
                r#"{"cdiVersion":"0.6.0","kind":"nokind","devices":[{"name":"a"}]}"#.into(),
                "kind",
            ),
            ("{".into(), "malformed JSON"),
        ];
        for (text, expected) in cases {
            let err = load_str("s.json", &text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
