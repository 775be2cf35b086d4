//! CDI spec files (versions 0.1.0 to 1.1.0, JSON or YAML): their types,
//! and loading as the reference implementation (cncf-tags/
//! container-device-interface) loads them: any file is read as YAML (JSON
//! being YAML), keys match their fields exactly or else ignoring case, a
//! null is an absent value, an empty string an absent optional one; unknown
//! fields, duplicate keys, bad names and fields newer than the file's
//! `cdiVersion` are errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::names::{parse_kind, validate_device_name};

/// The versions berth reads, oldest first.
pub const VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0",
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

/// linux.intelRdt as CDI writes it (1.1 adds schemata and
/// enableMonitoring, and drops 0.7's enableCMT and enableMBM).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntelRdt {
    #[serde(default, rename = "closID", skip_serializing_if = "Option::is_none")]
    pub clos_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l3_cache_schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_bw_schema: Option<String>,
    /// Set (even empty) only in a 1.1.0 spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schemata: Option<Vec<String>>,
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
    let format = if path.extension().is_some_and(|e| e == "yaml") {
        "YAML"
    } else {
        "JSON"
    };
    let malformed = |e: &dyn std::fmt::Display| format!("malformed {format}: {e}");
    // serde_yaml_ng's own Value refuses duplicate keys, as the reference's
    // strict YAML does.
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(bytes).map_err(|e| malformed(&e))?;
    canonical_keys(&mut yaml, &SPEC);
    let value = serde_json::to_value(yaml).map_err(|e| malformed(&e))?;
    let mut spec: CdiSpec = serde_json::from_value(value).map_err(|e| malformed(&e))?;
    spec.absent_if_empty();
    Ok(spec)
}

/// The shape of a spec's JSON, for matching keys to fields.
enum Shape {
    /// An object with these fields (their exact names).
    Object(&'static [(&'static str, Shape)]),
    List(&'static Shape),
    /// A value whose keys, if any, are data (annotations), or a scalar.
    Data,
}

const STRINGS: Shape = Shape::List(&Shape::Data);
const DEVICE_NODE: Shape = Shape::Object(&[
    ("path", Shape::Data),
    ("hostPath", Shape::Data),
    ("type", Shape::Data),
    ("major", Shape::Data),
    ("minor", Shape::Data),
    ("fileMode", Shape::Data),
    ("permissions", Shape::Data),
    ("uid", Shape::Data),
    ("gid", Shape::Data),
]);
const HOOK: Shape = Shape::Object(&[
    ("hookName", Shape::Data),
    ("path", Shape::Data),
    ("args", STRINGS),
    ("env", STRINGS),
    ("timeout", Shape::Data),
]);
const MOUNT: Shape = Shape::Object(&[
    ("hostPath", Shape::Data),
    ("containerPath", Shape::Data),
    ("type", Shape::Data),
    ("options", STRINGS),
]);
const INTEL_RDT: Shape = Shape::Object(&[
    ("closID", Shape::Data),
    ("l3CacheSchema", Shape::Data),
    ("memBwSchema", Shape::Data),
    ("schemata", STRINGS),
    ("enableMonitoring", Shape::Data),
]);
const NET_DEVICE: Shape =
    Shape::Object(&[("hostInterfaceName", Shape::Data), ("name", Shape::Data)]);
const EDITS: Shape = Shape::Object(&[
    ("env", STRINGS),
    ("deviceNodes", Shape::List(&DEVICE_NODE)),
    ("hooks", Shape::List(&HOOK)),
    ("mounts", Shape::List(&MOUNT)),
    ("intelRdt", INTEL_RDT),
    ("additionalGids", Shape::Data),
    ("netDevices", Shape::List(&NET_DEVICE)),
]);
const DEVICE: Shape = Shape::Object(&[
    ("name", Shape::Data),
    ("annotations", Shape::Data),
    ("containerEdits", EDITS),
]);
const SPEC: Shape = Shape::Object(&[
    ("cdiVersion", Shape::Data),
    ("kind", Shape::Data),
    ("annotations", Shape::Data),
    ("devices", Shape::List(&DEVICE)),
    ("containerEdits", EDITS),
]);

