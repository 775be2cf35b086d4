//! CDI (Container Device Interface): devices a container asks for by name
//! (`vendor.com/class=name`), injected into its config before anything is
//! set up.
//!
//! Requests come from the `cdi.k8s.io/<key>` annotations (what kubelet's
//! device plugins and DRA drivers write) and from `NVIDIA_VISIBLE_DEVICES`
//! in process.env (what NVIDIA's images and users set). Each name is
//! resolved in the spec files of the spec directories ([`registry`]) and
//! its spec's and its own containerEdits are applied ([`edits`]) in the
//! CDI reference implementation's order.
//!
//! Written here rather than with the `container-device-interface` crate:
//! that crate brings jsonschema, regex, clap and lazy_static into every
//! `create` (berth must start fast, see BENCHMARKS.md), reports errors as
//! untyped strings without the spec field, and has no NVIDIA generator.

mod edits;
pub mod ldcache;
pub mod names;
pub mod nvidia;
pub mod registry;
pub mod spec;

use std::path::PathBuf;

use oci_spec::runtime::Spec;

use crate::{Error, Result};
use names::QualifiedName;
use registry::Registry;

/// The annotation prefix whose values request CDI devices.
pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";
/// The environment variable NVIDIA's ecosystem requests GPUs with.
pub const NVIDIA_ENV: &str = "NVIDIA_VISIBLE_DEVICES";
const NVIDIA_KIND: &str = "nvidia.com/gpu";

/// Where CDI specs are read from, lowest priority first.
#[derive(Debug, Clone)]
pub struct SpecDirs(pub Vec<PathBuf>);

impl Default for SpecDirs {
    fn default() -> SpecDirs {
        SpecDirs(
            registry::DEFAULT_SPEC_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
        )
    }
}

/// Device names a config requests, in order, without repeats; and whether
/// they came only from NVIDIA_VISIBLE_DEVICES.
#[derive(Debug, Default, PartialEq)]
pub struct Requests {
    pub names: Vec<QualifiedName>,
    pub only_from_env: bool,
}

/// The CDI requests of a config.
pub fn requests(spec: &Spec) -> Result<Requests> {
    let mut names = Vec::new();
    let mut requested: Vec<(&String, &String)> = spec
        .annotations()
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
        .collect();
    requested.sort();
    for (key, value) in requested {
        let field = format!("annotations[{key:?}]");
        for name in value.split(',').map(str::trim) {
            names.push(QualifiedName::parse(name, &field)?);
        }
    }
    let from_annotations = names.len();
    let visible = spec
        .process()
        .iter()
        .flat_map(|p| p.env().iter().flatten())
        .rev()
        .find_map(|v| v.strip_prefix(NVIDIA_ENV)?.strip_prefix('='));
    if let Some(value) = visible {
        let field = format!("process.env {NVIDIA_ENV}");
        match value.trim() {
            "" | "none" | "void" => {}
            value => {
                for id in value.split(',').map(str::trim) {
                    let name = if id.contains('=') {
                        id.to_string()
                    } else {
                        format!("{NVIDIA_KIND}={id}")
                    };
                    names.push(QualifiedName::parse(&name, &field)?);
                }
            }
        }
    }
    let only_from_env = from_annotations == 0 && !names.is_empty();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(Requests {
        names,
        only_from_env,
    })
}

