//! The bundle: config.json, parsed and validated, with its paths made absolute.

mod default;
mod validate;

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::{Context, Error, Result};

pub use default::{default_spec, DefaultSpec};
pub use validate::{sysctl_path, validate, validate_process};

/// A loaded bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute but otherwise as given (hooks see it so).
    pub path: PathBuf,
    /// The root filesystem, absolute.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    /// Reads `dir/config.json`, injects the CDI devices it requests (from
    /// specs in `cdi_dirs`) and validates it against this host.
    pub fn load(dir: &Path, cdi_dirs: &crate::cdi::SpecDirs) -> Result<Bundle> {
        let path = std::path::absolute(dir).ctx(|| format!("bundle {:?}", dir))?;
        let config = path.join("config.json");
        let bytes = fs::read(&config).ctx(|| format!("read {}", config.display()))?;
        let mut spec = parse(&bytes)?;
        crate::cdi::inject(&mut spec, cdi_dirs)?;
        empty_namespace_paths_are_none(&mut spec);
        let rootfs = validate(&spec, &path)?;
        let given_root = spec.root().as_ref().map(|r| path.join(r.path()));
        let roots: Vec<&Path> = [Some(rootfs.as_path()), given_root.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        destinations_inside_the_root(&mut spec, &roots);
        Ok(Bundle { path, rootfs, spec })
    }
}

/// A mount destination written as a host path inside the rootfs
/// (`<bundle>/rootfs/mnt`) means that path in the container (`/mnt`), as
/// runc reads it; runc's own tests build mount trees that way.
fn destinations_inside_the_root(spec: &mut Spec, roots: &[&Path]) {
    for m in spec.mounts_mut().iter_mut().flatten() {
        let inside = roots
            .iter()
            .find_map(|root| m.destination().strip_prefix(root).ok());
        if let Some(inside) = inside {
            let destination = Path::new("/").join(inside);
            m.set_destination(destination);
        }
    }
}

/// A namespace with `"path": ""` is a new one, as runc (Go) reads it.
fn empty_namespace_paths_are_none(spec: &mut Spec) {
    let namespaces = spec
        .linux_mut()
        .iter_mut()
        .flat_map(|l| l.namespaces_mut().iter_mut().flatten());
    for ns in namespaces {
        if ns.path().as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            ns.set_path(None);
        }
    }
}

/// Parses config.json; a malformed one is reported with the path of the
/// offending field (`process.capabilities.bounding[2]: unknown variant ...`).
pub fn parse(bytes: &[u8]) -> Result<Spec> {
    // Tracking the path costs an allocation per field: only a config that
    // fails is parsed again to name where.
    if let Ok(spec) = serde_json::from_slice(bytes) {
        return Ok(spec);
    }
    // A capability this berth has no name for is left out with a warning,
    // as runc does, so a config written for a newer kernel still runs.
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        if let Some(process) = value.get_mut("process") {
            if !drop_unknown_capabilities(process).is_empty() {
                if let Ok(spec) = serde_json::from_value(value) {
                    return Ok(spec);
                }
            }
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "config.json".to_string()
        } else {
            format!("config.json: {path}")
        };
        let mut message = e.into_inner().to_string();
        // In runc's words, which tools and tests look for.
        if let Some(rest) = path.strip_prefix("linux.memoryPolicy") {
            let what = if rest.starts_with(".flags") {
                "memory policy flag"
            } else if rest.starts_with(".nodes") {
                "memory policy nodes"
            } else {
                "memory policy mode"
            };
            message = format!("invalid {what}: {message}");
        }
        Error::spec(field, message)
    })
}

