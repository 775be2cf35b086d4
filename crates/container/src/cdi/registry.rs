//! The CDI registry: every spec file of the spec directories, and the
//! devices they offer. A later directory overrides an earlier one (the
//! default is /etc/cdi, then /var/run/cdi); one device in two files of the
//! same directory is a conflict, and neither is used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::names::QualifiedName;
use super::spec::{self, CdiDevice, LoadedSpec};

/// Where CDI specs live unless told otherwise, lowest priority first.
pub const DEFAULT_SPEC_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

#[derive(Debug, Default)]
pub struct Registry {
    pub specs: Vec<LoadedSpec>,
    /// Each offered device: (index into `specs`, index of the device).
    devices: BTreeMap<String, (usize, usize)>,
    /// Files that failed to load.
    pub errors: Vec<String>,
    /// Devices defined twice at one priority, which are not offered: the
    /// priority and the files. A higher priority may still define them.
    conflicts: BTreeMap<String, (usize, Vec<String>)>,
}

impl Registry {
    /// Reads every .json and .yaml file of `dirs` (missing dirs are
    /// skipped), in name order within a directory.
    pub fn load(dirs: &[PathBuf]) -> Registry {
        let mut registry = Registry::default();
        for (priority, dir) in dirs.iter().enumerate() {
            for path in spec_files(dir, &mut registry.errors) {
                match spec::load(&path, priority) {
                    Ok(s) => registry.add(s),
                    Err(e) => registry
                        .errors
                        .push(format!("CDI spec {}: {e}", path.display())),
                }
            }
        }
        registry
    }

    /// Adds a loaded spec's devices, resolving clashes by priority.
    pub fn add(&mut self, loaded: LoadedSpec) {
        let index = self.specs.len();
        for (d, dev) in loaded.spec.devices.iter().enumerate() {
            let name = format!("{}/{}={}", loaded.vendor, loaded.class, dev.name);
            let file = loaded.path.display().to_string();
            if let Some((priority, files)) = self.conflicts.get_mut(&name) {
                if *priority >= loaded.priority {
                    files.push(file);
                    continue;
                }
                self.conflicts.remove(&name);
            }
            if let Some(&(other, _)) = self.devices.get(&name) {
                let other = &self.specs[other];
                if other.priority > loaded.priority {
                    continue;
                }
                if other.priority == loaded.priority {
                    let files = vec![other.path.display().to_string(), file];
                    self.devices.remove(&name);
                    self.conflicts.insert(name, (loaded.priority, files));
                    continue;
                }
            }
            self.devices.insert(name, (index, d));
        }
        self.specs.push(loaded);
    }

    /// The device a name resolves to, with the spec it comes from.
    pub fn device(&self, name: &QualifiedName) -> Option<(&LoadedSpec, &CdiDevice)> {
        let &(s, d) = self.devices.get(&name.to_string())?;
        let spec = &self.specs[s];
        Some((spec, &spec.spec.devices[d]))
    }

    /// Why a device is not offered although spec files define it.
    pub fn conflict(&self, name: &QualifiedName) -> Option<String> {
        let (_, files) = self.conflicts.get(&name.to_string())?;
        Some(format!(
            "CDI device {name} is defined by more than one spec file of one directory: {}",
            files.join(", ")
        ))
    }

    /// Every offered device name with its spec file.
    pub fn list(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.devices
            .iter()
            .map(|(name, &(s, _))| (name.as_str(), self.specs[s].path.as_path()))
    }

    /// Whether any spec offers devices of this vendor/class.
    pub fn has_kind(&self, kind: &str) -> bool {
        self.specs
            .iter()
            .any(|s| format!("{}/{}", s.vendor, s.class) == kind)
    }
}

fn spec_files(dir: &Path, errors: &mut Vec<String>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(format!("CDI spec directory {}: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml"))
        .filter(|p| !p.is_dir())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, devices: &[&str]) {
        let devices: Vec<String> = devices
            .iter()
            .map(|d| format!(r#"{{"name":"{d}","containerEdits":{{"env":["FROM={file}"]}}}}"#))
            .collect();
        let text = format!(
            r#"{{"cdiVersion":"0.6.0","kind":"vendor.com/dev","devices":[{}]}}"#,
            devices.join(",")
        );
        std::fs::write(dir.join(file), text).unwrap();
    }

    fn source(r: &Registry, name: &str) -> Option<String> {
        let name = QualifiedName::parse(name, "x").unwrap();
        r.device(&name)
            .map(|(_, d)| d.container_edits.env[0].clone())
    }

    #[test]
    fn later_directories_override_and_same_priority_conflicts() {
        let etc = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir().unwrap();
        write(etc.path(), "a.json", &["x", "y", "z"]);
        write(etc.path(), "b.json", &["z"]);
        write(run.path(), "c.json", &["y"]);
        std::fs::write(etc.path().join("ignored.txt"), "not a spec").unwrap();
        let r = Registry::load(&[etc.path().into(), run.path().into()]);
        assert_eq!(
            source(&r, "vendor.com/dev=x").as_deref(),
            Some("FROM=a.json")
        );
        assert_eq!(
            source(&r, "vendor.com/dev=y").as_deref(),
            Some("FROM=c.json")
        );
        assert_eq!(source(&r, "vendor.com/dev=z"), None);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let z = QualifiedName::parse("vendor.com/dev=z", "x").unwrap();
        let conflict = r.conflict(&z).unwrap();
        assert!(
            conflict.contains("a.json") && conflict.contains("b.json"),
            "{conflict}"
        );
    }

    #[test]
    fn a_lower_priority_file_read_later_does_not_override() {
        // Priorities, not reading order, decide.
        let etc = tempfile::tempdir().unwrap();
        let run = tempfile::tempdir().unwrap();
        write(run.path(), "a.json", &["x"]);
        write(etc.path(), "b.json", &["x"]);
        let r = Registry::load(&[etc.path().into(), run.path().into()]);
        assert_eq!(
            source(&r, "vendor.com/dev=x").as_deref(),
            Some("FROM=a.json")
        );
        assert!(r.errors.is_empty());
    }
}