/// Injects the devices `spec` requests. Nothing to do (no spec file is
/// read) when it requests none.
pub fn inject(spec: &mut Spec, dirs: &SpecDirs) -> Result<()> {
    let requests = requests(spec)?;
    if requests.names.is_empty() {
        return Ok(());
    }
    let mut registry = Registry::load(&dirs.0);
    let unresolved = |r: &Registry| -> Vec<QualifiedName> {
        requests
            .names
            .iter()
            .filter(|n| r.device(n).is_none())
            .cloned()
            .collect()
    };
    let missing = unresolved(&registry);
    if missing.iter().any(|n| n.kind() == NVIDIA_KIND) && nvidia::host_has_gpus(nvidia::HOST_ROOT) {
        match nvidia::generate(nvidia::HOST_ROOT) {
            Ok(generated) => {
                tracing::info!(
                    "cdi: no spec file offers {}; generated the host's NVIDIA spec in memory",
                    names_text(missing.iter().filter(|n| n.kind() == NVIDIA_KIND))
                );
                registry.add(spec::LoadedSpec {
                    path: PathBuf::from("(generated in memory)"),
                    priority: 0,
                    vendor: "nvidia.com".into(),
                    class: "gpu".into(),
                    spec: generated,
                });
            }
            Err(e) => tracing::warn!("cdi: generating the host's NVIDIA spec: {e}"),
        }
    }
    if !registry.errors.is_empty() {
        return Err(Error::spec(
            "CDI",
            format!(
                "{} (devices requested: {})",
                registry.errors.join("; "),
                names_text(requests.names.iter())
            ),
        ));
    }
    let missing = unresolved(&registry);
    if let Some(conflict) = missing.iter().find_map(|n| registry.conflict(n)) {
        return Err(Error::spec("CDI", conflict));
    }
    if !missing.is_empty() {
        // NVIDIA's images set NVIDIA_VISIBLE_DEVICES=all everywhere: on a
        // host with no NVIDIA GPU and no spec for them, that is no error.
        if requests.only_from_env
            && !registry.has_kind(NVIDIA_KIND)
            && !nvidia::host_has_gpus(nvidia::HOST_ROOT)
        {
            tracing::warn!(
                "cdi: {NVIDIA_ENV} asks for {}, but this host has no NVIDIA GPU and no CDI spec offers one; none injected",
                names_text(missing.iter())
            );
            return Ok(());
        }
        let dirs: Vec<String> = dirs.0.iter().map(|d| d.display().to_string()).collect();
        return Err(Error::spec(
            "CDI",
            format!(
                "no CDI spec in {} offers {}",
                dirs.join(", "),
                names_text(missing.iter())
            ),
        ));
    }
    let mut sources = Vec::new();
    let mut spec_done = std::collections::HashSet::new();
    for name in &requests.names {
        let (file, device) = registry.device(name).expect("resolved above");
        if spec_done.insert(file.path.clone()) {
            sources.push(edits::Source {
                what: format!("spec {}", file.path.display()),
                edits: &file.spec.container_edits,
            });
        }
        sources.push(edits::Source {
            what: format!("device {name} ({})", file.path.display()),
            edits: &device.container_edits,
        });
        tracing::info!("cdi: injecting {name} from {}", file.path.display());
    }
    edits::apply(spec, &sources)
}

fn names_text<'a>(names: impl Iterator<Item = &'a QualifiedName>) -> String {
    names.map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(annotations: &[(&str, &str)], env: &[&str]) -> Spec {
        let mut spec = Spec::default();
        spec.set_annotations(Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_env(Some(env.iter().map(|s| s.to_string()).collect()));
        spec.set_process(Some(process));
        spec
    }

    fn names(spec: &Spec) -> Vec<String> {
        requests(spec)
            .unwrap()
            .names
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn requests_from_annotations_and_env() {
        let spec = spec_with(
            &[
                ("cdi.k8s.io/b", "vendor.com/x=1, vendor.com/x=2"),
                ("cdi.k8s.io/a", "vendor.com/x=0"),
                ("other", "x"),
            ],
            &["NVIDIA_VISIBLE_DEVICES=0,GPU-abc", "PATH=/bin"],
        );
        assert_eq!(
            names(&spec),
            [
                "vendor.com/x=0",
                "vendor.com/x=1",
                "vendor.com/x=2",
                "nvidia.com/gpu=0",
                "nvidia.com/gpu=GPU-abc"
            ]
        );
        assert!(!requests(&spec).unwrap().only_from_env);
    }

    #[test]
    fn nvidia_env_values() {
        assert_eq!(
            names(&spec_with(&[], &["NVIDIA_VISIBLE_DEVICES=all"])),
            ["nvidia.com/gpu=all"]
        );
        for none in ["none", "void", ""] {
            let spec = spec_with(&[], &[&format!("NVIDIA_VISIBLE_DEVICES={none}")]);
            assert!(names(&spec).is_empty(), "{none}");
        }
        // The last definition wins, as in the process's environment.
        let spec = spec_with(
            &[],
            &["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES=1"],
        );
        assert_eq!(names(&spec), ["nvidia.com/gpu=1"]);
        assert!(requests(&spec).unwrap().only_from_env);
    }

    #[test]
    fn a_malformed_request_names_its_field() {
        let spec = spec_with(&[("cdi.k8s.io/x", "nvidia.com/gpu")], &[]);
        let err = requests(&spec).unwrap_err().to_string();
        assert!(
            err.contains("cdi.k8s.io/x") && err.contains("nvidia.com/gpu"),
            "{err}"
        );
    }
}