/// Renames each key to the field it matches as Go's encoding/json (which
/// the reference decodes with) matches it: exactly, or else ignoring
/// case; a later key for the same field wins. A null field is dropped (Go
/// leaves the field's zero value). Unknown keys stay, for serde to refuse.
fn canonical_keys(value: &mut serde_yaml_ng::Value, shape: &Shape) {
    use serde_yaml_ng::Value;
    match (shape, value) {
        (Shape::Object(fields), Value::Mapping(map)) => {
            // In the document's order, so that the last key wins.
            for (key, mut item) in std::mem::take(map) {
                if item.is_null() {
                    continue;
                }
                let field = key.as_str().and_then(|key| {
                    fields.iter().find(|(name, _)| *name == key).or_else(|| {
                        fields
                            .iter()
                            .find(|(name, _)| name.eq_ignore_ascii_case(key))
                    })
                });
                match field {
                    Some((name, inner)) => {
                        canonical_keys(&mut item, inner);
                        map.insert(Value::String(name.to_string()), item);
                    }
                    None => {
                        map.insert(key, item);
                    }
                }
            }
        }
        (Shape::List(inner), Value::Sequence(items)) => {
            for item in items {
                canonical_keys(item, inner);
            }
        }
        _ => {}
    }
}

impl CdiSpec {
    /// An empty optional string is an absent one, as Go's zero value.
    fn absent_if_empty(&mut self) {
        let absent = |s: &mut Option<String>| {
            if s.as_deref() == Some("") {
                *s = None;
            }
        };
        let edits = std::iter::once(&mut self.container_edits)
            .chain(self.devices.iter_mut().map(|d| &mut d.container_edits));
        for e in edits {
            for node in &mut e.device_nodes {
                absent(&mut node.host_path);
                absent(&mut node.typ);
                absent(&mut node.permissions);
            }
            for mount in &mut e.mounts {
                absent(&mut mount.typ);
            }
            if let Some(rdt) = &mut e.intel_rdt {
                absent(&mut rdt.clos_id);
                absent(&mut rdt.l3_cache_schema);
                absent(&mut rdt.mem_bw_schema);
            }
        }
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
                .is_some_and(|r| r.schemata.is_some() || r.enable_monitoring == Some(true))
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

/// The reference's checks of container edits (paths need only be given:
/// the container's own checks judge them once applied).
fn check_edits(e: &ContainerEdits) -> std::result::Result<(), String> {
    check_env("env", &e.env)?;
    for (i, d) in e.device_nodes.iter().enumerate() {
        let at = format!("deviceNodes[{i}] ({})", d.path);
        if d.path.is_empty() {
            return Err(format!("deviceNodes[{i}]: empty path"));
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
        if h.path.is_empty() {
            return Err(format!("hooks[{i}]: empty path"));
        }
        check_env(&format!("hooks[{i}].env"), &h.env)?;
        if h.timeout.is_some_and(|t| t <= 0) {
            return Err(format!("hooks[{i}]: timeout must be positive"));
        }
    }
    for (i, m) in e.mounts.iter().enumerate() {
        if m.host_path.is_empty() || m.container_path.is_empty() {
            return Err(format!(
                "mounts[{i}]: needs a hostPath and a containerPath (got {:?}, {:?})",
                m.host_path, m.container_path
            ));
        }
    }
    if let Some(clos_id) = e.intel_rdt.as_ref().and_then(|r| r.clos_id.as_deref()) {
        // A file name under resctrl; "/" is the root CLOS.
        if clos_id != "/"
            && (clos_id.len() >= 4096
                || [".", ".."].contains(&clos_id)
                || clos_id.contains(['/', '\n']))
        {
            return Err(format!(
                "intelRdt.closID {clos_id:?} is not a resctrl group name"
            ));
        }
    }
    for (i, d) in e.net_devices.iter().enumerate() {
        if d.host_interface_name.is_empty() || d.name.is_empty() {
            return Err(format!(
                "netDevices[{i}]: needs a hostInterfaceName and a name"
            ));
        }
        let earlier = &e.net_devices[..i];
        if earlier
            .iter()
            .any(|o| o.host_interface_name == d.host_interface_name)
        {
            return Err(format!(
                "netDevices[{i}]: hostInterfaceName {:?} is given twice",
                d.host_interface_name
            ));
        }
        if earlier.iter().any(|o| o.name == d.name) {
            return Err(format!("netDevices[{i}]: name {:?} is given twice", d.name));
        }
    }
    Ok(())
}

fn check_env(at: &str, env: &[String]) -> std::result::Result<(), String> {
    for (i, var) in env.iter().enumerate() {
        if !var.contains('=') || var.starts_with('=') {
            return Err(format!("{at}[{i}] {var:?} is not NAME=VALUE"));
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
            (spec_json("0.0.9", r#"{"name":"a"}"#), "cdiVersion"),
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

    #[test]
    fn keys_match_fields_as_the_reference_matches_them() {
        // Any case, in JSON and YAML; null is absent; a later key wins.
        let json = r#"{"CDIVERSION":"0.6.0","Kind":"vendor.com/dev","annotations":{"Key":"v"},
            "devices":[{"NAME":"a","containeredits":{"ENV":["A=1"],"hooks":null,
            "DeviceNodes":[{"Path":"/dev/a","HOSTPATH":"","type":"c"}]}}],
            "containerEdits":{"env":["B=1"],"Env":["B=2"]}}"#;
        let s = load_str("a.json", json).unwrap().spec;
        assert_eq!(s.kind, "vendor.com/dev");
        // Annotation keys are data, kept as they are.
        assert_eq!(s.annotations.keys().collect::<Vec<_>>(), ["Key"]);
        let edits = &s.devices[0].container_edits;
        assert_eq!(edits.env, ["A=1"]);
        // An empty hostPath is none (so 0.5.0 is not needed).
        assert_eq!(edits.device_nodes[0].host_path, None);
        assert_eq!(s.container_edits.env, ["B=2"]);
        let yaml = "CdiVersion: 0.3.0\nKIND: vendor.com/dev\nDevices:\n- Name: a\n  ContainerEdits:\n    Mounts:\n    - HostPath: /x\n      ContainerPath: /y\n";
        let s = load_str("a.yaml", yaml).unwrap().spec;
        assert_eq!(s.devices[0].container_edits.mounts[0].container_path, "/y");
        // A .json file is read as YAML too, as the reference reads it.
        let s = load_str("y.json", yaml).unwrap().spec;
        assert_eq!(s.devices[0].name, "a");
    }

    #[test]
    fn versions_and_fields_are_judged_as_the_reference_judges_them() {
        for version in ["0.1.0", "0.2.0", "v1.1.0"] {
            load_str("a.json", &spec_json(version, r#"{"name":"a"}"#)).unwrap();
        }
        // enableMonitoring false needs no 1.1.0; schemata, even empty, does.
        let rdt = |body: &str| {
            spec_json(
                "0.7.0",
                &format!(r#"{{"name":"a","containerEdits":{{"intelRdt":{body}}}}}"#),
            )
        };
        load_str("a.json", &rdt(r#"{"enableMonitoring":false}"#)).unwrap();
        let err = load_str("a.json", &rdt(r#"{"schemata":[]}"#)).unwrap_err();
        assert!(err.contains("need 1.1.0"), "{err}");
        // 1.1.0 dropped enableCMT and enableMBM: unknown in every version.
        let err = load_str("a.json", &rdt(r#"{"enableCMT":true}"#)).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = load_str("a.json", &rdt(r#"{"closID":".."}"#)).unwrap_err();
        assert!(err.contains("closID"), "{err}");
        // Paths need only be given; the container's checks judge them.
        load_str(
            "a.json",
            &spec_json(
                "0.6.0",
                r#"{"name":"a","containerEdits":{"deviceNodes":[{"path":"dev/a"}]}}"#,
            ),
        )
        .unwrap();
        let cases = [
            (r#"{"name":"a","name":"b"}"#, "duplicate"),
            (
                r#"{"name":"a","containerEdits":{"hooks":[{"hookName":"prestart","path":"/x","env":["X"]}]}}"#,
                "hooks[0].env[0]",
            ),
            (
                r#"{"name":"a","containerEdits":{"mounts":[{"hostPath":"/x","containerPath":""}]}}"#,
                "containerPath",
            ),
        ];
        for (device, expected) in cases {
            let err = load_str("a.json", &spec_json("0.6.0", device)).unwrap_err();
            assert!(err.contains(expected), "{device}: {err}");
        }
        let err = load_str(
            "a.json",
            &spec_json(
                "1.1.0",
                r#"{"name":"a","containerEdits":{"netDevices":[{"hostInterfaceName":"e","name":"x"},{"hostInterfaceName":"e","name":"y"}]}}"#,
            ),
        )
        .unwrap_err();
        assert!(err.contains("given twice"), "{err}");
    }
}