/// Takes the capability names berth does not know out of every set of a
/// process's `capabilities` (a JSON process object) and warns, in runc's
/// words, of what it took; returns those names. Entries that are not
/// strings stay, for the parser to name.
pub fn drop_unknown_capabilities(process: &mut serde_json::Value) -> Vec<String> {
    let mut unknown: Vec<String> = Vec::new();
    let Some(sets) = process
        .get_mut("capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return unknown;
    };
    for set in sets.values_mut().filter_map(|s| s.as_array_mut()) {
        set.retain(|name| {
            let Some(text) = name.as_str() else {
                return true;
            };
            let known =
                serde_json::from_value::<oci_spec::runtime::Capability>(name.clone()).is_ok();
            if !known && !unknown.iter().any(|u| u == text) {
                unknown.push(text.to_string());
            }
            known
        });
    }
    if !unknown.is_empty() {
        unknown.sort();
        tracing::warn!(
            "ignoring unknown or unavailable capabilities: [{}]",
            unknown.join(" ")
        );
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_given_as_host_paths_inside_the_root_are_read_inside_it() {
        let mut spec = parse(
            br#"{"ociVersion":"1.0.0","mounts":[
            {"destination":"/b/rootfs/mnt/x","type":"bind","source":"/src"},
            {"destination":"/b/rootfs-other/x","type":"bind","source":"/src"},
            {"destination":"/real/rootfs","type":"bind","source":"/src"},
            {"destination":"/mnt","type":"tmpfs","source":"tmpfs"}]}"#,
        )
        .unwrap();
        destinations_inside_the_root(
            &mut spec,
            &[Path::new("/real/rootfs"), Path::new("/b/rootfs")],
        );
        let destinations: Vec<_> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().to_str().unwrap().to_string())
            .collect();
        assert_eq!(destinations, ["/mnt/x", "/b/rootfs-other/x", "/", "/mnt"]);
    }

    #[test]
    fn an_empty_namespace_path_asks_for_a_new_namespace() {
        let mut spec = parse(
            br#"{"ociVersion":"1.0.0","linux":{"namespaces":[
            {"type":"pid","path":""},{"type":"network","path":"/proc/1/ns/net"}]}}"#,
        )
        .unwrap();
        empty_namespace_paths_are_none(&mut spec);
        let paths: Vec<_> = spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .iter()
            .flatten()
            .map(|ns| ns.path().clone())
            .collect();
        assert_eq!(paths, [None, Some(PathBuf::from("/proc/1/ns/net"))]);
    }

    #[test]
    fn parse_errors_name_the_field() {
        let err = parse(br#"{"ociVersion":"1.0.0","process":{"cwd":"/","user":{"uid":0,"gid":0},"capabilities":{"bounding":[7]}}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config.json: process.capabilities.bounding[0]: "),
            "{err}"
        );
    }

    #[test]
    fn unknown_capabilities_are_left_out() {
        let spec = parse(br#"{"ociVersion":"1.0.0","process":{"cwd":"/","user":{"uid":0,"gid":0},"capabilities":{"bounding":["CAP_UNKNOWN","CAP_CHOWN","UNKNOWN_CAP"],"ambient":["CAP_NOPE"]}}}"#)
            .unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        let bounding: Vec<String> = caps
            .bounding()
            .iter()
            .flatten()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(bounding, ["CHOWN"]);
        assert!(caps.ambient().as_ref().unwrap().is_empty());
    }

    #[test]
    fn a_bad_memory_policy_is_invalid_in_runc_words() {
        let base = r#"{"ociVersion":"1.0.0","linux":{"memoryPolicy":"#;
        for (policy, want) in [
            ("{}", "invalid memory policy mode"),
            (r#"{"mode":"INTERLEAVE"}"#, "invalid memory policy mode"),
            (
                r#"{"mode":"MPOL_BIND","nodes":"0","flags":["badflag"]}"#,
                "invalid memory policy flag",
            ),
        ] {
            let err = parse(format!("{base}{policy}}}}}").as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{policy}: {err}");
        }
    }

    #[test]
    fn malformed_json_is_reported() {
        let err = parse(b"{\"ociVersion\": ").unwrap_err().to_string();
        assert!(err.starts_with("config.json"), "{err}");
    }
}
